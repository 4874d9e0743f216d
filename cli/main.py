"""The `kb` command: the one place that wires the core, the loaders and the web app together.

Domain errors become a message on stderr and an exit status here, nowhere else.
"""

from __future__ import annotations

import argparse
import html
import json
import re
import sys
from pathlib import Path

from kb.errors import BadRequest, ConfigError, KbError, NotFound
from kb.models import VISIBILITIES, DocMeta, Filters
from kb.settings import Settings

SEARCH_MODES = ("hybrid", "dense", "keyword")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kb", description="Knowledge base with hybrid semantic search.")
    parser.add_argument("--data", type=Path, help="data folder (default: $KB_DATA or ./data)")
    parser.add_argument("--database-url", metavar="URL",
                        help="a postgresql:// URL to keep everything in (default: $KB_DATABASE_URL, or SQLite in --data)")
    parser.add_argument("--model", help="sentence-transformers model name or folder (default: $KB_MODEL or the bundled all-MiniLM-L6-v2)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("ingest", help="add or update files and folders")
    p.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    p.add_argument("--site")
    p.add_argument("--type", dest="doc_type")
    p.add_argument("--partnership")
    p.add_argument("--tag", action="append", default=[], help="may be repeated")
    p.add_argument("--visibility", choices=VISIBILITIES)
    p.add_argument("--prune", action="store_true", help="drop documents whose files are gone from these folders")
    p.add_argument("--dask", metavar="tcp://HOST:PORT",
                   help="load, chunk and embed on this Dask scheduler's workers (default: $KB_DASK_SCHEDULER, or here)")

    p = sub.add_parser("search", help="search the collection")
    p.add_argument("query")
    p.add_argument("-k", type=int, default=10)
    p.add_argument("--site", action="append", default=[])
    p.add_argument("--type", dest="doc_type", action="append", default=[])
    p.add_argument("--tag", action="append", default=[])
    p.add_argument("--year", type=int, action="append", default=[])
    p.add_argument("--from", dest="date_from", metavar="DATE", help="published on or after (YYYY-MM-DD)")
    p.add_argument("--to", dest="date_to", metavar="DATE", help="published on or before")
    p.add_argument("--mode", choices=SEARCH_MODES, default="hybrid")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("remove", help="delete a document (by id or source path)")
    p.add_argument("ref", metavar="DOC_ID_OR_SOURCE")

    sub.add_parser("reindex", help="rebuild the vector index from stored embeddings")

    p = sub.add_parser("docs", help="list documents")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("stats", help="counts by type and site, index kind, model")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("eval", help="measure retrieval quality on a BEIR-format folder")
    p.add_argument("folder", type=Path, metavar="DIR")
    p.add_argument("--mode", choices=SEARCH_MODES, default="hybrid")
    p.add_argument("-k", type=int, default=10, help="cut-off for nDCG (default 10)")
    p.add_argument("--group", choices=("passage", "document"), default="passage",
                   help="rank the results as the API lists them (passage) or as the search page does (document)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--fresh", action="store_true", help="rebuild the cached evaluation collection")

    p = sub.add_parser("themes", help="rebuild the themes (k-means over passages, labelled by c-TF-IDF)")
    p.add_argument("-k", type=int, help="number of themes (default: from the collection's size)")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("user", help="manage accounts: add, passwd, list, remove")
    users = p.add_subparsers(dest="user_command", required=True, metavar="ACTION")
    u = users.add_parser("add", help="create an account (password from a prompt or --password-stdin)")
    u.add_argument("name")
    u.add_argument("--role", choices=("curator", "partner"), required=True)
    u.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    u = users.add_parser("passwd", help="set a new password for an account and sign it out everywhere "
                                        "(password from a prompt or --password-stdin)")
    u.add_argument("name")
    u.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    users.add_parser("list", help="list accounts")
    u = users.add_parser("remove", help="delete an account")
    u.add_argument("name")

    p = sub.add_parser("model", help="the model's ONNX export for answering queries: export, show")
    models = p.add_subparsers(dest="model_command", required=True, metavar="ACTION")
    m = models.add_parser("export", help="export the model to ONNX now and verify it against torch "
                                         "(otherwise done once, when first needed)")
    m.add_argument("--force", action="store_true", help="export again, even after a refusal")
    m = models.add_parser("show", help="which encoder answers queries and embeds passages, and the export")
    m.add_argument("--json", action="store_true")

    p = sub.add_parser("copy", help="copy the whole collection to another database (SQLite folder <-> PostgreSQL)")
    p.add_argument("--to", required=True, metavar="URL_OR_FOLDER",
                   help="a postgresql:// URL, or a data folder for SQLite + FAISS")
    p.add_argument("--force", action="store_true", help="replace a collection the target already holds")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("serve", help="run the web app on a production WSGI server")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=_port, default=5000)
    p.add_argument("--threads", type=int, default=8)
    return parser


