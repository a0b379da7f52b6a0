"""``--verify``: re-train the exported config with its seed and compare the metrics."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from moo_search.export._files import MANIFEST, seal, verify_manifest, write_json
from moo_search.recommender.spec import recommender_spec

__all__ = ["verify_export"]


def verify_export(path: str | Path, *, atol: float = 1e-4) -> dict[str, Any]:
    """Re-train the exported config with its seed and compare with the recorded metrics.

    Writes the outcome into ``metrics.json`` (and re-seals the manifest). Returns it.
    """
    import yaml

    from moo_search.recommender.trial import run_trial

    root = Path(path)
    verify_manifest(root)
    spec = recommender_spec(yaml.safe_load((root / "config.yaml").read_text()), stored=True)
    recorded = json.loads((root / "metrics.json").read_text())
    result = run_trial(spec)
    diffs: dict[str, float] = {}
    for part in ("val", "test"):
        for k, v in recorded["metrics"][part].items():
            new = result.metrics[part].get(k)
            if v is not None and new is not None and math.isfinite(new):
                diffs[f"{part}/{k}"] = abs(float(new) - float(v))
    worst = max(diffs, key=lambda k: diffs[k]) if diffs else None
    outcome = {
        "reproduced": all(d <= atol for d in diffs.values()),
        "tolerance_abs": atol,
        "max_abs_diff": diffs[worst] if worst else 0.0,
        "worst_metric": worst,
        "metrics_checked": len(diffs),
        "rerun_metrics": result.metrics,
        "checked": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    recorded["verification"] = outcome
    write_json(root / "metrics.json", recorded)
    manifest = json.loads((root / MANIFEST).read_text())
    seal(root, manifest)
    return outcome
