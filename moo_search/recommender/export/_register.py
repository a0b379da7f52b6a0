"""Registering a bundle in an MLflow model registry (``moo-search export --register``)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from moo_search.errors import ExportError
from moo_search.study._mlflow import mlflow_key
from moo_search.study._tracking import scrub, tracking_uri

__all__ = ["register_bundle"]

logger = logging.getLogger("moo_search")


def _flat(d: Any, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    if isinstance(d, dict):
        for k, v in d.items():
            out.update(_flat(v, f"{prefix}{k}."))
    else:
        out[prefix[:-1]] = d
    return out


def register_bundle(bundle: Path, name: str, uri: str | None = None) -> Any:
    """Log the bundle at ``bundle`` unchanged as a run's ``model`` artifact (its manifest
    still verifies) with the trial's config as params, its validation and test metrics and
    the manifest's hashes as tags, and register it as a new version of model ``name``.

    Returns the registered ``ModelVersion``.
    """
    import mlflow
    import yaml

    from moo_search.export._files import verify_manifest

    manifest = verify_manifest(bundle)
    config = yaml.safe_load((bundle / "config.yaml").read_text())
    recorded = json.loads((bundle / "metrics.json").read_text())
    study = manifest.get("study", {})
    if uri:
        mlflow.set_tracking_uri(tracking_uri(uri, flag="--tracking-uri"))
    try:
        mlflow.set_experiment(f"moo-search/{study.get('name', 'exports')}")
        run_name = f"{study.get('name')}-trial-{study.get('trial')}"
        with mlflow.start_run(run_name=run_name) as run:
            _log_run(mlflow, manifest, config, recorded)
            mlflow.log_artifacts(str(bundle), artifact_path="model")
        version = mlflow.register_model(f"runs:/{run.info.run_id}/model", name)
    except ExportError:
        raise
    except Exception as e:  # MLflow raises its own and its store's errors
        first = str(e).splitlines()[0] if str(e) else ""
        raise ExportError(
            scrub(
                f"--register {name}: MLflow at {mlflow.get_tracking_uri()} refused it "
                f"({type(e).__name__}: {first})"
            )
        ) from None
    logger.info(
        "registered %s as model %r version %s (run %s)",
        bundle,
        name,
        version.version,
        run.info.run_id,
    )
    return version


def _log_run(
    mlflow: Any, manifest: dict[str, Any], config: dict[str, Any], recorded: dict[str, Any]
) -> None:
    """The run's params (the trial's config), metrics (validation and test) and tags (the
    study, trial, selection rule, base model, data fingerprint and file hashes)."""
    study = manifest.get("study", {})
    params = {
        mlflow_key(k): str(v)[:500]
        for k, v in _flat(config).items()
        if k not in ("name", "description")
    }
    mlflow.log_params(params)
    metrics = {
        mlflow_key(f"{part}/{k}"): float(v)
        for part, values in (recorded.get("metrics") or {}).items()
        if isinstance(values, dict)
        for k, v in values.items()
        if isinstance(v, int | float) and v == v
    }
    mlflow.log_metrics(metrics)
    mlflow.set_tags(
        {
            "moo_search.study": study.get("name"),
            "moo_search.trial": study.get("trial"),
            "moo_search.selection": (recorded.get("selection") or {}).get("rule"),
            "moo_search.base_model": manifest["base_model"]["id"],
            "moo_search.base_model_sha256": manifest["base_model"]["weights_sha256"],
            "moo_search.data_fingerprint": manifest["data"]["fingerprint"],
            "moo_search.files_sha256": json.dumps(manifest["files"], sort_keys=True)[:5000],
        }
    )
