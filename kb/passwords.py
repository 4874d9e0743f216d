"""The password policy: one pure check that every way of setting a password goes through."""

from __future__ import annotations

import re

from zxcvbn import zxcvbn

MIN_LENGTH = 10
MAX_LENGTH = 1000  # room for any passphrase; a form cannot post megabytes to be hashed and judged
# zxcvbn's own default cap: its estimate takes 0.03 s at 72 characters but 5-40 s at 1,000 (it grows
# faster than the square of the length), so a longer password is judged by its first 72 characters
JUDGED_LENGTH = 72
# zxcvbn's 3, "safely unguessable": at least 10^8 guesses, moderate protection even if the scrypt
# hashes leaked (Dropbox, which made zxcvbn, asks for 3 as well)
MIN_SCORE = 3
# words anyone guessing at this site's passwords would try first
SITE_WORDS = ("kb", "hct", "healthy communities together", "healthycommunitiestogether", "healthy",
              "communities", "community", "together", "learning", "library", "curator", "partner",
              "partnership", "knowledge", "search")


def password_problem(password: str, name: str = "") -> str | None:
    """Why `password` will not do for the user `name`, in words that say what to do instead; None when it will."""
    if not password or password.isspace():
        return "Enter a password: it cannot be blank or only spaces."
    if len(password) < MIN_LENGTH:
        return (f"Use at least {MIN_LENGTH} characters. A few uncommon words together make a password "
                "that is long and easy to remember.")
    if len(password) > MAX_LENGTH:
        return f"Use at most {MAX_LENGTH:,} characters."
    if name and _plain(password) == _plain(name):
        return "Do not use your user name as your password."
    result = zxcvbn(password[:JUDGED_LENGTH], user_inputs=_user_inputs(name))
    if result["score"] >= MIN_SCORE:
        return None
    guessable = [m["token"] for m in result["sequence"] if m.get("dictionary_name") == "user_inputs"]
    advice = [f"Avoid {', '.join(f'“{t}”' for t in dict.fromkeys(guessable))}: your user name and words about this "
              "site are the first things tried."] if guessable else []
    feedback = result["feedback"]
    for line in (feedback["warning"], *feedback["suggestions"]):
        if line and line not in advice:
            advice.append(line)
    return " ".join(["This password is too easy to guess.", *(advice or ["Add another word or two."])])


def _plain(text: str) -> str:
    return "".join(text.split()).casefold()


def _user_inputs(name: str) -> list[str]:
    """The user's name and its parts (maria.lopez: marialopez, maria, lopez) first, then the site's words."""
    if not name:
        return list(SITE_WORDS)
    parts = re.split(r"[._@-]+", name.lower())
    return [p for p in dict.fromkeys([name.lower(), "".join(parts), *parts]) if len(p) > 1] + list(SITE_WORDS)
