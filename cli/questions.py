"""`kb questions`: learning questions, their evidence per site, curators' judgements, and the
judged set written as a BEIR folder. The CLI reads as a curator: it sees every visibility."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from kb.models import VISIBILITIES
from kb.settings import Settings

from . import output

EXAMPLES = {
    "questions": ('kb questions add "How are partnerships involving people with lived experience in decisions?"',
                  "kb questions list", "kb questions show 1"),
    "questions add": ('kb questions add "How are partnerships involving people with lived experience in decisions?"',
                      'kb questions add "What helps volunteers stay?" --site Leeds --site Plymouth --from 2021'),
    "questions list": ("kb questions list", "kb questions list --all --json"),
    "questions show": ("kb questions show 1", "kb questions show 1 --json"),
    "questions edit": ('kb questions edit 1 --description "For the spring learning event"',
                       "kb questions edit 1 --all-sites"),
    "questions archive": ("kb questions archive 1",),
    "questions restore": ("kb questions restore 1",),
    "questions judge": ("kb questions judge 1 68 evidence", "kb questions judge 1 19 clear"),
    "questions reviewed": ("kb questions reviewed 1",),
    "questions export-beir": ("kb questions export-beir judged/", "kb eval judged/"),
}
VERDICT_WORDS = {"evidence": "evidence", "not-evidence": "not_evidence", "not_evidence": "not_evidence", "clear": None}


def add_parser(sub, command) -> None:
    """`kb questions` and its actions, made with main's `command(sub, name, summary, about, examples)`."""
    p = command(sub, "questions", "learning questions: add, list, show (evidence per site), judge passages",
                "Learning questions and the evidence each site has on them: each site's best passages, "
                "the sites with nothing, and the passages of evidence per publication year. Curators judge "
                "passages: evidence is pinned, not evidence hidden from that question.", EXAMPLES["questions"])
    actions = p.add_subparsers(dest="questions_command", required=True, metavar="ACTION", title="actions")
    a = command(actions, "add", "add a question, with optional filters",
                "Add a learning question. Filters narrow where its evidence is looked for; repeated ones "
                "admit any of their values.", EXAMPLES["questions add"])
    a.add_argument("text", help="the question, in your own words (quote it)")
    _fields(a)
    a.add_argument("--json", action="store_true", help="print the question as JSON")
    a = command(actions, "list", "list the questions", "List the active questions: id, sites, when last "
                "reviewed, and the text.", EXAMPLES["questions list"])
    a.add_argument("--all", action="store_true", help="archived questions too")
    a.add_argument("--json", action="store_true", help="print the questions as JSON")
    a = command(actions, "show", "a question's evidence: pinned, then each site's best passages",
                "Show a question's evidence as a curator sees it: the passages judged evidence, then each "
                "site's best matching passages (the passage id to judge them by; [new] since the last "
                "review), the sites with nothing on it, and passages of evidence per site and year.",
                EXAMPLES["questions show"])
    a.add_argument("id", type=int, help="the question's id (kb questions list)")
    a.add_argument("--per-site", type=int, default=3, metavar="N", help="passages shown per site, 1 to 100 (default 3)")
    a.add_argument("--json", action="store_true", help="print the evidence as JSON (the shape of /api/questions/ID)")
    a = command(actions, "edit", "change a question's text, description or filters",
                "Change a question. Only what is given changes; --site or --type given replace the ones "
                "it had.", EXAMPLES["questions edit"])
    a.add_argument("id", type=int, help="the question's id")
    a.add_argument("--text", help="the question's new text")
    _fields(a)
    a.add_argument("--all-sites", action="store_true", help="look for evidence in every site again")
    a.add_argument("--all-types", action="store_true", help="look for evidence in every document type again")
    a.add_argument("--json", action="store_true", help="print the question as JSON")
    for name, summary in (("archive", "archive a question (curators still see it)"),
                          ("restore", "bring an archived question back")):
        a = command(actions, name, summary, summary[0].upper() + summary[1:] + ".", EXAMPLES[f"questions {name}"])
        a.add_argument("id", type=int, help="the question's id")
    a = command(actions, "judge", "judge a passage for a question: evidence, not-evidence or clear",
                "Judge a passage (its id from kb questions show) for a question: evidence pins it, "
                "not-evidence hides it from the question, clear takes the judgement back.",
                EXAMPLES["questions judge"])
    a.add_argument("id", type=int, help="the question's id")
    a.add_argument("passage", type=int, help="the passage's id")
    a.add_argument("verdict", choices=sorted(VERDICT_WORDS), help="evidence, not-evidence or clear")
    a = command(actions, "reviewed", "mark a question's evidence reviewed: only later passages are new",
                "Mark a question's evidence as reviewed now: passages of documents that arrive or change "
                "later are marked new.", EXAMPLES["questions reviewed"])
    a.add_argument("id", type=int, help="the question's id")
    a = command(actions, "export-beir", "write the judgements as a BEIR folder for kb eval",
                "Write the curators' judgements as a BEIR folder: corpus.jsonl (every active document), "
                "queries.jsonl (each active question with evidence) and qrels/test.tsv (documents judged "
                "evidence 1, not evidence 0). kb eval on it measures what kb eval --questions measures, "
                "without the questions' filters.", EXAMPLES["questions export-beir"])
    a.add_argument("folder", type=Path, metavar="DIR", help="the folder to write (made if missing)")


