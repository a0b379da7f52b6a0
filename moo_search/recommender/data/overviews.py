"""Item text worth a language model: TMDB movie overviews matched to MovieLens items.

The overview table has no MovieLens ids, so items are matched on a normalised title and the
year (within one year): "Shawshank Redemption, The" and "The Shawshank Redemption" are the
same title; a bracketed alternative title ("City of Lost Children, The (Cité des enfants
perdus, La)") is dropped; case, accents and punctuation do not count. Items without a match
keep their title-and-genres text.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from moo_search.errors import DataError

__all__ = [
    "OVERVIEW_FIELDS",
    "Coverage",
    "attach_overviews",
    "coverage",
    "load_overviews",
    "match_items",
    "normalise_title",
]

OVERVIEW_FIELDS = ("overview", "tagline", "keywords")
"""Item-text fields that come from the overview table (``data.item_text``)."""

_ARTICLES = (
    "the", "a", "an", "les", "la", "le", "l'", "un", "une", "il", "das", "der", "die", "el",
    "los", "las",
)  # fmt: skip
_TRAILING_ARTICLE = re.compile(rf",\s*({'|'.join(re.escape(a) for a in _ARTICLES)})$", re.I)
_BRACKETS = re.compile(r"\s*[(\[][^)\]]*[)\]]")


def normalise_title(title: str) -> str:
    """``"Shawshank Redemption, The (1994)"`` -> ``"the shawshank redemption"``."""
    t = _BRACKETS.sub("", str(title)).strip()  # alternative titles, a.k.a., a year
    m = _TRAILING_ARTICLE.search(t)
    if m:
        article = m.group(1)
        t = f"{article}{'' if article.endswith(chr(39)) else ' '}{t[: m.start()].strip()}"
    t = unicodedata.normalize("NFKD", t).encode("ascii", "ignore").decode()
    t = t.lower().replace("&", " and ")
    t = re.sub(r"[^a-z0-9]+", " ", t)
    return re.sub(r"\s+", " ", t).strip()


def _keywords(raw: object) -> str:
    try:
        items = json.loads(str(raw))
    except (TypeError, ValueError):
        return ""
    return ", ".join(str(k.get("name", "")) for k in items if isinstance(k, dict))[:200]


def load_overviews(path: Path) -> pd.DataFrame:
    """The TMDB table as ``key`` (normalised title), ``year`` (int or -1), ``overview``,
    ``tagline``, ``keywords`` (comma-separated names)."""
    if not path.is_file():
        raise DataError(
            f"{path}: file not found; run `moo-search data fetch movie-overviews` first"
        )
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot read the overview table: {e}") from None
    missing = [c for c in ("title", "release_date", "overview") if c not in df.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {missing}; found {list(df.columns)}")
    years = pd.to_numeric(df["release_date"].str[:4], errors="coerce").fillna(-1).astype(int)
    return pd.DataFrame(
        {
            "key": [normalise_title(t) for t in df["title"]],
            "year": years.to_numpy(),
            "overview": df["overview"].str.strip(),
            "tagline": df.get("tagline", pd.Series([""] * len(df))).str.strip(),
            "keywords": [_keywords(k) for k in df.get("keywords", pd.Series([""] * len(df)))],
        }
    )


def match_items(titles: list[str], years: list[str], table: pd.DataFrame) -> list[int | None]:
    """Row of ``table`` for each item (None when unmatched): same normalised title, year
    within one (the closest year wins; an item without a year matches a unique title)."""
    by_key: dict[str, list[tuple[int, int]]] = {}
    for row, (key, year) in enumerate(zip(table["key"], table["year"])):
        if key:
            by_key.setdefault(key, []).append((int(year), row))
    out: list[int | None] = []
    for title, year in zip(titles, years):
        cands = by_key.get(normalise_title(title), [])
        y = int(year) if str(year).isdigit() else None
        if y is None:
            out.append(cands[0][1] if len(cands) == 1 else None)
            continue
        near = [(abs(cy - y), row) for cy, row in cands if cy >= 0 and abs(cy - y) <= 1]
        out.append(min(near)[1] if near else None)
    return out


def attach_overviews(items: pd.DataFrame, table: pd.DataFrame) -> pd.DataFrame:
    """``items`` with ``overview``, ``tagline``, ``keywords`` columns ("" where unmatched)."""
    rows = match_items(list(items["title"]), list(items["year"]), table)
    out = items.copy()
    for col in OVERVIEW_FIELDS:
        vals = table[col].to_numpy()
        out[col] = [str(vals[r]) if r is not None else "" for r in rows]
    return out


@dataclass
class Coverage:
    """How much of a dataset the overview table covers."""

    items: int
    matched: int
    ratings_share: float
    unmatched_sample: list[str] = field(default_factory=list)

    def line(self) -> str:
        share = self.matched / max(self.items, 1)
        return (
            f"{self.matched:,} of {self.items:,} items ({share:.1%}) have an overview, "
            f"{self.ratings_share:.1%} of the ratings"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "items": self.items,
            "matched": self.matched,
            "ratings_share": self.ratings_share,
            "unmatched_sample": self.unmatched_sample,
        }


def coverage(ds: Any, table: pd.DataFrame, *, sample: int = 8) -> Coverage:
    rows = match_items(list(ds.items["title"]), list(ds.items["year"]), table)
    hit = np.array([r is not None for r in rows])
    per_item = np.bincount(ds.interactions["item"].to_numpy(), minlength=ds.n_items)
    unmatched = [
        f"{t} ({y})" if y else str(t)
        for t, y, h in zip(ds.items["title"], ds.items["year"], hit)
        if not h
    ]
    order = np.argsort(-per_item[~hit], kind="stable")[:sample]  # the most rated misses
    return Coverage(
        items=int(ds.n_items),
        matched=int(hit.sum()),
        ratings_share=float(per_item[hit].sum() / max(per_item.sum(), 1)),
        unmatched_sample=[unmatched[i] for i in order],
    )
