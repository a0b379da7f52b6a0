"""Datasets, splits and text rendering.

``load_dataset(config)`` picks a loader from :data:`moo_search.recommender.registries.DATASETS` by
``config.dataset`` (built-ins in :mod:`moo_search.recommender.data.registered`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from moo_search.errors import DataError
from moo_search.recommender.config import DataConfig
from moo_search.recommender.data._dataset import Dataset
from moo_search.recommender.data.loaders import (
    load_grouplens_100k,
    load_recbole,
    load_table_dataset,
)
from moo_search.recommender.data.overviews import OVERVIEW_FIELDS, attach_overviews, load_overviews
from moo_search.recommender.data.split import Split, make_split
from moo_search.recommender.data.synthetic import make_synthetic
from moo_search.recommender.data.text import render_items, render_users
from moo_search.recommender.registries import DATASETS

__all__ = [
    "Dataset",
    "Split",
    "ensure_dataset",
    "fetch_dataset",
    "fetchable_datasets",
    "load_dataset",
    "load_grouplens_100k",
    "load_recbole",
    "load_split",
    "load_table_dataset",
    "make_split",
    "make_synthetic",
    "render_items",
    "render_users",
]


def fetchable_datasets() -> list[str]:
    """Registered datasets that ``moo-search data fetch`` can download."""
    return [name for name, src in DATASETS.items() if src.fetch is not None]


def fetch_dataset(name: str) -> Path:
    src = DATASETS.get(name)
    if src.fetch is None:
        raise DataError(
            f"dataset {name!r} is not fetched (it is local or generated); "
            f"fetchable: {', '.join(fetchable_datasets())}"
        )
    path: Path = src.fetch()
    return path


def ensure_dataset(cfg: DataConfig) -> None:
    """Fetch a fetchable dataset into the cache when it is not there yet."""
    src = DATASETS.get(cfg.dataset)
    if src.fetch is not None and not cfg.path and src.is_cached is not None and not src.is_cached():
        src.fetch()


MIN_TEXT_COVERAGE = 0.01
"""The least share of items an overview field of ``data.item_text`` must reach: below it the
field adds (next to) nothing, and the spec is refused rather than run on empty texts."""


def load_dataset(cfg: DataConfig) -> Dataset:
    ds: Dataset = DATASETS.get(cfg.dataset).load(cfg)
    absent = [
        f
        for f in cfg.item_text
        if f not in ("title", "genres", *OVERVIEW_FIELDS) and f not in ds.items.columns
    ]
    if absent:
        raise DataError(
            f"data.item_text: {absent} are not fields of {ds.name}'s items (it has "
            f"{[c for c in ds.items.columns if c not in ('year',)]}); drop them"
        )
    wanted = [f for f in cfg.item_text if f in OVERVIEW_FIELDS]
    if wanted:
        ds.items = attach_overviews(ds.items, overview_table())
        for f in wanted:
            share = (
                float((ds.items[f].astype(str).str.strip() != "").mean()) if len(ds.items) else 0
            )
            if share < MIN_TEXT_COVERAGE:
                raise DataError(
                    f"data.item_text: {f!r} is matched for {share:.1%} of the {ds.n_items} items "
                    f"of {ds.name} (the movie-overviews table matches by title and year); the "
                    f"texts would hold next to no {f}. Drop it from data.item_text, or use a "
                    "dataset whose titles it covers (moo-search data info shows the coverage)"
                )
    return ds


def overview_table() -> Any:
    """The movie-overviews table (fetched into the cache on first use)."""
    from moo_search.recommender.data.sources import MOVIE_OVERVIEWS

    try:
        return load_overviews(MOVIE_OVERVIEWS.fetch() / "movies.csv")
    except DataError as e:
        raise DataError(
            f"data.item_text asks for movie overviews, which could not be fetched: {e}"
        ) from e


def load_split(cfg: DataConfig) -> tuple[Dataset, Split]:
    ds = load_dataset(cfg)
    s = cfg.split
    split = make_split(
        ds,
        method=s.method,
        ratios=s.ratios,
        n=s.n,
        seed=s.seed,
        threshold=cfg.relevance_threshold,
        cold_items=s.cold_items,
        cold_seed=s.cold_seed,
    )
    return ds, split
