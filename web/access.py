"""Who is asking, and so which documents they may see."""

from __future__ import annotations

PUBLIC = ("public",)


def visibility() -> tuple[str, ...]:
    """Visibilities the current visitor may read. Anonymous visitors see public documents only."""
    return PUBLIC
