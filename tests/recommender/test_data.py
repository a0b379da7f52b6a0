"""Datasets: loaders, bad files named in the error, checksums, splits, text."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from moo_search import DataError
from moo_search.recommender.data import load_recbole, load_table_dataset, make_split, make_synthetic
from moo_search.recommender.data import movielens as ml
from moo_search.recommender.data.text import render_item, render_users

INTER = "user,item,rating,timestamp\n1,10,5,100\n1,11,3,200\n2,10,4,150\n2,12,1,160\n"


def test_csv_loader_dense_ids_and_tables(write):
    inter = write("i.csv", INTER)
    items = write(
        "items.csv", "item,title,year,genres\n10,Heat,1995,Action|Crime\n11,Babe,1995,Comedy\n"
    )
    ds = load_table_dataset(inter, items_path=items)
    assert (ds.n_users, ds.n_items) == (2, 3)
    assert ds.interactions["user"].tolist() == [0, 0, 1, 1]
    assert ds.items["genres"].iloc[0] == ["Action", "Crime"]
    assert ds.items["title"].iloc[2] == "item 12"  # not in the item table
    assert ds.item_features().shape == (3, 3)


def test_parquet_and_column_mapping(tmp_path):
    p = tmp_path / "x.parquet"
    pd.DataFrame({"uid": [1, 2], "iid": ["a", "b"], "click": [1, 0]}).to_parquet(p)
    ds = load_table_dataset(p, columns={"user": "uid", "item": "iid"})
    assert ds.interactions["rating"].tolist() == [1.0, 0.0]


@pytest.mark.parametrize(
    ("files", "phrase"),
    [
        ({"i.csv": "user,item,rating\n1,2,x\n"}, "column 'rating' must hold finite numbers"),
        ({"i.csv": "user,item,rating\n1,2,inf\n"}, "column 'rating' must hold finite numbers"),
        ({"i.csv": "user,item,rating\n1,2,5\n,3,4\n"}, "line 3 has no 'user' id"),
        ({"i.csv": "user,item,rating\n1,,5\n"}, "line 2 has no 'item' id"),
        ({"i.csv": "user,rating\n1,5\n"}, "missing column(s) ['item']"),
        ({"i.csv": "user,item\n1,2\n"}, "needs a 'rating' or 'click' column"),
        ({"i.csv": "user,item,rating,timestamp\n1,2,5,yesterday\n"}, "'timestamp' must be numeric"),
        ({"i.csv": INTER, "items.csv": "item,title\n10,A\n10,B\n"}, "duplicate item id"),
        ({"i.csv": INTER, "users.csv": "user,age\n1,20\n1,30\n"}, "duplicate user id"),
    ],
)
def test_bad_table_files_are_named(write, files, phrase):
    paths = {name: write(name, text) for name, text in files.items()}
    with pytest.raises(DataError) as info:
        load_table_dataset(
            paths["i.csv"], items_path=paths.get("items.csv"), users_path=paths.get("users.csv")
        )
    msg = str(info.value)
    assert phrase in msg
    culprit = (
        "users.csv" if "users.csv" in files else "items.csv" if "items.csv" in files else "i.csv"
    )
    assert str(paths[culprit]) in msg  # the file that holds the problem, not another


@pytest.mark.parametrize(
    ("table", "phrase"),
    [
        ("items.csv", "line 3 has no 'item' id"),
        ("users.csv", "line 3 has no 'user' id"),
    ],
)
def test_a_missing_id_in_a_side_table_names_that_file(write, table, phrase):
    inter = write("i.csv", INTER)
    column = "item" if table == "items.csv" else "user"
    side = write(table, f"{column},title\n10,A\n,B\n")
    with pytest.raises(DataError, match=phrase) as info:
        load_table_dataset(inter, **{f"{column}s_path": side})
    assert str(side) in str(info.value)


def test_ids_are_strings_as_written(write, caplog):
    # "01" is not "1"; an id that is not a number; an empty attribute cell changes no id
    inter = write("i.csv", "user,item,rating\n01,10,5\n1,10,4\n1,x11,3\nNA,10,2\n")
    items = write("items.csv", "item,title\n10,Heat\nx11,Babe\n")
    users = write("users.csv", "user,age\n01,30\n1,\n")
    ds = load_table_dataset(inter, items_path=items, users_path=users)
    assert sorted(ds.user_ids.tolist()) == ["01", "1", "NA"]
    assert len(ds.interactions) == 4 and "repeated" not in caplog.text
    assert dict(zip(ds.item_ids, ds.items["title"])) == {"10": "Heat", "x11": "Babe"}
    ages = dict(zip(ds.user_ids, ds.users["age"]))
    assert ages["01"] == 30 and np.isnan(ages["1"])


def test_parquet_ids_as_written_and_a_missing_one_named(tmp_path):
    p = tmp_path / "x.parquet"
    pd.DataFrame({"user": [1.0, 2.0], "item": [10, 11], "rating": [5, 4]}).to_parquet(p)
    assert sorted(load_table_dataset(p).user_ids.tolist()) == ["1", "2"]
    pd.DataFrame({"user": [1.0, None], "item": [10, 11], "rating": [5, 4]}).to_parquet(p)
    with pytest.raises(DataError, match="row 1 has no 'user' id"):
        load_table_dataset(p)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(DataError, match="nope.csv: file not found"):
        load_table_dataset(tmp_path / "nope.csv")
    with pytest.raises(DataError, match=r"x\.inter: file not found"):
        load_recbole(tmp_path, "x")


def test_recbole_atomic_files(write, tmp_path):
    write(
        "d/d.inter",
        "user_id:token\titem_id:token\trating:float\ttimestamp:float\n1\t5\t4\t10\n2\t5\t2\t11\n",
    )
    write(
        "d/d.item",
        "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n5\tHeat\t1995\tAction Crime\n",
    )
    ds = load_recbole(tmp_path / "d")
    assert ds.n_users == 2 and ds.items["genres"].iloc[0] == ["Action", "Crime"]
    assert render_item("Heat", "1995", ["Action", "Crime"]) == "Heat (1995) · Action, Crime"


def _fake_wheel(tmp_path: Path, payload: bytes) -> Path:
    w = tmp_path / "recbole-1.2.1-py3-none-any.whl"
    with zipfile.ZipFile(w, "w") as zf:
        for f in ml.RECBOLE_FILES:
            zf.writestr(ml.RECBOLE_PREFIX + f, payload)
    return w


def test_checksum_mismatch_is_clear_and_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("MOO_SEARCH_CACHE", str(tmp_path / "cache"))
    wheel = _fake_wheel(tmp_path, b"tampered")
    with pytest.raises(DataError, match="SHA-256 mismatch"):
        ml.fetch_movielens_100k(sources=("recbole",), wheel=wheel)
    cache = tmp_path / "cache"
    assert not (cache / "movielens-100k").exists()
    assert not cache.exists() or not any(cache.iterdir())


def test_load_without_fetch_says_how_to_fetch(tmp_path, monkeypatch):
    monkeypatch.setenv("MOO_SEARCH_CACHE", str(tmp_path))
    with pytest.raises(DataError, match="moo-search data fetch movielens-100k"):
        ml.load_movielens_100k()


def test_chronological_split_per_user_with_ties_in_file_order():
    inter = pd.DataFrame(
        {
            "user": [0] * 10,
            "item": list(range(10)),
            "rating": [5.0] * 10,
            "timestamp": [5, 1, 2, 3, 4, 6, 7, 8, 9, 9],
        }  # items 8 and 9 tie: file order
    )
    ds = make_synthetic(n_users=2, n_items=10)
    ds.interactions = inter
    s = make_split(ds, method="chronological")
    assert s.train["item"].tolist() == [1, 2, 3, 4, 0, 5, 6, 7]
    assert s.val["item"].tolist() == [8] and s.test["item"].tolist() == [9]


def test_split_methods_partition_every_user():
    ds = make_synthetic(n_users=50, n_items=60, interactions_per_user=12)
    for method in ("chronological", "random", "leave_last"):
        s = make_split(ds, method=method, n=2, seed=3)
        assert len(s.train) + len(s.val) + len(s.test) == len(ds.interactions)
        assert s.train.groupby("user").size().min() >= 1
        both = pd.concat([s.train, s.val, s.test])
        assert not both.duplicated(["user", "item"]).any()
    lo = make_split(ds, method="leave_last", n=2)
    assert lo.test.groupby("user").size().eq(2).all()
    r1 = make_split(ds, method="random", seed=1)
    r2 = make_split(ds, method="random", seed=1)
    assert r1.test.equals(r2.test)
    # train never contains a val/test item of the same user
    seen = lo.seen_before("test").toarray()
    assert seen[lo.test["user"], lo.test["item"]].sum() == 0


def test_synthetic_has_planted_structure():
    ds = make_synthetic(n_users=200, n_items=150, seed=1)
    counts = np.bincount(ds.interactions["item"], minlength=ds.n_items)
    top = np.sort(counts)[::-1]
    assert top[:15].sum() > 3 * top[-15:].sum()  # long tail
    assert (ds.interactions["rating"] >= 4).mean() > 0.6  # users mostly get their genres


def test_user_text_holds_attributes_and_recent_history():
    ds = make_synthetic(n_users=3, n_items=20, interactions_per_user=5)
    s = make_split(ds)
    texts = render_users(ds, s.train, history_len=2)
    assert texts[0].startswith("User: age")
    assert texts[0].count(";") == 1  # two recent items


def test_grouplens_layout(write, tmp_path):
    from moo_search.recommender.data import load_grouplens_100k

    write("gl/u.data", "1\t10\t5\t881250949\n2\t10\t3\t881250950\n1\t11\t4\t881250951\n")
    flags = "|".join(["0"] * 19)
    action = "|".join(["0", "1"] + ["0"] * 17)
    write(
        "gl/u.item",
        f"10|Heat (1995)|01-Jan-1995||http://x|{action}\n11|Babe (1995)|01-Jan-1995||http://x|{flags}\n",
    )
    write("gl/u.user", "1|24|M|technician|85711\n2|53|F|other|94043\n")
    ds = load_grouplens_100k(tmp_path / "gl")
    assert (ds.n_users, ds.n_items, len(ds.interactions)) == (2, 2, 3)
    assert ds.items["title"].tolist() == ["Heat", "Babe"] and ds.items["year"].tolist() == [
        "1995",
        "1995",
    ]
    assert ds.items["genres"].iloc[0] == ["Action"]
    write("bad/u.data", "1\t10\t5\t1\n")
    write("bad/u.item", "10|Heat (1995)|x\n")
    write("bad/u.user", "1|24|M|technician|85711\n")
    with pytest.raises(DataError, match=r"u\.item: expected 24 '\|'-separated columns, found 3"):
        load_grouplens_100k(tmp_path / "bad")
