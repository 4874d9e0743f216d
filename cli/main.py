"""The `kb` command: the one place that wires the core, the loaders and the web app together.

Domain errors become a message on stderr and an exit status here, nowhere else.
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from pathlib import Path

from kb.errors import BadRequest, ConfigError, KbError, NotFound
from kb.models import VISIBILITIES, DocMeta, Filters
from kb.settings import Settings

from . import output
from . import questions as questions_cli

SEARCH_MODES = ("hybrid", "dense", "keyword")
GROUPS = ("passage", "document")

# What each command's --help ends with. Every line is in the README's "Using it" (tests/test_cli.py
# checks), so the two never disagree.
EXAMPLES = {
    "kb": ("kb ingest corpus/",
           'kb search "what have sites learned about volunteers?" -k 5'),
    "ingest": ("kb ingest corpus/",
               "kb ingest reports/ --site Leeds --type learning-report --visibility partners",
               "kb ingest reports/ --prune"),
    "search": ('kb search "what have sites learned about volunteers?" -k 5',
               'kb search "volunteers" --site Plymouth --year 2021 --group document',
               'kb search "phase 2 grant size" --json'),
    "remove": ("kb remove 12",),
    "reindex": ("kb reindex",),
    "docs": ("kb docs", "kb docs --json"),
    "stats": ("kb stats", "kb stats --json"),
    "analytics": ("kb analytics", "kb analytics --days 30 --json"),
    "eval": ("kb eval bench/hct --mode hybrid", "kb eval --questions"),
    "themes": ("kb themes -k 12", "kb themes list", 'kb themes rename 3 "Volunteer peer support"'),
    "themes list": ("kb themes list",),
    "themes rename": ('kb themes rename 3 "Volunteer peer support"', 'kb themes rename 3 ""'),
    "user": ("kb user add maria --role curator", "kb user list"),
    "user add": ("kb user add maria --role curator",
                 'echo "$PASSWORD" | kb user add maria --role curator --password-stdin'),
    "user passwd": ("kb user passwd maria",),
    "user list": ("kb user list",),
    "user remove": ("kb user remove maria",),
    "model": ("kb model show", "kb model export"),
    "model export": ("kb model export",),
    "model show": ("kb model show",),
    "copy": ("kb copy --to postgresql://kb@db.example.org/kb",),
    "serve": ("kb serve --port 5000",),
}
EXAMPLES.update(questions_cli.EXAMPLES)


class HelpFormatter(argparse.HelpFormatter):
    """Wraps prose to the terminal's width; keeps indented lines (the examples) as written."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        return "\n".join(indent + line if not line or line.startswith(" ")
                         else textwrap.fill(line, width, initial_indent=indent, subsequent_indent=indent)
                         for line in text.splitlines())


