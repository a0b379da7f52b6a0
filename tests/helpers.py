"""Small specs for fast tests: tiny random BERT on synthetic data with planted structure."""

from __future__ import annotations

import copy
from typing import Any

from moo_search.spec import StudySpec, spec_from_dict

TINY: dict[str, Any] = {
    "name": "tiny",
    "seed": 0,
    "data": {"dataset": "synthetic",
             "synthetic": {"n_users": 200, "n_items": 120, "interactions_per_user": 25}},
    "model": {"tiny": {"hidden_size": 32, "num_hidden_layers": 2}, "max_user_length": 48,
              "max_item_length": 16},
    "adapter": {"type": "lora", "r": 4, "alpha": 8},
    "fusion": {"alpha": 0.5, "id_dim": 32},
    "train": {"max_steps": 40, "progress": False, "eval_every": 1000, "lr": 3e-3},
}  # fmt: skip


def tiny_spec(**overrides: Any) -> StudySpec:
    """TINY with dotted-path overrides: ``tiny_spec(**{"train.lr": 1e-3})``."""
    raw = copy.deepcopy(TINY)
    for path, value in overrides.items():
        node = raw
        *parents, last = path.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    return spec_from_dict(raw)
