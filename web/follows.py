"""Follows on the web: follow a search or a question, "Your follows" with what is new (the header
counts it), the feed address page, and the Atom feeds themselves (/feeds/<token>/<id>.atom).

Every page here but the feeds is under /account (private, never cached; web/caching.py); a feed
is found by its secret token alone, computed as the token's owner may see the collection now.
"""

from __future__ import annotations

from flask import (Blueprint, Response, current_app, flash, g, redirect, render_template, request, session,
                   url_for)

from kb import audit, feeds
from kb.errors import DatabaseUnavailable, SignInRequired
from kb.follows import Follows
from kb.models import Follow, User

from . import access
from .params import local_path, search_request

bp = Blueprint("follows", __name__)
FEED_TOKEN = "kb_feed_token"  # the session keeps the user's feed token, to show their feed addresses


def init_app(app) -> None:
    app.extensions["follows"] = Follows(app.extensions["kb"], app.extensions["searcher"])
    app.register_blueprint(bp)


def _follows() -> Follows:
    return current_app.extensions["follows"]


def _user() -> User:
    user = access.current_user()
    if user is None:
        raise SignInRequired("sign in to follow questions and searches")
    return user


def _base() -> str:
    return access.site_base().rstrip("/")


def _token() -> str | None:
    """This user's feed token, if this browser session made it and it is still theirs."""
    token = session.get(FEED_TOKEN)
    if isinstance(token, str) and _follows().token_made(_user(), token):
        return token
    return None


def feed_url(token: str, follow: Follow) -> str:
    return _base() + url_for("follows.feed", token=token, follow_id=follow.id)


@bp.app_context_processor
def helpers():
    return {"follow_news": follow_news, "search_follow": search_follow, "question_follow": question_follow,
            "followed_page": followed_page}


def follow_news() -> int:
    """New passages across the signed-in user's follows, for the header: worked out once a request
    (kb.follows keeps it while nothing changes). The header never fails a page: an error page
    about the database shows no count."""
    user = access.current_user()
    if user is None:
        return 0
    if "follow_news" not in g:
        try:
            g.follow_news = sum(_follows().news(user).values())
        except DatabaseUnavailable:
            g.follow_news = 0
    return g.follow_news


def search_follow(req) -> Follow | None:
    user = access.current_user()
    return _follows().find_search(user, req.q, req.filters, req.mode) if user and req.q else None


def question_follow(question_id: int) -> Follow | None:
    user = access.current_user()
    return _follows().find_question(user, question_id) if user else None


@bp.post("/account/follows")
def follow():
    """Follow the search in the form (the search page's own parameters), or `question`."""
    user, follows = _user(), _follows()
    question = request.form.get("question", type=int)
    if question is not None:
        made = follows.follow_question(user, question)
    else:
        req = search_request(request.form, user.visibility(), strict=False)
        made = follows.follow_search(user, req.q, req.filters, req.mode)
    flash(f"You follow “{follows.title(made)}”: new passages on it are counted beside “Your follows” above.")
    return redirect(local_path(request.form.get("next"), followed_page(made)))


@bp.post("/account/follows/<int:follow_id>/unfollow")
def unfollow(follow_id: int):
    user, follows = _user(), _follows()
    title = follows.title(follows.get(user, follow_id))
    follows.unfollow(user, follow_id)
    flash(f"You no longer follow “{title}”.")
    return redirect(local_path(request.form.get("next"), url_for("follows.mine")))


@bp.get("/account/follows")
@access.sign_in_required
def mine():
    user, follows = _user(), _follows()
    mine = follows.of(user)
    news = follows.news(user)
    token = _token()
    listed = [(f, follows.title(f), news.get(f.id, 0), feed_url(token, f) if token else None) for f in mine]
    return render_template("follows.html", follows=listed, has_token=bool(follows.token_made(user)))


@bp.get("/account/follows/<int:follow_id>")
@access.sign_in_required
def show(follow_id: int):
    """A follow's new passages since the last look, which this look ends: they are then seen."""
    user, follows = _user(), _follows()
    follow = follows.get(user, follow_id)
    new = follows.look(user, follow)
    token = _token()
    watch = follows.watch(follow)
    return render_template("follow.html", follow=follow, title=follows.title(follow), new=new, watch=watch,
                           feed=feed_url(token, follow) if token else None)


@bp.get("/account/feed")
@access.sign_in_required
def feed_token():
    user, follows = _user(), _follows()
    token = _token()
    listed = [(f, follows.title(f), feed_url(token, f) if token else None) for f in follows.of(user)]
    return render_template("feed_token.html", made=follows.token_made(user), token=token, follows=listed)


@bp.post("/account/feed")
def new_feed_token():
    """A new feed token (the old one's addresses stop working); this session shows its addresses."""
    user = _user()
    renewed = _follows().token_made(user) is not None
    session[FEED_TOKEN] = _follows().new_token(user)
    audit.record(current_app.extensions["kb"].store, user.name, "feed_token_renewed" if renewed else "feed_token_made",
                 user.name)
    flash("Your new feed addresses are below." + (" The old ones no longer work." if renewed else ""))
    return redirect(url_for("follows.feed_token"))


@bp.post("/account/feed/revoke")
def revoke_feed_token():
    user = _user()
    session.pop(FEED_TOKEN, None)
    if _follows().revoke_token(user):
        audit.record(current_app.extensions["kb"].store, user.name, "feed_token_revoked", user.name)
        flash("Your feed addresses no longer work.")
    return redirect(url_for("follows.feed_token"))


@bp.get("/feeds/<token>/<int:follow_id>.atom")
def feed(token: str, follow_id: int):
    """A follow's Atom feed, for feed readers: no session, only the secret token in the address."""
    follows = _follows()
    user = follows.token_user(token)
    follow = follows.get(user, follow_id)
    base = _base()
    body = follows.atom(user, follow, base, self_link=base + request.path, alternate=base + followed_page(follow))
    return Response(body, content_type=f"{feeds.MIME}; charset=utf-8")


def followed_page(follow: Follow) -> str:
    """The page a follow keeps up with: the search, or the question's page."""
    if follow.question_id is None:
        return url_for("pages.search", q=follow.query, **follow.params)
    return url_for("questions.question", question_id=follow.question_id)