def _command(sub, name: str, summary: str, about: str, examples: tuple[str, ...]) -> argparse.ArgumentParser:
    """A subcommand with its one-line summary (listed by its parent's --help), what it does, and
    examples (the README's: tests/test_cli.py checks they are there)."""
    return sub.add_parser(name, help=summary, description=about, formatter_class=HelpFormatter,
                          epilog="examples:\n" + "\n".join(f"  {line}" for line in examples))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kb", formatter_class=HelpFormatter,
        description="A knowledge base with semantic search: ingest documents, search them by meaning and "
                    "keywords, and serve the web app. Run kb COMMAND --help for a command's options and examples.",
        epilog="examples:\n" + "\n".join(f"  {line}" for line in EXAMPLES["kb"]))
    parser.add_argument("--data", type=Path, metavar="DIR", help="data folder (default: $KB_DATA or ./data)")
    parser.add_argument("--database-url", metavar="URL",
                        help="a postgresql:// URL to keep everything in (default: $KB_DATABASE_URL, or SQLite in --data)")
    parser.add_argument("--model", metavar="NAME_OR_PATH",
                        help="sentence-transformers model name or folder (default: $KB_MODEL or the bundled all-MiniLM-L6-v2)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", title="commands")

    p = _command(sub, "ingest", "add or update files and folders",
                 "Add or update files and folders (recursively): PDF, HTML, Markdown, plain text and Word. "
                 "Unchanged files are skipped; a file that fails is reported and the others go on. "
                 "Prints one line per file (a progress bar on a terminal), then a summary; "
                 "exits 1 when any file failed.", EXAMPLES["ingest"])
    p.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="files and folders to read")
    p.add_argument("--site", help="the site (partnership area) these documents come from, e.g. Leeds")
    p.add_argument("--type", dest="doc_type", metavar="TYPE", help="document type, e.g. learning-report")
    p.add_argument("--partnership", help="the partnership's name")
    p.add_argument("--tag", action="append", default=[], help="a tag for every document; repeat for several")
    p.add_argument("--visibility", choices=VISIBILITIES,
                   help="who may read them: public (everyone), partners (signed in) or curators "
                        "(default: as set per file, else public)")
    p.add_argument("--prune", action="store_true", help="drop documents whose files are gone from these folders")
    p.add_argument("--dask", metavar="tcp://HOST:PORT",
                   help="load, chunk and embed on this Dask scheduler's workers (default: $KB_DASK_SCHEDULER, or here)")

    p = _command(sub, "search", "search the collection",
                 "Search by meaning and keywords together. Prints the matching passages, numbered, with "
                 "title, site, page and a snippet, and how many passages in how many documents match; "
                 "when nothing matches, the nearest passages. Filters of one kind, repeated, admit any "
                 "of their values; different kinds must all hold. The CLI reads as a curator: it sees "
                 "every visibility.", EXAMPLES["search"])
    p.add_argument("query", help="what to look for, in your own words (quote it)")
    p.add_argument("-k", type=int, default=10, metavar="N", help="how many results to show, 1 to 100 (default 10)")
    p.add_argument("--site", action="append", default=[], help="only documents from this site; repeat for several")
    p.add_argument("--type", dest="doc_type", action="append", default=[], metavar="TYPE",
                   help="only documents of this type; repeat for several")
    p.add_argument("--tag", action="append", default=[], help="only documents with this tag; repeat for several")
    p.add_argument("--year", type=int, action="append", default=[],
                   help="only documents published in this year; repeat for several")
    p.add_argument("--from", dest="date_from", metavar="DATE", help="only documents published on or after DATE (YYYY-MM-DD)")
    p.add_argument("--to", dest="date_to", metavar="DATE", help="only documents published on or before DATE (YYYY-MM-DD)")
    p.add_argument("--mode", choices=SEARCH_MODES, default="hybrid",
                   help="hybrid: meaning and keywords fused (default); dense: meaning only; keyword: the words only (BM25)")
    p.add_argument("--group", choices=GROUPS, default="passage",
                   help="passage: a result per matching passage (default; as the API lists them); "
                        "document: each document once, its best passages beneath (as the search page shows them)")
    p.add_argument("--json", action="store_true", help="print the results as JSON (the shape of /api/search)")

    p = _command(sub, "remove", "delete a document (by id or source path)",
                 "Delete a document: its passages, vectors and stored file. The id is the one kb docs "
                 "and kb search show.", EXAMPLES["remove"])
    p.add_argument("ref", metavar="DOC_ID_OR_SOURCE", help="the document's id, or the path it was ingested from")

    _command(sub, "reindex", "rebuild the vector index from stored embeddings",
             "Rebuild the vector index from the stored embeddings, embedding only what the configured "
             "model lacks (after a model change, everything).", EXAMPLES["reindex"])

    p = _command(sub, "docs", "list documents",
                 "List every document, retired ones included: id, type, site, date, visibility and title.",
                 EXAMPLES["docs"])
    p.add_argument("--json", action="store_true", help="print the documents as JSON, with all their fields")

    p = _command(sub, "stats", "counts by type and site, index kind, model",
                 "Count documents and passages, by type, site and year (documents without one counted "
                 "apart), and name the index kind and the model.", EXAMPLES["stats"])
    p.add_argument("--json", action="store_true", help="print the counts as JSON")

    p = _command(sub, "analytics", "what the web app is searched for, what finds nothing, what is opened",
                 "Search analytics from the web app (the search page and /api/search): each week's most "
                 "searched queries, the queries that found nothing or only weak matches, the documents "
                 "opened from each query's results and readers' helpful / not helpful marks. Who searched "
                 "is never recorded; KB_ANALYTICS=0 turns recording off.", EXAMPLES["analytics"])
    p.add_argument("--days", type=int, metavar="N",
                   help="the last N days, today included (default and most: KB_ANALYTICS_DAYS, 180)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")

    p = _command(sub, "eval", "measure retrieval quality on a BEIR-format folder",
                 "Measure retrieval quality on a BEIR-format folder (corpus.jsonl, queries.jsonl, "
                 "qrels/test.tsv): nDCG@10 with its 95% interval, recall, MRR and latency. The "
                 "collection it builds is cached under the data folder. With --questions, the curators' "
                 "learning questions on this collection instead, graded by their judgements, overall "
                 "and per site.", EXAMPLES["eval"])
    p.add_argument("folder", type=Path, metavar="DIR", nargs="?", help="the BEIR-format folder")
    p.add_argument("--questions", action="store_true",
                   help="instead of a folder, the curators' learning questions and judgements: nDCG@10 overall and per site")
    p.add_argument("--mode", choices=SEARCH_MODES, default="hybrid", help="search mode to measure (default hybrid)")
    p.add_argument("-k", type=int, default=10, metavar="N", help="cut-off for nDCG (default 10)")
    p.add_argument("--group", choices=GROUPS, default="passage",
                   help="rank the results as the API lists them (passage) or as the search page does (document)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--fresh", action="store_true", help="rebuild the cached evaluation collection")
    p.add_argument("--rechunk", action="store_true",
                   help="chunk a folder from kb questions export-beir afresh with these settings, instead of "
                        "keeping the collection's own passages")

    p = _command(sub, "themes", "rebuild the themes (k-means over passages, labelled by phrases); list, rename",
                 "Rebuild the themes running through the collection: spherical k-means over passage "
                 "vectors, clusters that are one theme merged, each theme labelled by the phrase that "
                 "sets it apart. Curators' names stay with their themes. With an action, list or name them.",
                 EXAMPLES["themes"])
    p.add_argument("-k", type=int, metavar="N", help="number of themes (default: from the collection's size)")
    p.add_argument("--json", action="store_true", help="print the themes as JSON")
    actions = p.add_subparsers(dest="themes_command", metavar="ACTION", title="actions")
    t = _command(actions, "list", "list the themes as they are, without rebuilding them",
                 "List the themes as they are: id, label (or curator's name) and passages.", EXAMPLES["themes list"])
    t.add_argument("--json", action="store_true", help="print the themes as JSON")
    t = _command(actions, "rename", "give a theme a name everyone sees; an empty one goes back to its label",
                 "Give a theme a curator's name, shown to every reader instead of its label and kept "
                 "through rebuilds while the theme stays (recorded in the audit log). An empty name "
                 "goes back to the label computed from the passages.", EXAMPLES["themes rename"])
    t.add_argument("id", type=int, help="the theme's id (kb themes list)")
    t.add_argument("name", help='the name, at most 80 characters; "" for the label again')

    questions_cli.add_parser(sub, _command)

    p = _command(sub, "user", "manage accounts: add, passwd, list, remove",
                 "Accounts for the web app: curators and partners.", EXAMPLES["user"])
    users = p.add_subparsers(dest="user_command", required=True, metavar="ACTION", title="actions")
    u = _command(users, "add", "create an account (password from a prompt or --password-stdin)",
                 "Create an account. The password is asked for twice on the terminal, or read from "
                 "standard input; it must pass the password policy (see the README).", EXAMPLES["user add"])
    u.add_argument("name", help="the account's sign-in name")
    u.add_argument("--role", choices=("curator", "partner"), required=True,
                   help="curator: the whole workspace; partner: reads what partners may")
    u.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    u = _command(users, "passwd", "set a new password for an account and sign it out everywhere "
                                  "(password from a prompt or --password-stdin)",
                 "Set a new password for an account and close all its sessions (recorded in the audit log).",
                 EXAMPLES["user passwd"])
    u.add_argument("name", help="the account's sign-in name")
    u.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    _command(users, "list", "list accounts", "List accounts: name, role and since when.", EXAMPLES["user list"])
    u = _command(users, "remove", "delete an account", "Delete an account (recorded in the audit log).",
                 EXAMPLES["user remove"])
    u.add_argument("name", help="the account's sign-in name")

    p = _command(sub, "model", "the model's ONNX export for answering queries: export, show",
                 "The model's ONNX export, which answers queries (and embeds passages) without torch.",
                 EXAMPLES["model"])
    models = p.add_subparsers(dest="model_command", required=True, metavar="ACTION", title="actions")
    m = _command(models, "export", "export the model to ONNX now and verify it against torch "
                                   "(otherwise done once, when first needed)",
                 "Export the model to ONNX now and verify it against sentence-transformers; a model "
                 "that does not match closely enough is refused and stays on torch.", EXAMPLES["model export"])
    m.add_argument("--force", action="store_true", help="export again, even after a refusal")
    m = _command(models, "show", "which encoder answers queries and embeds passages, and the export",
                 "Say which encoder answers queries and which embeds passages, where the export is and "
                 "how closely it matched torch.", EXAMPLES["model show"])
    m.add_argument("--json", action="store_true", help="print it as JSON")

    p = _command(sub, "copy", "copy the whole collection to another database (SQLite folder <-> PostgreSQL)",
                 "Copy the whole collection (ids, edits, users, audit log, themes, stored files and "
                 "vectors) to PostgreSQL or to another data folder; nothing is embedded again.",
                 EXAMPLES["copy"])
    p.add_argument("--to", required=True, metavar="URL_OR_FOLDER",
                   help="a postgresql:// URL, or a data folder for SQLite + FAISS")
    p.add_argument("--force", action="store_true", help="replace a collection the target already holds")
    p.add_argument("--json", action="store_true", help="print the report as JSON")

    p = _command(sub, "serve", "run the web app on a production WSGI server",
                 "Serve the web app and the JSON API with waitress.", EXAMPLES["serve"])
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=_port, default=5000, help="port to listen on (default 5000)")
    p.add_argument("--threads", type=int, default=8, help="requests served at once (default 8)")
    return parser


