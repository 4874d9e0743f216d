"""Export a sentence-transformers model to ONNX, verified against torch before anything uses it.

This is the only module of the serving path's encoder that imports torch, and it runs in the
process that exports (`kb model export`, or a child process kb starts when an export is missing),
never in `kb serve` itself. The graph holds the transformer, the model's pooling and the
normalization; the export counts only if the ONNX vectors of a fixed set of texts, one at a time
and as a padded batch, agree with sentence-transformers' own (cosine >= MIN_COSINE).

`python -m kb.onnx_export MODEL CACHE_DIR` exports into CACHE_DIR/onnx-<content hash>.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from .errors import ConfigError, KbError
from .model_files import EXPORT_FORMAT, MANIFEST, REFUSED, ExportPlace, export_place, library_versions, write_json

OPSET = 17
MIN_COSINE = 0.9999
INPUTS = ("input_ids", "attention_mask", "token_type_ids")
# short and long, punctuation, digits, accents, another script, and one past the model's 256 tokens
VERIFY_TEXTS = (
    "volunteers",
    "How are partnerships involving people with lived experience in decisions?",
    "Phase 2 grants of up to £500,000 over five years (2021-2026).",
    "Plymouth, Leeds & Newham: what worked -- and what didn't?",
    "Santé mentale et inégalités de santé à Coventry",
    "健康不平等 community health",
    "   leading and trailing spaces   ",
    "A partnership of the council, the NHS trust and local charities met every month. " * 30,
)


class ExportRefused(KbError):
    """The model cannot be exported faithfully; it stays on torch."""

    code = "export_refused"
    status = 500


def export(place: ExportPlace, force: bool = False, progress=print) -> dict:
    """Export `place.source` into `place.folder`, verify it, and return its manifest.

    One exporter at a time per model (a lock file beside the folder): a second process that
    asked meanwhile finds the export made and uses it. `force` exports again and swaps the new
    export in. A definite refusal (a prompt, no fast tokenizer, a graph that is not faithful)
    is written to refused.json with the library versions, so later starts fall back to torch at
    once; `force`, or other library versions, try again."""
    place.folder.parent.mkdir(parents=True, exist_ok=True)
    with open(place.folder.parent / f".{place.folder.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not force and place.ready():
            return place.manifest
        if not force and place.refused:
            raise ExportRefused(place.refused["reason"])
        try:
            return _export(place, progress)
        except ExportRefused as exc:
            refusal = {"format": EXPORT_FORMAT, "model": place.model, "reason": str(exc),
                       "versions": library_versions()}
            if not place.ready():  # a refused --force leaves a working export alone
                place.folder.mkdir(parents=True, exist_ok=True)
                write_json(place.folder / REFUSED, refusal)
            raise


def _export(place: ExportPlace, progress) -> dict:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    import torch
    from sentence_transformers import SentenceTransformer

    started = time.perf_counter()
    try:
        model = SentenceTransformer(str(place.source), device="cpu").eval()
    except Exception as exc:  # the library raises many kinds; all mean "cannot load"
        raise ConfigError(f"cannot load model {place.model!r} from {place.source}: {exc}") from None
    if getattr(model, "default_prompt_name", None):
        raise ExportRefused(f"{place.model} adds a prompt to every text; its queries go through torch")
    backend = getattr(model.tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise ExportRefused(f"{place.model} has no fast tokenizer (tokenizer.json); its queries go through torch")
    probe = (model.preprocess if hasattr(model, "preprocess") else model.tokenize)(["a", "a longer text"])
    inputs = tuple(name for name in INPUTS if name in probe)

    class Graph(torch.nn.Module):
        """Token ids in, normalized sentence vectors out: the model's own modules, then L2."""

        def __init__(self, st):
            super().__init__()
            self.st = st

        def forward(self, *arrays):
            out = self.st(dict(zip(inputs, arrays)))["sentence_embedding"]
            return torch.nn.functional.normalize(out.float(), p=2.0, dim=1)

    parent = place.folder.parent
    parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".export-", dir=parent))
    work.chmod(0o755)  # mkdtemp's 0700 would keep a server running as another user out
    try:
        progress(f"exporting {place.model} to ONNX (once per model; verified against torch)")
        dynamic = {name: {0: "batch", 1: "tokens"} for name in inputs}
        dynamic["embedding"] = {0: "batch"}
        try:
            with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore")  # tracer notes on shapes; the verification below decides
                # traced on a padded batch, so the attention mask's padding path is in the graph
                torch.onnx.export(Graph(model).eval(), tuple(probe[name] for name in inputs), str(work / "model.onnx"),
                                  input_names=list(inputs), output_names=["embedding"], dynamic_axes=dynamic,
                                  opset_version=OPSET, dynamo=False)
        except (OSError, MemoryError):
            raise  # the machine's trouble (disk, memory), not the model's: nothing is recorded
        except Exception as exc:  # tracing fails in many ways for unusual modules
            raise ExportRefused(f"{place.model} could not be exported to ONNX: {type(exc).__name__}: {exc}") from None
        (work / "tokenizer.json").write_text(backend.to_str())
        manifest = {
            "format": EXPORT_FORMAT, "model": place.model, "source": str(place.source),
            "content_hash": place.folder.name.removeprefix("onnx-"),
            "dim": int((getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension)()), "max_seq_length": int(model.max_seq_length),
            "inputs": list(inputs), "opset": OPSET, "min_cosine": None,
            "versions": library_versions(),
        }
        write_json(work / MANIFEST, manifest)
        manifest["min_cosine"] = verify(model, work, place.model)
        manifest["seconds"] = round(time.perf_counter() - started, 1)
        write_json(work / MANIFEST, manifest)
        _install(work, place.folder)
        progress(f"exported to {place.folder} (cosine to torch >= {manifest['min_cosine']:.7f})")
        return manifest
    finally:
        shutil.rmtree(work, ignore_errors=True)