def _port(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"a port is a number from 1 to 65535, not {text!r}")
    return int(text)


def main(argv: list[str] | None = None) -> int:
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
    from ingest.pipeline import ingest_paths

    kb = _open(settings)
    flags = DocMeta(site=args.site, doc_type=args.doc_type, partnership=args.partnership,
                    tags=args.tag, visibility=args.visibility)
    bar = None
    if sys.stderr.isatty():
        from tqdm import tqdm

        bar = tqdm(desc="ingesting", unit=" files", file=sys.stderr)

    def notify(outcome):
        if bar is not None:
            bar.update(1)
            if outcome.status == "failed":
                bar.write(f"failed   {outcome.name}: {outcome.reason}")
        else:
            reason = f": {outcome.reason}" if outcome.reason else ""
            print(f"{outcome.status:<9} {outcome.name}{reason}", file=sys.stderr, flush=True)

    report = ingest_paths(kb, args.paths, flags, prune=args.prune, notify=notify)
    if bar is not None:
        bar.close()
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
    result = Searcher(kb).search(args.query, k=args.k, filters=filters, mode=args.mode)
    if args.json:
        payload = result.to_dict()
        print(json.dumps(payload, ensure_ascii=False, indent=2))
        return 0
    if not result.hits:
        print("no results")
    for n, hit in enumerate(result.hits, 1):
        where = " · ".join(str(x) for x in (hit.site, hit.doc_type, hit.published,
                                             f"p. {hit.page}" if hit.page else None, hit.heading) if x)
        print(f"{n}. {hit.title}  [doc {hit.doc_id}, score {hit.score:.3f}]\n   {where}\n   {plain(hit.snippet)}")
        if hit.also_in:
            print("   also in: " + "; ".join(a["title"] for a in hit.also_in))
    print(f"({result.took_ms:.0f} ms)")
    return 0


def plain(snippet: str) -> str:
    return html.unescape(re.sub(r"</?(mark|strong)>", "", snippet))


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
    print(f"{stats['documents']} documents, {stats['chunks']} chunks; index {stats['index']['kind']} "
          f"({stats['index']['vectors']} vectors, dim {stats['index']['dim']}); model {stats['model']}")
    for title, key in (("by type", "by_type"), ("by site", "by_site"), ("by year", "by_year")):
        print(f"{title}: " + ", ".join(f"{k} {v}" for k, v in stats[key].items()))
    return 0


def cmd_eval(settings: Settings, args) -> int:
    from kb import evaluate

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

    kb = evaluate.build(settings, data, fresh=args.fresh, progress=progress)
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


def cmd_themes(settings: Settings, args) -> int:
    from kb import themes

    kb = _open(settings, existing=True)
    with kb.writing():
        built = themes.build(kb, args.k)
    if args.json:
        print(json.dumps([t.__dict__ for t in built], ensure_ascii=False, indent=2))
        return 0
    for t in built:
        print(f"{t.id:>3}. {t.label}  ({t.size} passages; {', '.join(t.terms)})")
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
            "docs": cmd_docs, "stats": cmd_stats, "eval": cmd_eval, "themes": cmd_themes, "user": cmd_user, "model": cmd_model, "copy": cmd_copy,
            "serve": cmd_serve}

if __name__ == "__main__":
    sys.exit(main())
