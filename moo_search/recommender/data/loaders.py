"""Loaders for the GroupLens ml-100k layout, RecBole atomic files and generic CSV/Parquet."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
from pandas._libs.parsers import STR_NA_VALUES

from moo_search.errors import DataError
from moo_search.recommender.data._dataset import Dataset

logger = logging.getLogger("moo_search")

__all__ = [
    "from_frames",
    "load_grouplens_100k",
    "load_movielens_1m",
    "load_recbole",
    "load_table_dataset",
]

ML100K_GENRES = [
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
]


def _need(path: Path) -> Path:
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    return path


def _check_columns(df: pd.DataFrame, required: list[str], path: Path | str) -> None:
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {missing}; found columns {list(df.columns)}")


def from_frames(
    name: str,
    inter: pd.DataFrame,
    items: pd.DataFrame | None,
    users: pd.DataFrame | None,
    *,
    source: str,
) -> Dataset:
    """Build a :class:`Dataset` from raw frames with original ids.

    ``inter`` has ``user``, ``item`` and ``rating`` or ``click``, optional ``timestamp``;
    ``items`` has ``item`` and optional ``title``, ``year``, ``genres`` (list or
    ``|``-separated string); ``users`` has ``user`` and attribute columns.
    """
    inter = _clean_interactions(inter, source)
    _check_ids(items, "item", f"{source} (items)")
    _check_ids(users, "user", f"{source} (users)")
    user_ids = np.array(sorted(inter["user"].unique(), key=_sort_key))
    item_ids = np.array(sorted(inter["item"].unique(), key=_sort_key))
    uidx = {u: i for i, u in enumerate(user_ids)}
    iidx = {it: i for i, it in enumerate(item_ids)}
    out = pd.DataFrame(
        {
            "user": inter["user"].map(uidx).to_numpy(np.int64),
            "item": inter["item"].map(iidx).to_numpy(np.int64),
            "rating": inter["rating"].to_numpy(np.float32),
            "timestamp": inter["timestamp"].to_numpy(np.int64),
        }
    )
    item_tab = _item_table(item_ids, items)
    user_tab = pd.DataFrame({"user": user_ids})
    if users is not None:
        user_tab = user_tab.merge(users, on="user", how="left")
    user_tab = user_tab.drop(columns=["user"])
    return Dataset(
        name=name,
        interactions=out,
        items=item_tab[["title", "year", "genres"]].reset_index(drop=True),
        users=user_tab.reset_index(drop=True),
        user_ids=user_ids,
        item_ids=item_ids,
        genres=sorted({g for gs in item_tab["genres"] for g in gs}),
    )


def _clean_interactions(inter: pd.DataFrame, source: str) -> pd.DataFrame:
    """Numeric ratings (or clicks) and timestamps (row order when absent), one row per
    (user, item): the latest of repeated ones."""
    _check_columns(inter, ["user", "item"], source)
    inter = inter.copy()
    if "rating" not in inter.columns:
        if "click" not in inter.columns:
            raise DataError(
                f"{source}: needs a 'rating' or 'click' column; found {list(inter.columns)}"
            )
        inter["rating"] = inter["click"]
    ratings = pd.to_numeric(inter["rating"], errors="coerce")
    bad = ~np.isfinite(ratings.to_numpy(np.float64, na_value=np.nan))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"{source}: column 'rating' must hold finite numbers; row {row} holds "
            f"{inter['rating'].iloc[row]!r} ({int(bad.sum())} such rows)"
        )
    inter["rating"] = ratings.astype(np.float32)
    if "timestamp" in inter.columns:
        ts = pd.to_numeric(inter["timestamp"], errors="coerce")
        if ts.isna().any():
            row = int(np.flatnonzero(ts.isna().to_numpy())[0])
            raise DataError(f"{source}: column 'timestamp' must be numeric; row {row} is not")
        inter["timestamp"] = ts.astype(np.int64)
    else:
        inter["timestamp"] = np.arange(len(inter), dtype=np.int64)
    if len(inter) == 0:
        raise DataError(f"{source}: no interactions")
    dup = inter.duplicated(["user", "item"], keep="first")
    if dup.any():  # keep the latest rating of a repeated (user, item)
        logger.warning(
            "%s: %d repeated (user, item) pairs; keeping the latest", source, int(dup.sum())
        )
        inter = (
            inter.sort_values("timestamp", kind="stable")
            .drop_duplicates(["user", "item"], keep="last")
            .sort_index()
        )
    return inter


def _check_ids(table: pd.DataFrame | None, column: str, source: str) -> None:
    if table is None:
        return
    _check_columns(table, [column], source)
    if table[column].duplicated().any():
        d = table[column][table[column].duplicated()].iloc[0]
        raise DataError(f"{source}: duplicate {column} id {d!r}")


def _item_table(item_ids: np.ndarray, items: pd.DataFrame | None) -> pd.DataFrame:
    """Title (``item <id>`` when missing), year and genres of every item, in id order."""
    item_tab = pd.DataFrame({"item": item_ids})
    if items is not None:
        item_tab = item_tab.merge(items, on="item", how="left")
    title = item_tab["title"] if "title" in item_tab else pd.Series([None] * len(item_tab))
    item_tab["title"] = [
        str(t) if t is not None and str(t) != "nan" else f"item {i}"
        for t, i in zip(title, item_ids)
    ]
    year = item_tab["year"] if "year" in item_tab else pd.Series([""] * len(item_tab))
    item_tab["year"] = [_year(y) for y in year]
    genres_col = item_tab["genres"] if "genres" in item_tab else pd.Series([[]] * len(item_tab))
    item_tab["genres"] = [_genres(g) for g in genres_col]
    return item_tab


def _sort_key(v: object) -> tuple[int, object]:
    try:
        return (0, int(v))  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return (1, str(v))


def _year(v: object) -> str:
    if v is None or str(v) in ("", "nan", "None"):
        return ""
    s = str(v)
    return s[:-2] if s.endswith(".0") else s


def _genres(v: object) -> list[str]:
    if isinstance(v, list | tuple | np.ndarray):
        return [str(g) for g in v if str(g)]
    if v is None or str(v) in ("", "nan"):
        return []
    s = str(v)
    sep = "|" if "|" in s else " "
    return [g for g in s.split(sep) if g]


def load_grouplens_100k(root: Path) -> Dataset:
    """The original ``u.data`` / ``u.item`` / ``u.user`` layout."""
    inter = pd.read_csv(
        _need(root / "u.data"),
        sep="\t",
        names=["user", "item", "rating", "timestamp"],
        engine="c",
    )
    raw_items = pd.read_csv(
        _need(root / "u.item"), sep="|", header=None, encoding="latin-1", engine="python"
    )
    if raw_items.shape[1] != 5 + len(ML100K_GENRES):
        raise DataError(
            f"{root / 'u.item'}: expected {5 + len(ML100K_GENRES)} '|'-separated columns, "
            f"found {raw_items.shape[1]}"
        )
    flags = raw_items.iloc[:, 5:].to_numpy()
    titles, years = zip(*(_split_title(str(t)) for t in raw_items[1]))
    items = pd.DataFrame(
        {
            "item": raw_items[0],
            "title": titles,
            "year": years,
            "genres": [[g for g, f in zip(ML100K_GENRES, row) if f] for row in flags],
        }
    )
    users = pd.read_csv(
        _need(root / "u.user"), sep="|", names=["user", "age", "gender", "occupation", "zip_code"]
    )
    return from_frames("movielens-100k", inter, items, users, source=str(root / "u.data"))


def _split_title(t: str) -> tuple[str, str]:
    t = t.strip()
    if t.endswith(")") and len(t) > 6 and t[-5:-1].isdigit() and t[-6] == "(":
        return t[:-6].strip(), t[-5:-1]
    return t, ""


def _read_atomic(path: Path) -> pd.DataFrame:
    """RecBole atomic file: tab-separated, header ``name:type``."""
    df = pd.read_csv(_need(path), sep="\t", dtype=str, keep_default_na=False, quoting=3)
    df.columns = [c.split(":")[0] for c in df.columns]
    return df


def load_recbole(root: Path, name: str | None = None) -> Dataset:
    """RecBole atomic files ``<name>.inter`` (+ optional ``.item``, ``.user``)."""
    name = name or root.name
    inter_path = root / f"{name}.inter"
    inter = _read_atomic(inter_path).rename(columns={"user_id": "user", "item_id": "item"})
    _check_columns(inter, ["user", "item"], inter_path)
    items = users = None
    if (root / f"{name}.item").is_file():
        items = _read_atomic(root / f"{name}.item").rename(
            columns={
                "item_id": "item",
                "movie_title": "title",
                "release_year": "year",
                "class": "genres",
            }
        )
    if (root / f"{name}.user").is_file():
        users = _read_atomic(root / f"{name}.user").rename(columns={"user_id": "user"})
    ds_name = "movielens-100k" if name == "ml-100k" else name
    return from_frames(ds_name, inter, items, users, source=str(inter_path))


def load_movielens_1m(root: Path) -> Dataset:
    """MovieLens-1M as RecBole atomic files (``ml-1m.inter/.item/.user``): item ids there are
    title strings ("Toy Story (1995)") and user ids carry a ``1m_`` prefix; users keep their
    MovieLens ids ("1" .. "6040") and items their title ids, both mapped to dense indices."""
    inter_path = root / "ml-1m.inter"
    inter = _read_atomic(inter_path).rename(columns={"user_id": "user", "item_id": "item"})
    _check_columns(inter, ["user", "item", "rating"], inter_path)
    inter["user"] = inter["user"].str.removeprefix("1m_")
    items = _read_atomic(_need(root / "ml-1m.item")).rename(
        columns={
            "item_id": "item",
            "movie_title": "title",
            "release_year": "year",
            "genre": "genres",
        }
    )
    users = _read_atomic(_need(root / "ml-1m.user")).rename(columns={"user_id": "user"})
    users["user"] = users["user"].str.removeprefix("1m_")
    return from_frames("movielens-1m", inter, items, users, source=str(inter_path))


def _read_table(path: Path, ids: tuple[str, ...] = ()) -> pd.DataFrame:
    """A CSV/TSV/Parquet table whose id columns (``ids``, the file's own names) are strings
    as written: ``01`` is not ``1``, and an empty cell elsewhere does not turn them into
    floats. Other columns are read as pandas reads them."""
    _need(path)
    try:
        if path.suffix in (".parquet", ".pq"):
            table = pd.read_parquet(path)
            for c in ids:
                if c in table.columns:
                    table[c] = _ids_as_written(table[c])
            return table
        sep = "\t" if path.suffix in (".tsv", ".tab") else ","
        header = pd.read_csv(path, sep=sep, nrows=0).columns
        return pd.read_csv(
            path,
            sep=sep,
            dtype={c: str for c in ids if c in header},
            keep_default_na=False,  # an id "NA" is an id; other columns keep pandas' NA
            na_values={c: sorted(STR_NA_VALUES) for c in header if c not in ids},
        )
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: the file is empty (expected a header and rows)") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError, OSError) as e:
        raise DataError(f"{path}: cannot read it as a table: {str(e).splitlines()[0]}") from None


def _ids_as_written(col: pd.Series) -> pd.Series:
    """A Parquet id column as strings: integers as digits, integral floats without ``.0``
    (what a column with a missing value becomes), a missing value left missing."""
    if pd.api.types.is_float_dtype(col):
        return col.map(lambda v: str(int(v)) if v == v and float(v).is_integer() else v)
    return col.map(lambda v: v if v is None or (isinstance(v, float) and v != v) else str(v))


def _check_present_ids(table: pd.DataFrame, column: str, path: Path) -> None:
    """Every row of ``table`` has an id in ``column``; else a DataError naming the file and
    the row (the line of a CSV, counting its header as line 1)."""
    if column not in table.columns:
        return
    col = table[column]
    missing = col.isna().to_numpy() | (col.astype(str).str.strip() == "").to_numpy()
    if missing.any():
        row = int(np.flatnonzero(missing)[0])
        where = f"row {row}" if path.suffix in (".parquet", ".pq") else f"line {row + 2}"
        raise DataError(
            f"{path}: {where} has no {column!r} id ({int(missing.sum())} rows without one); "
            "every row needs one"
        )


def load_table_dataset(
    path: Path,
    *,
    items_path: Path | None = None,
    users_path: Path | None = None,
    columns: dict[str, str] | None = None,
) -> Dataset:
    """Generic CSV/TSV/Parquet: interactions (+ optional item and user tables).

    ``columns`` maps the canonical names (user, item, rating, click, timestamp, title,
    year, genres) to the file's own column names. Ids are strings as written; a missing id
    or a file's own problem is a DataError naming that file.
    """
    columns = columns or {}
    rename = {v: k for k, v in columns.items()}
    ids = (columns.get("user", "user"), columns.get("item", "item"))
    tables: list[pd.DataFrame | None] = []
    for file, id_column in ((path, None), (items_path, "item"), (users_path, "user")):
        if file is None:
            tables.append(None)
            continue
        table = _read_table(file, ids).rename(columns=rename)
        for c in ("user", "item") if id_column is None else (id_column,):
            _check_present_ids(table, c, file)
        if id_column is not None:
            _check_ids(table, id_column, str(file))
        tables.append(table)
    inter, items, users = tables
    assert inter is not None
    return from_frames(path.stem, inter, items, users, source=str(path))
