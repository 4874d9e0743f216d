"""`kb eval`: metrics against hand-worked examples and pytrec_eval; the command on real judged sets."""

from __future__ import annotations

import json
import math

import pytest

from conftest import ROOT, SHARED
from kb import metrics
from cli import main

RANKED = ["d1", "d2", "d3", "d4"]
QRELS = {"d2": 2, "d3": 0, "d4": 1, "d9": 3}


def test_ndcg_hand_worked():
    dcg = 2 / math.log2(3) + 1 / math.log2(5)
    ideal = 3 / math.log2(2) + 2 / math.log2(3) + 1 / math.log2(4)
    assert metrics.ndcg_at_k(RANKED, QRELS, 10) == pytest.approx(dcg / ideal)
    assert metrics.ndcg_at_k(RANKED, QRELS, 1) == 0.0
    assert metrics.ndcg_at_k([], QRELS) == 0.0 and metrics.ndcg_at_k(RANKED, {"d1": 0}) == 0.0


def test_recall_mrr_and_percentile_hand_worked():
    assert metrics.recall_at_k(RANKED, QRELS, 10) == pytest.approx(2 / 3)
    assert metrics.recall_at_k(RANKED, QRELS, 2) == pytest.approx(1 / 3)
    assert metrics.mrr_at_k(RANKED, QRELS, 10) == 0.5
    assert metrics.mrr_at_k(RANKED, QRELS, 1) == 0.0
    assert metrics.percentile([1, 2, 3, 4], 50) == 2.5 and metrics.percentile([5], 95) == 5


def test_bootstrap_interval_hand_worked():
    # two queries scoring 0 and 1: a resample's mean is 0, 0.5 or 1 (chances 1/4, 1/2, 1/4), so the
    # 95% interval runs from 0 to 1, while a 40% interval (30% cut from each tail) holds only 0.5
    assert metrics.bootstrap_interval([0.0, 1.0]) == (0.0, 1.0)
    assert metrics.bootstrap_interval([0.0, 1.0], confidence=0.4) == (0.5, 0.5)
    assert metrics.bootstrap_interval([0.7] * 5) == pytest.approx((0.7, 0.7))
    assert metrics.bootstrap_interval([]) == (0.0, 0.0)
    values = [0.2, 0.9, 0.5, 0.8, 0.4, 1.0, 0.6]
    low, high = metrics.bootstrap_interval(values)
    assert low < sum(values) / len(values) < high and (low, high) == metrics.bootstrap_interval(values)


def test_metrics_agree_with_pytrec_eval():
    pytrec_eval = pytest.importorskip("pytrec_eval", reason="pytrec_eval is not installed")
    import random

    rng = random.Random(7)
    docs = [f"d{i}" for i in range(60)]
    qrels, run = {}, {}
    for q in range(25):
        judged = rng.sample(docs, 15)
        qrels[f"q{q}"] = {d: rng.choice([0, 1, 2, 3]) for d in judged}
        run[f"q{q}"] = {d: rng.random() for d in rng.sample(docs, 40)}
    evaluator = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10", "recall.10", "recall.100", "recip_rank"})
    reference = evaluator.evaluate(run)
    for q, scores in run.items():
        ranked = sorted(scores, key=lambda d: -scores[d])
        assert metrics.ndcg_at_k(ranked, qrels[q], 10) == pytest.approx(reference[q]["ndcg_cut_10"], abs=1e-6)
        assert metrics.recall_at_k(ranked, qrels[q], 10) == pytest.approx(reference[q]["recall_10"], abs=1e-6)
        assert metrics.recall_at_k(ranked, qrels[q], 100) == pytest.approx(reference[q]["recall_100"], abs=1e-6)
        top10 = metrics.mrr_at_k(ranked, qrels[q], 10)
        if top10:
            assert top10 == pytest.approx(reference[q]["recip_rank"], abs=1e-6)


