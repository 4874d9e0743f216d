"""Document metadata from sidecar files (`NAME.meta.json`), folder manifests and CLI flags."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import fields
from pathlib import Path

from kb.errors import LoadError
from kb.models import VISIBILITIES, DocMeta

from .dates import normalize_date

MANIFEST = "manifest.csv"
ALIASES = {"type": "doc_type", "date": "published", "source": "source_publication"}
KEYS = {f.name for f in fields(DocMeta)}


def meta_from_mapping(raw: dict, where: str) -> DocMeta:
    """Validated metadata from a dict (a sidecar's JSON or a manifest row)."""
    values = {}
    for key, value in raw.items():
        key = ALIASES.get(str(key).strip().lower(), str(key).strip().lower())
        if key not in KEYS or value in (None, ""):
            continue
        if key == "tags":
            value = value if isinstance(value, list) else str(value).split(";")
            value = [str(t).strip() for t in value if str(t).strip()]
        elif key == "published":
            date = normalize_date(str(value))
            if date is None:
                raise LoadError(f"{where}: published date {value!r} is not a date (use YYYY-MM-DD, years 1900 to 2100)")
            value = date
        elif key == "visibility" and value not in VISIBILITIES:
            raise LoadError(f"{where}: visibility must be one of {', '.join(VISIBILITIES)}")
        else:
            value = str(value).strip()
        values[key] = value
    return DocMeta(**values)


def sidecar_path(path: Path) -> Path | None:
    for candidate in (path.with_name(path.name + ".meta.json"), path.with_name(path.stem + ".meta.json")):
        if candidate.is_file():
            return candidate
    return None


def read_sidecar(path: Path) -> DocMeta:
    sidecar = sidecar_path(path)
    if sidecar is None:
        return DocMeta()
    try:
        raw = json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise LoadError(f"sidecar {sidecar.name} is not valid JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise LoadError(f"sidecar {sidecar.name} must hold a JSON object")
    return meta_from_mapping(raw, sidecar.name)


def read_manifest(folder: Path) -> dict[Path, dict]:
    """Rows of `folder/manifest.csv`, keyed by the resolved path of the file each describes."""
    path = folder / MANIFEST
    if not path.is_file():
        return {}
    rows = csv.DictReader(io.StringIO(path.read_text(encoding="utf-8-sig")))
    out = {}
    for row in rows:
        rel = (row.get("path") or "").strip()
        if rel:
            out[(folder / rel).resolve()] = row
    return out


def is_metadata_file(path: Path) -> bool:
    return path.name == MANIFEST or path.name.endswith(".meta.json")
