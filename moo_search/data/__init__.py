"""Datasets, splits and text rendering.

``load_dataset(config)`` picks a loader from the registry by ``config.dataset``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from moo_search.data._dataset import Dataset
from moo_search.data.loaders import load_grouplens_100k, load_recbole, load_table_dataset
from moo_search.data.movielens import fetch_movielens_100k, load_movielens_100k
from moo_search.data.split import Split, make_split
from moo_search.data.synthetic import make_synthetic
from moo_search.data.text import render_items, render_users
from moo_search.errors import DataError
from moo_search.spec import DataConfig

__all__ = [
    "LOADERS",
    "Dataset",
    "Split",
    "ensure_dataset",
    "fetch_dataset",
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


def _synthetic(cfg: DataConfig) -> Dataset:
    return make_synthetic(**cfg.synthetic.model_dump())


def _ml100k(cfg: DataConfig) -> Dataset:
    return load_movielens_100k(Path(cfg.path) if cfg.path else None)


def _recbole(cfg: DataConfig) -> Dataset:
    assert cfg.path is not None
    p = Path(cfg.path)
    if not p.is_dir():
        raise DataError(f"data.path: {p} is not a directory of RecBole atomic files")
    return load_recbole(p)


def _csv(cfg: DataConfig) -> Dataset:
    assert cfg.path is not None
    return load_table_dataset(
        Path(cfg.path),
        items_path=Path(cfg.items_path) if cfg.items_path else None,
        users_path=Path(cfg.users_path) if cfg.users_path else None,
        columns=cfg.columns,
    )


LOADERS: dict[str, Callable[[DataConfig], Dataset]] = {
    "movielens-100k": _ml100k,
    "synthetic": _synthetic,
    "recbole": _recbole,
    "csv": _csv,
}

FETCHERS: dict[str, Callable[[], Path]] = {"movielens-100k": fetch_movielens_100k}


def fetch_dataset(name: str) -> Path:
    if name not in FETCHERS:
        raise DataError(f"no fetcher for dataset {name!r}; known: {sorted(FETCHERS)}")
    return FETCHERS[name]()


def ensure_dataset(cfg: DataConfig) -> None:
    """Fetch a fetchable dataset into the cache when it is not there yet."""
    if cfg.dataset == "movielens-100k" and not cfg.path:
        from moo_search.data.movielens import is_cached

        if not is_cached():
            fetch_movielens_100k()


def load_dataset(cfg: DataConfig) -> Dataset:
    return LOADERS[cfg.dataset](cfg)


def load_split(cfg: DataConfig) -> tuple[Dataset, Split]:
    ds = load_dataset(cfg)
    s = cfg.split
    split = make_split(
        ds, method=s.method, ratios=s.ratios, n=s.n, seed=s.seed, threshold=cfg.relevance_threshold
    )
    return ds, split