@pytest.mark.model
def test_eval_command_on_the_corpus_set(tmp_path, capsys, model):
    """hybrid is at least as good as dense on our own judged set (bench/hct)."""
    results = {}
    for mode in ("hybrid", "dense", "keyword"):
        assert main(["--data", str(tmp_path), "eval", str(ROOT / "bench" / "hct"), "--mode", mode, "--json"]) == 0
        results[mode] = json.loads(capsys.readouterr().out)
    assert set(results["hybrid"]) == {"dataset", "mode", "queries", "ndcg@10", "recall@10", "recall@100",
                                      "mrr@10", "p50_ms", "p95_ms", "ndcg@10_ci95", "group", "relevant_docs@10"}
    assert results["hybrid"]["queries"] >= 40
    low, high = results["hybrid"]["ndcg@10_ci95"]
    assert low <= results["hybrid"]["ndcg@10"] <= high
    assert results["hybrid"]["ndcg@10"] >= results["dense"]["ndcg@10"]
    assert results["hybrid"]["ndcg@10"] >= results["keyword"]["ndcg@10"]


def test_eval_rejects_a_folder_that_is_not_beir(tmp_path, capsys):
    assert main(["--data", str(tmp_path), "eval", str(tmp_path)]) == 1
    assert "not a BEIR folder" in capsys.readouterr().err
    (tmp_path / "qrels").mkdir()
    (tmp_path / "corpus.jsonl").write_text("")
    (tmp_path / "queries.jsonl").write_text('{"_id": "q1", "text": "volunteers"}\n')
    (tmp_path / "qrels" / "test.tsv").write_text("q1\td1\t1\n")
    assert main(["--data", str(tmp_path), "eval", str(tmp_path)]) == 1
    assert "holds no documents" in capsys.readouterr().err
    (tmp_path / "corpus.jsonl").write_text('{"_id": "d1", "text": "Volunteers ran the garden."}\n')
    (tmp_path / "qrels" / "test.tsv").write_text("q9\td1\t1\n")
    assert main(["--data", str(tmp_path), "eval", str(tmp_path)]) == 1
    assert "no query in queries.jsonl has judgments" in capsys.readouterr().err


@pytest.mark.parametrize("corpus_kb, query_kb, said", [
    ({"passages": [{"text": "Volunteers ran the garden."}]}, None, "corpus record d1: kb.passages[0] needs text"),
    ({"passages": "Volunteers ran the garden."}, None, "corpus record d1: kb.passages is not a list"),
    ({"site": ["Leeds"]}, None, "corpus record d1: kb.site is not a string"),
    (None, {"filters": {"site": "Leeds"}}, "query q1: kb.filters.site is not a list of strings"),
    (None, {"filters": {"sites": ["Leeds"]}}, "query q1: kb.filters holds only site, doc_type, tag, year"),
    (None, {"filters": {"year": ["last year"]}}, "query q1: kb.filters.year is not a list of years"),
])
def test_eval_names_what_is_wrong_with_an_exports_kb_field(tmp_path, capsys, corpus_kb, query_kb, said):
    (tmp_path / "qrels").mkdir()
    doc = {"_id": "d1", "text": "Volunteers ran the garden.", **({"kb": corpus_kb} if corpus_kb else {})}
    query = {"_id": "q1", "text": "volunteers", **({"kb": query_kb} if query_kb else {})}
    (tmp_path / "corpus.jsonl").write_text(json.dumps(doc) + "\n")
    (tmp_path / "queries.jsonl").write_text(json.dumps(query) + "\n")
    (tmp_path / "qrels" / "test.tsv").write_text("q1\td1\t1\n")
    assert main(["--data", str(tmp_path / "data"), "eval", str(tmp_path)]) == 1
    assert said in capsys.readouterr().err


def test_reranker_stage_is_wired(fake_kb, monkeypatch):
    """No cross-encoder ships offline, so the stage is tested with a stand-in that reverses order."""
    from dataclasses import replace

    from conftest import FakeEmbedder  # noqa: F401
    from kb.models import Block, DocMeta, LoadedDocument, NewDocument
    from kb.search import Searcher

    with fake_kb.writing():
        fake_kb.add_batch([NewDocument(f"s{i}", f"h{i}", LoadedDocument([Block(f"apple text number {i} " * (i + 1))]),
                                       DocMeta()) for i in range(5)])
    plain = [h.source for h in Searcher(fake_kb).search("apple", k=5).hits]
    fake_kb.settings = replace(fake_kb.settings, reranker="stand-in")
    searcher = Searcher(fake_kb)

    class Reverse:
        def predict(self, pairs):
            return [len(p[1]) for p in pairs]  # longest text first

    searcher._reranker = Reverse()
    reranked = [h.source for h in searcher.search("apple", k=5).hits]
    assert reranked == ["s4", "s3", "s2", "s1", "s0"] and sorted(plain) == sorted(reranked)
