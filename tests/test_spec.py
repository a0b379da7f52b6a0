"""The study spec: round trip, overrides, and bad input named by its field."""

from __future__ import annotations

import copy

import pytest
import yaml

from moo_search import SpecError, load_spec
from moo_search.cli import main
from moo_search.spec import parse_override, spec_from_dict

from .conftest import REPO
from .helpers import TINY

BAD_SPECS = [
    # (yaml text, the field the message must name, a phrase it must contain)
    ("search_spcae: {}", "search_spcae", "did you mean 'search_space'"),
    ("trian: {lr: 0.1}", "trian", "did you mean 'train'"),
    ("train: {lrr: 0.1}", "train.lrr", "did you mean 'lr'"),
    ("adapter: {type: lorra}", "adapter.type", "did you mean 'lora'"),
    ("adapter: {type: lora, r: 0}", "adapter.r", "greater than or equal to 1"),
    ("train: {lr: 0}", "train.lr", "must be > 0"),
    ("train: {lr: -0.001}", "train.lr", "must be > 0"),
    (
        "search_space: {train.lr: {float: [0.1, 0.01]}}",
        "search_space.train.lr",
        "low must be <= high",
    ),
    (
        "search_space: {train.lr: {float: [0, 0.01], log: true}}",
        "search_space.train.lr",
        "log scale",
    ),
    (
        "search_space: {train.lrr: {float: [0.1, 0.2]}}",
        "search_space.train.lrr",
        "did you mean 'lr'",
    ),
    (
        "search_space: {trainn.lr: {float: [0.1, 0.2]}}",
        "search_space.trainn.lr",
        "did you mean 'train'",
    ),
    ("search_space: {adapter: {float: [0.1, 0.2]}}", "search_space.adapter", "is a section"),
    (
        "search_space: {adapter.r: {integer: [1, 4]}}",
        "search_space.adapter.r",
        "{int: [low, high]}",
    ),
    ("search_space: {adapter.r: {categorical: []}}", "search_space.adapter.r", "non-empty"),
    ("search_space: {adapter.r: {int: [1.5, 4]}}", "search_space.adapter.r", "integers"),
    (
        "objectives: [{metric: precison@10, direction: maximize}]",
        "objectives.0.metric",
        "unknown metric",
    ),
    (
        "objectives: [{metric: ndcg@10, direction: up}]",
        "objectives.0.direction",
        "'minimize' or 'maximize'",
    ),
    ("objectives: [{metric: ndcg@10}]", "objectives.0.direction", "missing"),
    ("objectives: []", "objectives", "at least one objective"),
    ("constraints: ['precision@10 > 0.1']", "constraints", "expected '<metric> >= <number>'"),
    ("constraints: ['precision@10 >= abc']", "constraints", "must be a number"),
    ("constraints: ['precison@10 >= 0.1']", "constraints.0", "unknown metric"),
    ("driver: {algorithm: nsga4}", "driver.algorithm", "nsga2"),
    ("driver: {backend: pymoo, algorithm: tpe}", "driver.algorithm", "pymoo backend supports"),
    ("driver: {reference_point: [1.0]}", "driver.reference_point", "one value per objective"),
    ("budget: {n_trials: 0}", "budget.n_trials", "greater than or equal to 1"),
    ("loss: {weights: {ranking: 0, ctr: 0, diversity: 0, novelty: 0}}", "loss.weights", "all zero"),
    ("data: {dataset: csv}", "data.path", "needs data.path"),
    ("data: {split: {ratios: [0.5, 0.1, 0.1]}}", "data.split.ratios", "summing to 1"),
    ("fusion: {alpha: 1.5}", "fusion.alpha", "less than or equal to 1"),
    ("objective: not a function", "objective", "module:function"),
]


@pytest.mark.parametrize(
    ("text", "field", "phrase"), BAD_SPECS, ids=[b[1] + ":" + b[2][:20] for b in BAD_SPECS]
)
def test_bad_spec_names_field(write, text, field, phrase):
    path = write("bad.yaml", "name: t\n" + text + "\n")
    with pytest.raises(SpecError) as info:
        load_spec(path)
    msg = str(info.value)
    assert str(path) in msg
    assert f"{field}:" in msg, msg
    assert phrase in msg, msg


def test_cli_prints_spec_error_without_traceback_and_exits_2(write, capsys):
    path = write("bad.yaml", "name: t\nsearch_spcae: {}\n")
    assert main(["baselines", str(path)]) == 2
    err = capsys.readouterr().err
    assert "search_spcae" in err and "search_space" in err
    assert "Traceback" not in err


