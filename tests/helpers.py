"""Small specs for fast tests: tiny random BERT on synthetic data with planted structure."""

from __future__ import annotations

import copy
from typing import Any

from moo_search.spec import StudySpec, spec_from_dict

TINY: dict[str, Any] = {
    "name": "tiny",
    "seed": 0,
    "data": {
        "dataset": "synthetic",
        "params": {"n_users": 200, "n_items": 120, "interactions_per_user": 25},
    },
    "model": {
        "tiny": {"hidden_size": 32, "num_hidden_layers": 2},
        "max_user_length": 48,
        "max_item_length": 16,
    },
    "adapter": {"type": "lora", "r": 4, "alpha": 8},
    "fusion": {"alpha": 0.5},
    "train": {"max_steps": 40, "progress": False, "eval_every": 1000, "lr": 3e-3},
}


def tiny_spec(**overrides: Any) -> StudySpec:
    """TINY with dotted-path overrides, as ``--set`` applies them: ``tiny_spec(**{"train.lr":
    1e-3})``; switching ``adapter.type`` or ``fusion.cf`` leaves the old one's knobs behind."""
    from moo_search.recommender.spec import RecommenderSpec

    raw = copy.deepcopy(TINY)
    for path, value in overrides.items():
        node = raw
        *parents, last = path.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    RecommenderSpec.reconcile(TINY, raw, set(overrides))  # as --set does: a switched type
    return spec_from_dict(raw)


def custom_spec(
    fn: str,
    *,
    n_trials: int,
    backend: str = "optuna",
    storage: str = "memory://",
    out_dir: str = "reports/test",
    **extra: Any,
) -> StudySpec:
    raw: dict[str, Any] = {
        "name": "custom",
        "objective": f"tests.objectives:{fn}",
        "search_space": {"x": {"float": [0.0, 1.0]}, "y": {"float": [0.0, 1.0]}},
        "objectives": [
            {"metric": "a", "direction": "minimize"},
            {"metric": "b", "direction": "minimize"},
        ],
        "driver": {
            "backend": backend,
            "algorithm": "nsga2",
            "population": 4,
            "seed": 1,
            "reference_point": [2.5, 2.5],
        },
        "budget": {"n_trials": n_trials},
        "storage": storage,
        "out_dir": out_dir,
    }
    raw.update(extra)
    return spec_from_dict(raw)


def stepped_spec(*, n_trials: int, backend: str = "optuna", **extra: Any) -> StudySpec:
    """A study of the light objective with rungs and artifacts (``tests.objectives``'s
    ``stepped``): both objectives are ``x``, maximized; early stopping as ``extra`` says."""
    raw: dict[str, Any] = {
        "name": "stepped",
        "plugins": ["tests.objectives"],
        "objective": "stepped",
        "search_space": {"x": {"float": [1e-3, 1.0]}},
        "objectives": [
            {"metric": "a", "direction": "maximize"},
            {"metric": "b", "direction": "maximize"},
        ],
        "driver": {"backend": backend, "population": 4, "seed": 1},
        "budget": {"n_trials": n_trials},
        "storage": "memory://",
    }
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(raw.get(key), dict):
            raw[key] = {**raw[key], **value}
        else:
            raw[key] = value
    return spec_from_dict(raw)


def run_kept(spec: Any, artifact_dir: Any = None) -> Any:
    """``run_trial``'s result with the trained model on it as ``.model`` (tests that look
    inside the model)."""
    from moo_search.recommender.trial import Trial

    trial = Trial(spec, artifact_dir=artifact_dir)
    result: Any = trial.run()
    result.model = trial.model
    return result


def sphere_spec_yaml(name: str, *, n_trials: int, backend: str = "optuna") -> str:
    """A spec file's text for ``tests.objectives:sphere2`` (seconds a trial: for tests of
    processes, storages and CLI recipes rather than of trials)."""
    return f"""name: {name}
objective: tests.objectives:sphere2
search_space: {{x: {{float: [0, 1]}}, y: {{float: [0, 1]}}}}
objectives:
  - {{metric: a, direction: minimize}}
  - {{metric: b, direction: minimize}}
driver: {{backend: {backend}, algorithm: nsga2, population: 8}}
budget: {{n_trials: {n_trials}}}
"""
