"""Synthetic recommender studies for tests and benchmarks: trials recorded exactly as the
drivers record them, without running any model."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import numpy as np

from moo_search.recommender.records import BASELINE_HITS, HITS_RECORD
from moo_search.study import ATTR, STUDY_ATTR, pack_counts, record_key

__all__ = ["synthetic_study"]

_METRICS = ["precision@10", "ild@10", "novelty@10", "ctr_auc", "coverage@10"]


_BASELINES = {
    "MostPop": {
        "val": {
            "precision@10": 0.037,
            "ild@10": 0.75,
            "novelty@10": 1.3,
            "ctr_auc": 0.5,
            "coverage@10": 0.04,
        },
        "test": {},
    },
    "Random": {
        "val": {
            "precision@10": 0.004,
            "ild@10": 0.76,
            "novelty@10": 6.1,
            "ctr_auc": 0.5,
            "coverage@10": 0.99,
        },
        "test": {},
    },
    # the CTR-only baseline: the ctr_auc every fine-tune's is compared with
    "LikeRate": {"val": {"ctr_auc": 0.55}, "test": {"ctr_auc": 0.55}},
}


def _reference_front(metrics: list[str]) -> list[dict[str, Any]]:
    """A reference front a little behind the trials' trade-off curve (the same shape)."""
    reference = []
    for j, w in enumerate(np.linspace(0.0, 1.0, 6)):
        ref_vals = [
            0.07 * (1 - w) ** 0.5,
            0.69 + 0.1 * w,
            1.9 + 3.0 * w,
            0.69 - 0.1 * w,
            0.19 + 0.5 * w,
        ]
        point = dict(zip(metrics, ref_vals))
        reference.append(
            {
                "baseline": "EASE" if j % 2 else "ItemKNN",
                "knobs": {"rerank.mmr_lambda": float(1 - 0.5 * w), "rerank.pop_penalty": 0.0},
                "val": point,
                "test": point,
            }
        )
    return reference


@dataclass
class _Draws:
    """The synthetic study's draws: its trials' params' distributions, and per-user test hits
    on 400 test users (90 with a tail item), packed as a trial records them."""

    rng: np.random.Generator
    distributions: dict[str, Any]  # the trials' params'
    n_users: int = 400

    @property
    def tail_users(self) -> np.ndarray:
        return np.arange(self.n_users) < 90

    def hits(self, p: float, p_tail: float) -> dict[str, Any]:
        all_hits = self.rng.binomial(10, min(max(p, 0.0), 1.0), self.n_users)
        tail = np.where(self.tail_users, self.rng.binomial(1, p_tail, self.n_users), 0)
        return {"k": 10, "all": pack_counts(all_hits), "tail": pack_counts(tail)}


def _record_study(study: Any, metrics: list[str], draws: _Draws) -> None:
    """What a recommender study records once: objectives, baselines, the reference front,
    EASE's per-user test hits."""
    study.set_user_attr(
        STUDY_ATTR.OBJECTIVES,
        [{"metric": m, "direction": "maximize", "split": "val"} for m in metrics],
    )
    study.set_user_attr(STUDY_ATTR.REFERENCE, [0.0] * len(metrics))
    study.set_user_attr(STUDY_ATTR.BASELINES, _BASELINES)
    study.set_user_attr(
        STUDY_ATTR.REFERENCE_FRONT, {"points": _reference_front(metrics), "grid": []}
    )
    study.set_user_attr(
        BASELINE_HITS,
        {
            "EASE": draws.hits(0.06, 0.01),
            "n_users": draws.n_users,
            "tail_users": pack_counts(draws.tail_users),
        },
    )


def _complete_trial(
    x: dict[str, Any], metrics: list[str], draws: _Draws, infeasible_share: float, i: int
) -> Any:
    """A complete trial on the trade-off surface: the novelty weight moves it from accuracy
    to the beyond-accuracy metrics."""
    from optuna.trial import TrialState, create_trial

    rng = draws.rng
    w = float(x["loss.weights.novelty"])
    noise = rng.normal(0, 0.05, 5)
    vals = [
        0.08 * (1 - w) ** 0.5 + 0.005 * noise[0],
        0.70 + 0.1 * w + 0.01 * noise[1],
        2.0 + 3.0 * w + 0.2 * noise[2],
        0.7 - 0.1 * w + 0.01 * noise[3],
        0.2 + 0.5 * w,
    ][: len(metrics)]
    m = {
        "val": dict(zip(metrics, vals)),
        "test": {k: v * (1 + 0.05 * rng.normal()) for k, v in zip(metrics, vals)},
    }
    cons = [0.02 - vals[0]] if rng.random() >= infeasible_share else [0.5]
    return create_trial(
        state=TrialState.COMPLETE,
        values=vals,
        params=x,
        distributions=draws.distributions,
        user_attrs={
            ATTR.METRICS: m,
            ATTR.COST: {"seconds": 60.0},
            ATTR.CONSTRAINTS: cons,
            ATTR.PARAMS: x,
            record_key(HITS_RECORD): draws.hits(m["test"].get("precision@10", 0.06), 0.02 * w),
        },
        system_attrs={"nsga2:generation": i // 20},
        intermediate_values={},
    )


def _distributions(param_value: str) -> dict[str, Any]:
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    return {
        "loss.weights.novelty": FloatDistribution(0.0, 1.0),
        "train.lr": FloatDistribution(1e-5, 1e-2, log=True),
        "adapter.r": IntDistribution(2, 32),
        "adapter.type": CategoricalDistribution([param_value, "dora", "ia3"]),
    }


def synthetic_study(
    storage: Any,
    *,
    name: str = "synthetic",
    n_trials: int = 100,
    n_objectives: int = 2,
    failed: int = 0,
    infeasible_share: float = 0.0,
    seed: int = 0,
    param_value: str = "lora",
) -> Any:
    """An Optuna study of ``n_trials`` complete trials on a trade-off surface (+ ``failed``).

    Objectives are the first ``n_objectives`` of precision@10 (max), ild@10 (max),
    novelty@10 (max), ctr_auc (max), coverage@10 (max); params mimic a real search space.
    """
    import optuna
    from optuna.trial import TrialState, create_trial

    rng = np.random.default_rng(seed)
    metrics = list(_METRICS[:n_objectives])
    study = optuna.create_study(
        storage=storage, study_name=name, directions=["maximize"] * n_objectives
    )
    draws = _Draws(rng, _distributions(param_value))
    _record_study(study, metrics, draws)
    start = dt.datetime(2026, 1, 1)
    trials = []
    for i in range(n_trials + failed):
        x = {
            "loss.weights.novelty": float(rng.random()),
            "train.lr": float(10 ** rng.uniform(-5, -2)),
            "adapter.r": int(rng.integers(2, 33)),
            "adapter.type": str(rng.choice([param_value, "dora", "ia3"])),
        }
        if i >= n_trials:
            trials.append(
                create_trial(
                    state=TrialState.FAIL,
                    params=x,
                    distributions=draws.distributions,
                    user_attrs={ATTR.FAIL: f"TrialFailed: loss became nan at step {i}"},
                )
            )
            continue
        trials.append(_complete_trial(x, metrics, draws, infeasible_share, i))
        t0 = start + dt.timedelta(minutes=i)
        trials[-1].datetime_start, trials[-1].datetime_complete = t0, t0 + dt.timedelta(seconds=60)
    study.add_trials(trials)
    return study