def test_missing_and_malformed_files(write, tmp_path):
    with pytest.raises(SpecError, match="spec file not found"):
        load_spec(tmp_path / "nope.yaml")
    with pytest.raises(SpecError, match="not valid YAML"):
        load_spec(write("x.yaml", "name: [unclosed\n"))
    with pytest.raises(SpecError, match="mapping at the top level"):
        load_spec(write("y.yaml", "- a\n- b\n"))


def test_quickstart_round_trips(tmp_path):
    spec = load_spec(REPO / "studies" / "quickstart.yaml")
    out = tmp_path / "resolved.yaml"
    spec.save(out)
    again = load_spec(out)
    assert again == spec
    assert yaml.safe_load(out.read_text())["search_space"]["train.lr"] == {
        "float": [3e-5, 1e-3],
        "log": True,
    }


def test_overrides_are_typed_like_yaml(write):
    path = write("s.yaml", "name: t\n")
    spec = load_spec(
        path,
        [
            "train.lr=3e-4",
            "adapter.type=dora",
            "adapter.layers=[4, 5]",
            "train.progress=false",
            "search_space.fusion.alpha={float: [0, 1]}",
        ],
    )
    assert spec.train.lr == pytest.approx(3e-4)
    assert spec.adapter.type == "dora"
    assert spec.adapter.layers == [4, 5]
    assert spec.train.progress is False
    assert spec.search_space["fusion.alpha"].high == 1
    with pytest.raises(SpecError, match="train.lrr"):
        load_spec(path, ["train.lrr=1"])
    with pytest.raises(SpecError, match="path=value"):
        parse_override("train.lr")


def test_with_params_applies_dotted_paths_and_revalidates():
    spec = spec_from_dict({"name": "t"})
    s2 = spec.with_params({"loss.weights.novelty": 0.7, "adapter.r": 4})
    assert s2.loss.weights.novelty == 0.7 and s2.adapter.r == 4
    assert spec.loss.weights.novelty == 0.0  # original untouched
    with pytest.raises(SpecError, match="adapter.r"):
        spec.with_params({"adapter.r": 0})


def test_builtin_problem_accepts_free_objectives():
    spec = spec_from_dict(
        {
            "name": "z",
            "objective": "zdt1",
            "problem": {"n_var": 10},
            "objectives": [
                {"metric": "f1", "direction": "minimize"},
                {"metric": "f2", "direction": "minimize"},
            ],
            "search_space": {"x0": {"float": [0, 1]}},
        }
    )
    assert type(spec).__name__ == "StudySpec" and not hasattr(spec, "data")


