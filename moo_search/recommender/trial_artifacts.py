"""What a trial writes when it has an artifact directory: the resolved config, the adapter
(PEFT format), the heads, the top-K lists, the metrics and the loss curve (what export reads
back and seals)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["write_artifacts"]


def write_artifacts(root: Path, trial: Any) -> Path:
    """The :class:`~moo_search.recommender.trial.Trial`'s resolved config, adapter (PEFT
    format), heads, top-k lists, metrics and loss curve under ``root``."""
    from safetensors.torch import save_file

    spec, model, result, lists = trial.spec, trial.model, trial.result, trial.lists

    root.mkdir(parents=True, exist_ok=True)
    spec.save(root / "config.yaml")
    if spec.adapter.type != "none":
        model.encoder.save_pretrained(str(root / "adapter"))
    save_file(model.head_state(), str(root / "heads.safetensors"))
    arrays: dict[str, Any] = {f"{p}_users": users for p, (users, _) in lists.items()}
    arrays.update({f"{p}_lists": top for p, (_, top) in lists.items()})
    np.savez_compressed(root / "lists.npz", **arrays)
    (root / "metrics.json").write_text(
        json.dumps(
            {"metrics": result.metrics, "cost": result.cost, "base_model": result.base_model},
            indent=2,
            sort_keys=True,
        )
    )
    curve = {k: result.history[k] for k in ("steps", "loss", "terms", "evals", "best_step")}
    (root / "loss_curve.json").write_text(json.dumps(curve, sort_keys=True))
    return root
