"""Across sites: for one question, each site's best passages side by side, and the sites with none."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from .models import Filters, Hit
from .search import RELEVANCE_FLOOR, Searcher, validate


@dataclass
class SiteGroup:
    site: str
    partnership: str | None
    hits: list[Hit] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"site": self.site, "partnership": self.partnership, "found": bool(self.hits),
                "hits": [asdict(h) for h in self.hits]}


@dataclass
class AcrossResult:
    query: str
    groups: list[SiteGroup]

    def to_dict(self) -> dict:
        return {"query": self.query, "sites": [g.to_dict() for g in self.groups]}


def across_sites(searcher: Searcher, query: str, visibility: tuple[str, ...], per_site: int = 3,
                 floor: float = RELEVANCE_FLOOR, include_programme: bool = False) -> AcrossResult:
    """Search each visible site separately (filters inside the search), keep passages that are
    close enough in meaning to the question; sites with nothing relevant come last, said plainly."""
    text = validate(query, per_site, "hybrid")
    kb = searcher.kb
    vector = kb.embedder.encode_query(text)
    groups = []
    for site, _ in kb.store.counts("site", Filters(visibility=visibility)):
        if site == "Programme" and not include_programme:
            continue
        result = searcher.search(text, k=per_site, filters=Filters(site=[site], visibility=visibility))
        hits = [h for h in result.hits if _cosine(kb, vector, h.chunk_id) >= floor]
        groups.append(SiteGroup(site, _partnership(kb, site, visibility), hits))
    groups.sort(key=lambda g: (not g.hits, g.site))
    return AcrossResult(text, groups)


def _cosine(kb, vector: np.ndarray, chunk_id: int) -> float:
    return float(kb.index.vectors(np.asarray([chunk_id], dtype=np.int64))[0] @ vector)


def _partnership(kb, site: str, visibility) -> str | None:
    for doc in kb.store.documents(Filters(site=[site], visibility=visibility), limit=50):
        if doc.partnership:
            return doc.partnership
    return None