@pytest.mark.parametrize("path", sorted((REPO / "studies").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_study_validates(path):
    spec = load_spec(path)
    assert spec.objectives and spec.budget.n_trials >= 1


def test_overrides_index_into_lists(write):
    path = write("s.yaml", "name: t\nobjectives:\n  - {metric: ndcg@10, direction: maximize}\n")
    spec = load_spec(path, ["objectives.0.metric=recall@10"])
    assert spec.objectives[0].metric == "recall@10"
    with pytest.raises(SpecError, match=r"objectives is a list of 1; '3' is not an index"):
        load_spec(path, ["objectives.3.metric=recall@10"])


# --------------------------------------------------------------------------- old keys


def test_old_keys_are_read_in_their_new_places_with_one_deprecation_line(caplog):
    """Keys written before issue 31 (a built-in backbone's knob on the fusion section, the
    driver's variant flags) load into their new places, with one warning line per process."""
    import logging

    from moo_search.recommender.config import _compat

    _compat._WARNED.clear()
    raw = copy.deepcopy(TINY)
    raw["fusion"] = {**raw["fusion"], "ease_lambda": 321.0}
    raw["driver"] = {"sweep_rerank": False, "sweep_fusion": True}
    raw["search_space"] = {"fusion.ease_lambda": {"float": [100.0, 900.0], "log": True}}
    with caplog.at_level(logging.WARNING, logger="moo_search"):
        spec = spec_from_dict(copy.deepcopy(raw))
        again = spec_from_dict(copy.deepcopy(raw))
    for s in (spec, again):
        assert s.fusion.cf_params == {"lambda": 321.0}
        assert s.rerank.sweep is False and s.fusion.sweep is True
        assert "fusion.cf_params.lambda" in s.search_space
        assert "sweep_rerank" not in s.to_dict()["driver"]
    lines = [r.getMessage() for r in caplog.records if "deprecated spec keys" in r.getMessage()]
    assert len(lines) == 2, lines  # one for the fusion keys, one for the driver's flags
    assert any("driver.sweep_rerank -> rerank.sweep" in line for line in lines)


def test_a_new_sweep_key_wins_over_the_old_one():
    raw = copy.deepcopy(TINY)
    raw["driver"] = {"sweep_rerank": False}
    raw["rerank"] = {"sweep": True}
    assert spec_from_dict(raw).rerank.sweep is True


def test_the_engine_spec_has_no_variant_flags():
    """A problem's study has no inference-only variants: the driver section refuses the old
    flags there, naming the key."""
    with pytest.raises(SpecError, match="sweep_rerank"):
        spec_from_dict(
            {
                "name": "z",
                "objective": "zdt1",
                "objectives": [{"metric": "f1"}, {"metric": "f2"}],
                "driver": {"sweep_rerank": True},
            }
        )


def test_old_data_keys_move_into_the_sources_params(caplog):
    """A data section written before the dataset sources owned their knobs: the synthetic
    section, book-crossing's and csv's fields move into ``data.params`` where the dataset is
    theirs (one deprecation line), and are dropped where it is not."""
    import logging

    from moo_search.recommender.config import _compat

    _compat._WARNED.clear()
    raw = copy.deepcopy(TINY)
    raw["data"] = {
        "dataset": "synthetic",
        "synthetic": {"n_users": 90, "n_items": 40},
        "book_crossing": {"k_core": 5},
        "columns": {},
    }
    raw["search_space"] = {"data.synthetic.n_items": {"int": [30, 60]}}
    with caplog.at_level(logging.WARNING, logger="moo_search"):
        spec = spec_from_dict(copy.deepcopy(raw))
    assert spec.data.params == {"n_users": 90, "n_items": 40}  # not book-crossing's k_core
    assert spec.data.source_params().n_users == 90 and "data.params.n_items" in spec.search_space
    assert "synthetic" not in spec.to_dict()["data"]
    lines = [r.getMessage() for r in caplog.records if "deprecated spec keys" in r.getMessage()]
    assert any("data.synthetic -> data.params (synthetic)" in line for line in lines), lines


@pytest.mark.parametrize(
    ("data", "field", "phrase"),
    [
        ({"dataset": "synthetic", "params": {"n_user": 9}}, "data.params.n_user", "n_user"),
        (
            {"dataset": "synthetic", "params": {"n_items": 1}},
            "data.params.n_items",
            "greater than or equal to 2",
        ),
        ({"dataset": "movielens-100k", "params": {"k_core": 5}}, "data.params", "no knobs"),
        (
            {"dataset": "csv", "path": "x.csv", "params": {"item_path": "i"}},
            "data.params.item_path",
            "got",
        ),
    ],
)
def test_a_sources_knob_is_checked_by_its_params_model(data, field, phrase):
    raw = copy.deepcopy(TINY)
    raw["data"] = data
    with pytest.raises(SpecError) as e:
        spec_from_dict(raw)
    assert field in str(e.value) and phrase in str(e.value), str(e.value)


def test_a_study_whose_stored_data_is_of_the_old_shape_resumes(tmp_path):
    """The data a study was created with, stored before the sources owned their knobs (the
    synthetic section, defaults written out), is the same data as today's ``data.params``: a
    resume is accepted; other data is refused, naming it."""
    import optuna

    from moo_search.errors import StorageError
    from moo_search.study import STUDY_ATTR, check_fingerprint, study_fingerprint

    spec = spec_from_dict(copy.deepcopy(TINY))
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 's.db'}", study_name="s")
    old = study_fingerprint(spec)
    params = old["data"].pop("params")
    old["data"].update({"synthetic": params, "book_crossing": {"k_core": 10}, "columns": {}})
    old["data"].update({"items_path": None, "users_path": None})
    study.set_user_attr(STUDY_ATTR.FINGERPRINT, old)
    check_fingerprint(study, spec)  # the same data
    other = copy.deepcopy(TINY)
    other["data"]["params"] = {**other["data"]["params"], "n_users": 201}
    with pytest.raises(StorageError, match="different data"):
        check_fingerprint(study, spec_from_dict(other))