def _fields(p: argparse.ArgumentParser) -> None:
    p.add_argument("--description", help="what the question is for, in a sentence or two")
    p.add_argument("--site", action="append", default=None, help="only this site's documents; repeat for several")
    p.add_argument("--type", dest="doc_type", action="append", default=None, metavar="TYPE",
                   help="only documents of this type; repeat for several")
    p.add_argument("--from", dest="date_from", metavar="DATE", help="only documents published on or after DATE")
    p.add_argument("--to", dest="date_to", metavar="DATE", help="only documents published on or before DATE")


def run(kb, settings: Settings, args) -> int:
    """One `kb questions` action on an open knowledge base."""
    from kb.audit import record
    from kb.questions import Questions

    service = Questions(kb)
    action = args.questions_command
    if action == "list":
        shown = service.list(include_archived=args.all)
        if args.json:
            print(json.dumps([q.to_dict() for q in shown], ensure_ascii=False, indent=2))
            return 0
        for q in shown:
            print(question_line(q))
        if not shown:
            print('no questions yet: kb questions add "..." adds one')
        return 0
    if action == "show":
        from kb.errors import BadRequest
        from kb.search import MAX_K, Searcher

        if not 1 <= args.per_site <= MAX_K:
            raise BadRequest(f"--per-site must be between 1 and {MAX_K}")

        evidence = service.evidence(Searcher(kb), args.id, VISIBILITIES, per_site=args.per_site)
        if args.json:
            print(json.dumps(evidence.to_dict(), ensure_ascii=False, indent=2))
            return 0
        print("\n".join(evidence_lines(evidence, output.width())))
        return 0
    if action == "export-beir":
        from kb import judged

        counts = judged.write_beir(kb, args.folder)
        retired = f" (and {counts['retired']} retired)" if counts["retired"] else ""
        print(f"wrote {args.folder}: {counts['documents']} documents{retired}, {counts['queries']} questions, "
              f"{counts['judgements']} judged documents")
        if counts["retitled"]:
            print(f"{counts['retitled']} documents were retitled after their passages were embedded: kb eval "
                  "embeds them under the new title, so its figures may differ slightly", file=sys.stderr)
        return 0
    if action == "judge":
        verdict = VERDICT_WORDS[args.verdict]
        changed = service.judge(args.id, args.passage, verdict, by="cli")
        said = "cleared" if verdict is None else f"judged {verdict.replace('_', ' ')}"
        print(f"passage {args.passage} {said} for question {args.id}" + ("" if changed else " (as it was)"))
        return 0
    if action == "reviewed":
        q = service.mark_reviewed(args.id)
        print(f"question {q.id} reviewed at {q.reviewed_at}")
        return 0
    if action in ("archive", "restore"):
        q = service.archive(args.id) if action == "archive" else service.restore(args.id)
        record(kb.store, "cli", f"question_{action}", f"question {q.id}", q.text)
        print(f"question {q.id} is {q.status}")
        return 0
    fields = {"description": args.description, "sites": args.site, "types": args.doc_type,
              "date_from": args.date_from, "date_to": args.date_to}
    if action == "add":
        q = service.add(args.text, **{k: v for k, v in fields.items() if v is not None}, by="cli")
        record(kb.store, "cli", "question_add", f"question {q.id}", q.text)
    else:
        changes = {k: v for k, v in {**fields, "text": args.text}.items() if v is not None}
        if args.all_sites:
            changes["sites"] = []
        if args.all_types:
            changes["types"] = []
        q = service.edit(args.id, **changes)
        record(kb.store, "cli", "question_edit", f"question {q.id}", q.text)
    if args.json:
        print(json.dumps(q.to_dict(), ensure_ascii=False, indent=2))
    else:
        print(question_line(q))
    return 0


