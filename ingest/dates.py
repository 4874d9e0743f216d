"""Dates from metadata, normalized to ISO (YYYY, YYYY-MM or YYYY-MM-DD)."""

from __future__ import annotations

import re
from datetime import date

_ISO = re.compile(r"^\s*(\d{4})(?:-(\d{1,2})(?:-(\d{1,2}))?)?")
_MONTHS = {m: i for i, m in enumerate(
    "jan feb mar apr may jun jul aug sep oct nov dec".split(), start=1)}
_WRITTEN = re.compile(r"^\s*(\d{1,2})\s+([A-Za-z]{3})[a-z]*\.?\s+(\d{4})")


def normalize_date(value: str) -> str | None:
    """An ISO date string, or None when the value is not a recognisable date."""
    value = (value or "").strip()
    m = _ISO.match(value)
    if m:
        year, month, day = m.group(1), m.group(2), m.group(3)
        parts = [int(year), int(month) if month else None, int(day) if day else None]
    else:
        m = _WRITTEN.match(value)
        if not m or m.group(2).lower() not in _MONTHS:
            return None
        parts = [int(m.group(3)), _MONTHS[m.group(2).lower()], int(m.group(1))]
    year, month, day = parts
    try:
        date(year, month or 1, day or 1)
    except ValueError:
        return None
    if not 1900 <= year <= 2100:
        return None
    return f"{year:04d}" + (f"-{month:02d}" if month else "") + (f"-{day:02d}" if day and month else "")
