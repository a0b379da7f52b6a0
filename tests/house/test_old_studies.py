"""Studies written by older code (before the study/ layer, before the objective protocol,
before issue 31 moved the knobs) open, report, select and export with today's code."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest

from moo_search.study import count_states, is_derived, load_study

optuna.logging.set_verbosity(optuna.logging.ERROR)
REPO = Path(__file__).resolve().parents[2]
FIXTURE = REPO / "tests" / "fixtures" / "legacy_study.json"


# --------------------------------------------------------------------------- an old study


def _restore(fixture: dict, url: str, artifacts: Path | None = None) -> optuna.Study:
    """Write the stored fixture (a study dumped by moo-search before the study/ layer) into a
    fresh storage, trial by trial, as Optuna would hold it."""
    from optuna.distributions import json_to_distribution
    from optuna.trial import TrialState, create_trial

    study = optuna.create_study(
        storage=url,
        study_name=fixture["study_name"],
        directions=[d.lower() for d in fixture["directions"]],
    )
    for k, v in fixture["user_attrs"].items():
        study.set_user_attr(k, v)
    for t in fixture["trials"]:
        if artifacts is not None and "moo:artifact_dir" in t["user_attrs"]:
            t["user_attrs"]["moo:artifact_dir"] = str(artifacts)  # this machine's copy
        study.add_trial(
            create_trial(
                state=TrialState[t["state"]],
                values=t["values"],
                params=t["params"],
                distributions={k: json_to_distribution(d) for k, d in t["distributions"].items()},
                user_attrs=t["user_attrs"],
                system_attrs=t["system_attrs"],
            )
        )
    return study


def test_a_study_written_before_the_study_layer_opens_reports_and_selects(tmp_path):
    from moo_search.export import select_trial
    from moo_search.report import build_report, collect

    fixture = json.loads(FIXTURE.read_text())
    db = tmp_path / "legacy" / "study.db"
    db.parent.mkdir()
    _restore(fixture, f"sqlite:///{db}")
    study = load_study(db.parent)
    counts = count_states(study)
    derived = sum(is_derived(t) for t in study.trials)
    assert counts["COMPLETE"] == 2 and counts["DERIVED"] == derived == 10
    data = collect(study)
    assert data.metrics == ["precision@10", "ild@10"] and data.reference  # its reference front
    assert data.front_undominated is not None
    html = build_report(db.parent).read_text()
    assert "legacy" in html
    chosen = select_trial(study, trial=None, select="knee", where=[])
    assert chosen.trial.number in {r["trial"] for r in chosen.front}
    # its conversion metrics under their old names (ctr_*) still read, filter and show
    old = select_trial(study, trial=None, select="knee", where=["ctr_auc>=0.5"])
    assert old.trial.number in {r["trial"] for r in old.front}
    assert "ctr_auc" in html


@pytest.mark.parametrize(
    ("commit", "config_check"),
    [
        # before recommender/ and the objective protocol
        ("13f7084", None),
        # before issue 31 moved the backbones' and adapters' knobs (it searched
        # fusion.ease_lambda and adapter.r): its bundle carries cf_params.lambda, same value
        ("c2efbbc", ("ease_lambda", "lambda: 176.92")),
    ],
)
def test_a_study_written_by_older_code_opens_reports_and_exports(tmp_path, commit, config_check):
    """A study of the default trial written by an older commit
    (tests/fixtures/make_study_<commit>.py), with its fine-tune's artifact files: it opens,
    reports and exports, and today's code re-runs its trial to the metrics it recorded."""
    import base64

    from moo_search.recommender.export import export_trial, load_exported, verify_export
    from moo_search.report import build_report, collect

    fixture = json.loads((REPO / "tests" / "fixtures" / f"study_{commit}.json").read_text())
    art = tmp_path / "artifacts" / "trial_00000"
    for rel, blob in fixture["artifact_files"].items():
        (art / rel).parent.mkdir(parents=True, exist_ok=True)
        (art / rel).write_bytes(base64.b64decode(blob))
    db = tmp_path / "old" / "study.db"
    db.parent.mkdir()
    _restore(fixture, f"sqlite:///{db}", artifacts=art)
    study = load_study(db.parent)
    assert count_states(study)["COMPLETE"] == 1 and count_states(study)["DERIVED"] == 5
    data = collect(study)
    top = data.panel.facts["vs_baseline"]
    assert data.reference and top and top["baseline"] == "EASE"
    assert (data.rows["artifacts"] == "verified").sum() == 6  # the files are the trial's own
    assert f"at-{commit}" in build_report(db.parent).read_text()
    out = export_trial(db.parent, out=tmp_path / "bundle", select="knee")
    rec = load_exported(out)
    assert len(rec.recommend(rec.user_ids[0], k=5)) == 5
    if config_check is not None:
        gone, there = config_check
        config = (out / "config.yaml").read_text()
        assert gone not in config and there in config
    # today's code re-runs the trial to the metrics that code recorded: the fixture was
    # written on another CPU, whose fp32 kernels (AVX-512 or not) round differently, so the
    # check is at 1e-3, not export --verify's same-machine 1e-4 (an AVX2-only EPYC differed
    # from the recording by 1.6e-4 in val/gini@10)
    outcome = verify_export(out, atol=1e-3)
    assert outcome["reproduced"] and outcome["metrics_checked"] > 20, outcome