def question_line(q) -> str:
    where = ", ".join(q.sites) or "every site"
    extra = [x for x in (", ".join(q.types), q.date_from and f"from {q.date_from}",
                         q.date_to and f"to {q.date_to}") if x]
    reviewed = f"reviewed {q.reviewed_at[:10]}" if q.reviewed_at else "not reviewed"
    status = "" if q.status == "active" else f" [{q.status}]"
    return f"{q.id:>4}. {q.text}{status}\n      {where}{'; ' + '; '.join(extra) if extra else ''} · {reviewed}"


def evidence_lines(evidence, columns: int = 80) -> list[str]:
    """What `kb questions show` prints: the question, pinned evidence, each site's best passages
    with their passage ids (to judge them by), the sites with nothing, and the timeline."""
    q = evidence.question
    lines = [question_line(q)]
    if q.description:
        lines += output._wrap(q.description, columns, "      ", "      ")
    lines += ["", f"Evidence ({len(evidence.pinned)} pinned)"]
    lines += _hits(evidence.pinned, evidence.new, columns) or ["    none yet: kb questions judge ID PASSAGE evidence"]
    for site in evidence.sites:
        if not site.found:
            continue
        pinned = f" (and {site.pinned} pinned above)" if site.pinned else ""
        lines += ["", f"{site.site}{' · ' + site.partnership if site.partnership else ''}{pinned}"]
        lines += _hits(site.hits, evidence.new, columns) or ["    nothing more"]
    empty = [s.site for s in evidence.sites if not s.found]
    if empty:
        lines += ["", "Nothing on this question yet from: " + ", ".join(empty)]
    if evidence.timeline:
        years = sorted({y for per in evidence.timeline.values() for y in per})
        lines += ["", "Passages of evidence by year published", f"    {'site':<18}" + "".join(f"{y:>9}" for y in years)]
        for site, per in evidence.timeline.items():
            lines.append(f"    {site[:18]:<18}" + "".join(f"{per.get(y, 0):>9}" for y in years))
    if evidence.hidden:
        lines += ["", f"Judged not evidence ({len(evidence.hidden)}): passages "
                  + ", ".join(str(h.chunk_id) for h in evidence.hidden)]
    return lines


def _hits(hits, new: set[int], columns: int) -> list[str]:
    out = []
    for n, hit in enumerate(hits, 1):
        out += ([""] if n > 1 else []) + output.hit_lines(n, hit, columns)
        out.append(f"{output.INDENT}passage {hit.chunk_id}{' [new]' if hit.chunk_id in new else ''}")
    return out


def eval_lines(report: dict) -> list[str]:
    """What `kb eval --questions` prints: the figures `kb eval` gives, then nDCG@10 per site and per question."""
    lines = [f"learning questions · {report['mode']} · {report['queries']} questions with evidence judged"]
    if not report["queries"]:
        return lines + ["  nothing to measure yet: judge a passage evidence for a question (kb questions judge)"]
    low, high = report["ndcg@10_ci95"]
    lines.append(f"  {'ndcg@10':<11} {report['ndcg@10']}  (95% interval {low}-{high} over these questions)")
    for key in ("recall@10", "recall@100", "mrr@10", "p50_ms"):
        lines.append(f"  {key:<11} {report[key]}")
    lines += ["", "  nDCG@10 per site (its judged documents only, in the same rankings)"]
    for site, figures in report["sites"].items():
        lines.append(f"  {site[:24]:<24} {figures['ndcg@10']:<7} over {figures['questions']} "
                     f"question{'' if figures['questions'] == 1 else 's'}")
    lines += ["", "  nDCG@10 per question"]
    for q in report["questions"]:
        lines.append(f"  {q['id']:>4}. {q['ndcg@10']:<7} {q['relevant']} of {q['judged']} judged documents "
                     f"evidence · {q['text']}")
    return lines