def verify(model, folder: Path, name: str) -> float:
    """The lowest cosine between torch's and the export's vectors, one text at a time and batched
    (the ONNX side through `OnnxEncoder`, the very code that serves queries)."""
    from .onnx_encoder import OnnxEncoder

    texts = list(VERIFY_TEXTS)
    reference = model.encode(texts, normalize_embeddings=True, convert_to_numpy=True, batch_size=len(texts))
    encoder = OnnxEncoder(folder, threads=1, batch_threads=1, batch_size=len(texts))
    one_by_one = np.vstack([encoder.encode_one(t) for t in texts])
    batched = encoder.encode(texts)
    low = float(min((reference * one_by_one).sum(axis=1).min(), (reference * batched).sum(axis=1).min()))
    if not low >= MIN_COSINE:
        raise ExportRefused(f"the ONNX export of {name} disagrees with torch (cosine {low:.6f} < {MIN_COSINE});"
                            " its queries go through torch")
    return low


def _install(work: Path, folder: Path) -> None:
    """Swap the finished export in (the caller holds the model's export lock): whatever was there
    (an older export, a refusal) is moved aside and removed."""
    stale = folder.with_name(f".{folder.name}.old-{os.getpid()}")
    if folder.exists():
        folder.rename(stale)
    work.rename(folder)
    shutil.rmtree(stale, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kb.onnx_export", description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("cache_dir", type=Path)
    args = parser.parse_args(argv)
    try:
        place = export_place(args.model, args.cache_dir)
        if place is None:
            raise ExportRefused(f"{args.model} is not a local folder; its queries go through torch")
        export(place, progress=lambda line: print(line, file=sys.stderr, flush=True))
    except (OSError, MemoryError) as exc:  # a full disk or too little memory: not the model's fault
        print(f"error: exporting {args.model} to ONNX failed: {exc}", file=sys.stderr)
        return 1
    except KbError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
