"""The encoders: ONNX Runtime agrees with torch, both are safe to share between threads, and an
export that cannot be trusted is refused and torch kept."""

from __future__ import annotations

import json
import logging
import random
import shutil
import threading

import numpy as np
import pytest

from conftest import CORPUS
from kb.embed import Embedder, TorchEncoder
from kb.errors import ConfigError
from kb.model_files import content_hash, export_place, resolve_model
from kb.settings import DEFAULT_MODEL, Settings

WORDS = [w.strip(".,;:()\"'") for path in sorted(CORPUS.rglob("*.md")) for w in path.read_text().split()]


def texts(n: int, seed: int, lengths=(1, 3, 8, 20, 60, 400)) -> list[str]:
    """Distinct texts made of the sample corpus's words, of the given lengths in words (400 words
    run past the model's 256 tokens)."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        length = rng.choice(lengths)
        out.append(f"{i} " + " ".join(rng.choice(WORDS) for _ in range(length)))
    return out


@pytest.fixture(scope="module")
def torch_encoder() -> TorchEncoder:
    return TorchEncoder(DEFAULT_MODEL)


pytestmark = pytest.mark.model


def test_onnx_vectors_and_token_counts_agree_with_torch(model, torch_encoder):
    assert model.describe()["query_encoder"] == "onnx"
    sample = texts(40, seed=1)
    onnx_batch = model.encode(sample)
    reference = torch_encoder.encode(sample)
    assert onnx_batch.shape == reference.shape == (40, 384) and onnx_batch.dtype == np.float32
    assert (onnx_batch * reference).sum(axis=1).min() >= 0.9999
    singles = np.vstack([model.query_encoder.encode_one(t) for t in sample[:10]])
    assert (singles * reference[:10]).sum(axis=1).min() >= 0.9999
    assert [model.count_tokens(t) for t in sample] == [torch_encoder.count_tokens(t) for t in sample]
    assert model.count_tokens(sample[0]) > 0 and max(model.count_tokens(t) for t in sample) > 256  # never truncated


def test_sixteen_threads_mixing_queries_counts_and_batches_get_the_single_threaded_answers(model):
    """Distinct inputs on 16 threads against references computed one at a time beforehand; a
    small query cache, so entries are evicted while other threads read them."""
    shared = Embedder(model.model_id, query_cache=32, cache_dir=model.cache_dir)
    queries, counted = texts(1500, seed=2, lengths=(1, 3, 8, 16)), texts(800, seed=3)
    batches = [texts(6, seed=100 + n, lengths=(3, 8, 30)) for n in range(60)]
    encoder = shared.query_encoder
    want_query = {q: encoder.encode_one(q) for q in queries}
    want_count = {t: shared.count_tokens(t) for t in counted}
    want_batch = [encoder.encode(b) for b in batches]
    work = [("query", q) for q in queries] + [("count", t) for t in counted] + [("batch", n) for n in range(60)]
    work += [("query", q) for q in queries[:200]]  # repeats: answered from the cache
    random.Random(4).shuffle(work)
    errors, wrong, lock = [], [], threading.Lock()

    def run(part):
        for kind, item in part:
            try:
                if kind == "query":
                    ok = float(shared.encode_query(item) @ want_query[item]) > 0.99999
                elif kind == "count":
                    ok = shared.count_tokens(item) == want_count[item]
                else:
                    got = shared.encode(batches[item])
                    ok = got.shape == want_batch[item].shape and float((got * want_batch[item]).sum(1).min()) > 0.99999
            except Exception as exc:  # collected, so one failure does not hide the others
                with lock:
                    errors.append(repr(exc))
                continue
            if not ok:
                with lock:
                    wrong.append((kind, str(item)[:40]))

    threads = [threading.Thread(target=run, args=(work[n::16],)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(work) > 2500
    assert errors == [] and wrong == []


def test_the_torch_encoder_is_safe_under_threads_too(torch_encoder):
    """The Hugging Face tokenizer changes its own padding state on every call: calls are serialized."""
    sample, counted = texts(48, seed=5, lengths=(3, 8, 30)), texts(48, seed=6)
    want = torch_encoder.encode(sample)
    want_counts = [torch_encoder.count_tokens(t) for t in counted]
    errors, results = [], {}

    def run(n):
        try:
            results[n] = (torch_encoder.encode_one(sample[n]), torch_encoder.count_tokens(counted[n]),
                          torch_encoder.encode(sample[n:n + 5]))
        except Exception as exc:
            errors.append(repr(exc))

    threads = [threading.Thread(target=run, args=(n,)) for n in range(48)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    for n, (one, count, batch) in results.items():
        assert float(one @ want[n]) > 0.9999 and count == want_counts[n]
        assert float((batch * want[n:n + 5]).sum(1).min()) > 0.9999


def test_an_export_that_disagrees_with_torch_is_refused_and_torch_kept(tmp_path, monkeypatch, caplog):
    from kb import onnx_export

    place = export_place(DEFAULT_MODEL, tmp_path / "cache")
    monkeypatch.setattr(onnx_export, "MIN_COSINE", 1.5)  # no export can reach it
    with pytest.raises(onnx_export.ExportRefused, match="disagrees with torch"):
        onnx_export.export(place, progress=lambda line: None)
    assert not place.ready() and "disagrees" in place.refused["reason"]
    assert not [p for p in place.folder.parent.iterdir() if p.name.startswith(".export-")]  # no scratch left
    # a later start does not try again (no child process): it says why once and uses torch
    embedder = Embedder(DEFAULT_MODEL, cache_dir=tmp_path / "cache")
    monkeypatch.setattr("kb.embed.subprocess.run", lambda *a, **k: pytest.fail("exported again"))
    with caplog.at_level(logging.WARNING, logger="kb.embed"):
        vector = embedder.encode_query("volunteers")
        embedder.encode_query("carers")
    assert vector.shape == (384,) and embedder.describe()["query_encoder"] == "torch (fallback)"
    assert [r.message for r in caplog.records].count(caplog.records[0].message) == 1
    assert "disagrees with torch" in caplog.records[0].message


def test_a_model_with_a_prompt_is_refused_by_the_export_child_and_served_by_torch(tmp_path):
    source = tmp_path / "prompted"
    shutil.copytree(resolve_model(DEFAULT_MODEL), source)
    config = source / "config_sentence_transformers.json"
    settings = json.loads(config.read_text())
    config.write_text(json.dumps({**settings, "prompts": {"query": "query: "}, "default_prompt_name": "query"}))
    embedder = Embedder(str(source), cache_dir=tmp_path / "cache")
    assert embedder.encode_query("volunteers").shape == (384,)
    described = embedder.describe()
    assert described["query_encoder"] == "torch (fallback)" and "prompt" in described["fallback_reason"]
    assert export_place(str(source), tmp_path / "cache").refused


def test_two_processes_exporting_at_once_make_one_export_and_force_swaps_in_a_new_one(tmp_path):
    """Two servers started together on an empty cache: one exports, the other waits and uses it."""
    import os
    import stat
    import subprocess
    import sys

    from kb import onnx_export

    cache = tmp_path / "cache"
    children = [subprocess.Popen([sys.executable, "-m", "kb.onnx_export", DEFAULT_MODEL, str(cache)],
                                 stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [child.communicate(timeout=600)[1] for child in children]
    assert [child.returncode for child in children] == [0, 0], outputs
    assert sum("exporting" in out for out in outputs) == 1  # the second found the first one's export
    place = export_place(DEFAULT_MODEL, cache)
    assert place.ready() and place.manifest["min_cosine"] >= 0.9999
    assert sorted(p.name for p in cache.iterdir() if not p.name.startswith(".")) == [place.folder.name]
    assert not [p for p in cache.iterdir() if p.name.startswith((".export-", f".{place.folder.name}.old"))]
    assert stat.S_IMODE(os.stat(place.folder).st_mode) == 0o755  # readable by a server running as another user
    before = (place.folder / "model.onnx").stat().st_mtime_ns
    onnx_export.export(place, force=True, progress=lambda line: None)
    assert place.ready() and (place.folder / "model.onnx").stat().st_mtime_ns != before
    fresh = Embedder(DEFAULT_MODEL, cache_dir=cache)
    assert fresh.describe()["query_encoder"] == "onnx" and fresh.encode_query("carers").shape == (384,)


def test_a_broken_export_falls_back_to_torch_instead_of_failing_every_search(tmp_path, caplog, model):
    place = export_place(DEFAULT_MODEL, tmp_path / "cache")
    shutil.copytree(export_place(DEFAULT_MODEL, Settings.from_env().model_cache_dir).folder, place.folder)
    (place.folder / "model.onnx").write_bytes(b"not a model")  # a truncated copy, a full disk...
    assert place.ready()
    embedder = Embedder(DEFAULT_MODEL, cache_dir=tmp_path / "cache")
    with caplog.at_level(logging.WARNING, logger="kb.embed"):
        assert embedder.encode_query("volunteers").shape == (384,)
        assert embedder.encode_query("carers").shape == (384,)
    assert embedder.describe()["query_encoder"] == "torch (fallback)" and len(caplog.records) == 1
    assert "cannot load ONNX model" in embedder.describe()["fallback_reason"]


@pytest.mark.parametrize("name", ["query_encoder", "batch_encoder"])
def test_an_unknown_encoder_is_a_clear_error(name):
    with pytest.raises(ConfigError, match=f"{name} must be onnx or torch"):
        Settings(**{name: "tensorflow"}).validated()


def test_the_content_hash_follows_the_bytes_and_is_remembered(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / "weights.bin").write_bytes(b"\0" * 1000)
    first = content_hash(folder, tmp_path)
    assert content_hash(folder, tmp_path) == first == content_hash(folder)
    (folder / "weights.bin").write_bytes(b"\1" * 1000)
    assert content_hash(folder, tmp_path) != first