def _port(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"a port is a number from 1 to 65535, not {text!r}")
    return int(text)


def main(argv: list[str] | None = None) -> int:
    """Run one command; its exit status. A reader that leaves early (`kb docs --json | head -1`)
    ends it quietly with 141, as SIGPIPE would end `cat`."""
    try:
        status = _run(argv)
        sys.stdout.flush()  # here, not at exit, so that a reader gone is caught below
        return status
    except BrokenPipeError:
        return output.reader_gone()


def _run(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_env(data_dir=args.data, model=args.model, database_url=args.database_url,
                                     dask_scheduler=getattr(args, "dask", None))
        return COMMANDS[args.command](settings, args)
    except KbError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _open(settings: Settings, existing: bool = False):
    """The knowledge base in the data folder; `existing` refuses to start an empty one (a mistyped
    --data would otherwise search nothing and say so quietly)."""
    from kb.collection import KnowledgeBase

    if existing and not settings.database_url and not (Path(settings.data_dir) / "kb.sqlite3").exists():
        raise NotFound(f"no knowledge base in {settings.data_dir}: check --data, or add documents with kb ingest")
    return KnowledgeBase.open(settings)


def cmd_ingest(settings: Settings, args) -> int:
    from ingest.pipeline import ingest_paths, walk

    kb = _open(settings)
    flags = DocMeta(site=args.site, doc_type=args.doc_type, partnership=args.partnership,
                    tags=args.tag, visibility=args.visibility)
    if sys.stderr.isatty():
        # the files are counted first (a walk, nothing read) so that the bar has a total
        bar = output.IngestProgress(sum(1 for _ in walk(args.paths, settings.follow_symlinks)), kb.embedder)
        try:
            report = ingest_paths(kb, args.paths, flags, prune=args.prune, notify=bar.notify, on_embed=bar.embedded)
        finally:
            bar.close()
    else:
        def notify(outcome):
            reason = f": {outcome.reason}" if outcome.reason else ""
            print(f"{outcome.status:<9} {outcome.name}{reason}", file=sys.stderr, flush=True)

        report = ingest_paths(kb, args.paths, flags, prune=args.prune, notify=notify)
    summary = report.summary()
    print(", ".join(f"{n} {k}" for k, n in summary.items() if n or k in ("added", "unchanged", "failed")))
    for item in report.failed:
        print(f"  failed: {item.name}: {item.reason}")
    return 0 if report.ok else 1


def cmd_search(settings: Settings, args) -> int:
    from kb.search import Searcher

    from datetime import date

    for value in (args.date_from, args.date_to):
        try:
            value and date.fromisoformat(value)
        except ValueError:
            raise BadRequest(f"--from and --to take a date like 2021-01-31, not {value!r}") from None
    kb = _open(settings, existing=True)
    kb.embedder.warm()  # load before the clock starts: took_ms is the search alone
    filters = Filters(site=args.site, doc_type=args.doc_type, tag=args.tag, year=args.year,
                      date_from=args.date_from, date_to=args.date_to)
    result = Searcher(kb).search(args.query, k=args.k, filters=filters, mode=args.mode, group=args.group)
    if args.json:
        payload = result.to_dict()
        print(json.dumps(payload, ensure_ascii=False, indent=2))
        return 0
    print("\n".join(output.search_lines(result, output.width())))
    return 0


def cmd_remove(settings: Settings, args) -> int:
    kb = _open(settings, existing=True)
    doc = kb.resolve(args.ref)
    kb.remove(doc.id)
    print(f"removed document {doc.id}: {doc.title}")
    return 0


def cmd_reindex(settings: Settings, args) -> int:
    kb = _open(settings, existing=True)
    count = kb.reindex()
    print(f"index rebuilt: {count} vectors ({kb.index.kind})")
    return 0


def cmd_docs(settings: Settings, args) -> int:
    kb = _open(settings, existing=True)
    docs = kb.store.documents(include_retired=True)
    if args.json:
        print(json.dumps([d.to_dict() for d in docs], ensure_ascii=False, indent=2))
        return 0
    for d in docs:
        flags = "" if d.status == "active" else f" [{d.status}]"
        print(f"{d.id:>5}  {d.doc_type or '-':<15} {d.site or '-':<16} {d.published or '-':<10} "
              f"{d.visibility:<9} {d.title}{flags}")
    return 0


def cmd_stats(settings: Settings, args) -> int:
    kb = _open(settings, existing=True)
    stats = kb.stats()
    if args.json:
        print(json.dumps(stats, ensure_ascii=False, indent=2))
        return 0
    print("\n".join(output.stats_lines(stats)))
    return 0


def cmd_analytics(settings: Settings, args) -> int:
    from kb.analytics import Analytics
    from kb.storage import Store

    if not settings.database_url and not (Path(settings.data_dir) / "kb.sqlite3").exists():
        raise NotFound(f"no knowledge base in {settings.data_dir}: check --data")
    store = Store(settings.database_url or Path(settings.data_dir) / "kb.sqlite3")
    try:
        report = Analytics(store, settings.analytics, settings.analytics_days).report(args.days)
    finally:
        store.close()
    if args.json:
        print(json.dumps(report.to_dict(), ensure_ascii=False, indent=2))
        return 0
    if not settings.analytics:
        print("recording is off (KB_ANALYTICS=0): what was recorded before", file=sys.stderr)
    print("\n".join(output.analytics_lines(report)))
    return 0


def cmd_eval(settings: Settings, args) -> int:
    from kb import evaluate

    if args.questions or args.folder is None:
        return _eval_questions(settings, args)
    data = evaluate.read_beir(args.folder)
    bars: dict = {}

    def progress(phase: str, done: int, total: int) -> None:
        if not sys.stderr.isatty():
            if done == total:
                print(f"{phase}: {total} done", file=sys.stderr)
            return
        from tqdm import tqdm

        bar = bars.get(phase) or bars.setdefault(phase, tqdm(total=total, desc=phase, file=sys.stderr))
        bar.n = done
        bar.refresh()
        if done == total:
            bar.close()

    kb = evaluate.build(settings, data, fresh=args.fresh, progress=progress, rechunk=args.rechunk)
    kb.embedder.warm()  # queries are measured as the server answers them
    report = evaluate.run(kb, data, args.mode, args.k, progress=progress, group=args.group).to_dict()
    if args.json:
        print(json.dumps(report))
        return 0
    print(f"{report['dataset']} · {report['mode']} · {report['queries']} judged queries")
    low, high = report["ndcg@10_ci95"]
    print(f"  {'ndcg@10':<11} {report['ndcg@10']}  (95% interval {low}-{high} over these queries)")
    for key in ("recall@10", "recall@100", "mrr@10", "relevant_docs@10", "p50_ms", "p95_ms"):
        print(f"  {key:<11} {report[key]}")
    return 0


def _eval_questions(settings: Settings, args) -> int:
    from kb import judged

    if not args.questions or args.folder is not None:
        raise BadRequest("give kb eval a BEIR folder, or --questions for the curators' judgements (not both)")
    kb = _open(settings, existing=True)
    kb.embedder.warm()
    report = judged.run(kb, args.mode, args.k, args.group).to_dict()
    if args.json:
        print(json.dumps(report, ensure_ascii=False))
        return 0
    print("\n".join(questions_cli.eval_lines(report)))
    return 0


def cmd_questions(settings: Settings, args) -> int:
    return questions_cli.run(_open(settings, existing=True), settings, args)


def cmd_themes(settings: Settings, args) -> int:
    from kb import themes
    from kb.audit import record

    kb = _open(settings, existing=True)
    if args.themes_command == "rename":
        name = themes.rename(kb, args.id, args.name)
        record(kb.store, "cli", "theme_name", f"theme {args.id}", name or "(label from its passages)")
        print(f"theme {args.id} is now called {name!r}" if name else f"theme {args.id} is labelled from its passages")
        return 0
    if args.themes_command == "list":
        shown = sorted(themes.visible_themes(kb, VISIBILITIES), key=lambda t: t.id)
        if args.json:
            print(json.dumps([t.__dict__ for t in shown], ensure_ascii=False, indent=2))
            return 0
        for t in shown:
            named = f"  [named; labelled {t.computed!r}]" if t.name else ""
            print(f"{t.id:>3}. {t.label}  ({t.passages} passages){named}")
        if not shown:
            print("no themes yet: kb themes builds them")
        return 0
    with kb.writing():
        built = themes.build(kb, args.k)
    if args.json:
        print(json.dumps([t.__dict__ for t in built], ensure_ascii=False, indent=2))
        return 0
    for t in built:
        named = f"  [named; labelled {t.label!r}]" if t.name else ""
        print(f"{t.id:>3}. {t.name or t.label}  ({t.size} passages; {', '.join(t.terms)}){named}")
    return 0


def cmd_copy(settings: Settings, args) -> int:
    from dataclasses import asdict, replace

    from kb.collection import KnowledgeBase
    from kb.transfer import copy_collection

    source = _open(settings, existing=True)
    to = args.to
    if to.startswith(("postgresql:", "postgres:")):
        target_settings = replace(settings, database_url=to)
    else:
        target_settings = replace(settings, database_url="", data_dir=Path(to))
    if (target_settings.database_url or None, Path(target_settings.data_dir).resolve()) == \
            (settings.database_url or None, Path(settings.data_dir).resolve()):
        raise BadRequest("the target is the collection itself")
    target = KnowledgeBase.open(target_settings.validated(), source.embedder)
    report = copy_collection(source, target, replace=args.force)
    if args.json:
        print(json.dumps(asdict(report)))
    else:
        rows = ", ".join(f"{n} {name}" for name, n in report.rows.items() if n)
        print(f"copied {rows}; {report.files} stored files; {report.vectors} vectors (from the embedding cache)")
        for name in report.missing_files:
            print(f"missing stored file, not copied: {name}")
    return 0


def cmd_user(settings: Settings, args) -> int:
    from kb.accounts import Accounts
    from kb.audit import record
    from kb.storage import Store

    store = Store(settings.database_url or settings.data_dir / "kb.sqlite3")  # makes a new data folder 0700
    accounts = Accounts(store)
    if args.user_command == "list":
        for user in accounts.list():
            print(f"{user.name:<24} {user.role:<8} since {user.created_at}")
        return 0
    if args.user_command == "remove":
        accounts.remove(args.name)
        record(store, "cli", "user_remove", args.name)
        print(f"removed {args.name}")
        return 0
    if args.user_command == "passwd":
        name = accounts.get(args.name).name  # an unknown name is refused before any prompt
        password = _read_password(args, name, "kb user passwd NAME --password-stdin")
        if password is None:
            return 2
        closed = accounts.set_password(name, password)
        record(store, "cli", "user_passwd", name)
        print(f"new password set for {name}; signed out everywhere ({closed} session{'' if closed == 1 else 's'} closed)")
        return 0
    password = _read_password(args, args.name, "kb user add NAME --role ROLE --password-stdin")
    if password is None:
        return 2
    user = accounts.add(args.name, args.role, password)
    record(store, "cli", "user_add", user.name, user.role)
    print(f"added {user.name} ({user.role})")
    return 0


def _read_password(args, name: str, example: str) -> str | None:
    """One line of standard input with --password-stdin, else asked twice on the terminal; None
    (said why on stderr) when there is no terminal to ask on."""
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not sys.stdin.isatty():
        print("error: no terminal to ask for the password on: give it with --password-stdin "
              f"(echo \"$PASSWORD\" | {example})", file=sys.stderr)
        return None
    import getpass

    from kb.passwords import password_problem

    password = getpass.getpass(f"password for {name}: ")
    problem = password_problem(password, name)
    if problem:
        raise BadRequest(problem)  # at once, before asking again
    if getpass.getpass("again: ") != password:
        raise BadRequest("the passwords differ")
    return password


def cmd_model(settings: Settings, args) -> int:
    from kb.model_files import export_place, status

    if args.model_command == "export":
        from kb.onnx_export import export

        place = export_place(settings.model, settings.model_cache_dir)
        if place is None:
            raise ConfigError(f"{settings.model} is not a local model folder; it cannot be exported to ONNX")
        manifest = export(place, force=args.force, progress=lambda line: print(line, file=sys.stderr, flush=True))
        print(f"{settings.model}: ONNX export in {place.folder} (lowest cosine to torch {manifest['min_cosine']:.7f})")
        return 0
    info = status(settings.model, settings.model_cache_dir, settings.query_encoder, settings.batch_encoder)
    if args.json:
        print(json.dumps(info.to_dict(), ensure_ascii=False, indent=2))
        return 0
    print(f"model {info.model} ({info.source})")
    print(f"queries: {info.query_encoder}; passages: {info.batch_encoder}")
    if info.exported:
        print(f"ONNX export: {info.export_folder} (lowest cosine to torch {info.min_cosine:.7f})")
    elif info.refused:
        print(f"no ONNX export: {info.refused} (kb model export --force tries again)")
    else:
        print(f"ONNX export: not yet made ({info.export_folder}); kb model export makes it now")
    return 0


def cmd_serve(settings: Settings, args) -> int:
    from waitress.server import create_server

    from web import create_app

    app = create_app(settings, {"START_WORKER": False})  # the worker starts once the port is ours
    try:
        # waitress drops X-Forwarded-* unless told otherwise; with KB_TRUSTED_PROXIES, web/proxies.py decides whom to believe
        server = create_server(app, host=args.host, port=args.port, threads=args.threads, ident="kb",
                               clear_untrusted_proxy_headers=not settings.trusted_proxies)
    except OSError as exc:
        raise ConfigError(f"cannot serve on {args.host}:{args.port}: {exc.strerror or exc}"
                          " (choose another with --port, or PORT=... with make run)") from None
    app.extensions["worker"].start()
    print(f"kb serving on http://{args.host}:{args.port}/", flush=True)
    server.run()
    return 0


COMMANDS = {"ingest": cmd_ingest, "search": cmd_search, "remove": cmd_remove, "reindex": cmd_reindex,
            "docs": cmd_docs, "stats": cmd_stats, "analytics": cmd_analytics, "eval": cmd_eval, "themes": cmd_themes, "questions": cmd_questions, "user": cmd_user, "model": cmd_model, "copy": cmd_copy,
            "serve": cmd_serve}

if __name__ == "__main__":
    sys.exit(main())
