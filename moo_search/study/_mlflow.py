"""A study mirrored in MLflow (``moo-search run --mlflow URI`` or the spec's ``mlflow``).

One MLflow experiment per study name, one parent run for the study, one child run per
finished trial: its parameters, validation and test metrics (named as in the study,
``precision@10`` -> ``val/precision_at_10``: MLflow keys allow no ``@``), its cost, the
learning curve as step metrics, its state and the path of its artifacts. Syncing is
idempotent (a trial already logged is skipped), so it can run after every trial, at the end
of a run, and again from another host; the study's own storage stays the record.
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Any

from moo_search.study._keys import ATTR, STUDY_ATTR

__all__ = ["MlflowMirror", "mlflow_key"]

logger = logging.getLogger("moo_search")

TAG_STUDY = "moo_search.study"
TAG_TRIAL = "moo_search.trial"
TAG_PARENT = "moo_search.parent"


def mlflow_key(name: str) -> str:
    """A metric or parameter name MLflow accepts: ``precision@10`` -> ``precision_at_10``
    (MLflow keys allow letters, digits, ``_ - . / :`` and spaces)."""
    import re

    return re.sub(r"[^\w\-. /:]", "_", name.replace("@", "_at_"))


def _finite(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


class MlflowMirror:
    """Logs a study's finished trials to the MLflow tracking server at ``uri``."""

    def __init__(
        self, uri: str, study_name: str, storage: str, *, every_seconds: float = 10.0
    ) -> None:
        import mlflow

        self.uri, self.study_name, self.every = uri, study_name, every_seconds
        self.storage = storage
        self.client = mlflow.MlflowClient(tracking_uri=uri)
        self._logged: set[int] | None = None
        self._parent: str | None = None
        self._last = 0.0

    # ---- the parent run and what is already there
    def _experiment_id(self) -> str:
        name = f"moo-search/{self.study_name}"
        exp = self.client.get_experiment_by_name(name)
        return exp.experiment_id if exp is not None else self.client.create_experiment(name)

    def _setup(self) -> None:
        if self._parent is not None:
            return
        exp = self._experiment_id()
        runs = self.client.search_runs(
            [exp], filter_string=f"tags.{TAG_PARENT} = 'true'", max_results=1
        )
        if runs:
            self._parent = runs[0].info.run_id
        else:
            run = self.client.create_run(
                exp,
                run_name=self.study_name,
                tags={TAG_PARENT: "true", TAG_STUDY: self.study_name},
            )
            self._parent = run.info.run_id
        children = self.client.search_runs(
            [exp], filter_string=f"tags.mlflow.parentRunId = '{self._parent}'", max_results=50000
        )
        self._logged = {int(r.data.tags[TAG_TRIAL]) for r in children if TAG_TRIAL in r.data.tags}

    # ---- syncing
    def maybe_sync(self) -> None:
        """:meth:`sync` at most every ``every_seconds`` (for a per-trial callback)."""
        if time.monotonic() - self._last >= self.every:
            self.sync()

    def sync(self) -> int:
        """Log the study's finished trials not logged yet; returns how many it logged.
        A tracking server that fails is a warning, never a failed study."""
        import optuna
        from optuna.trial import TrialState

        from moo_search.study._storage import open_storage

        self._last = time.monotonic()
        try:
            study = optuna.load_study(
                study_name=self.study_name,
                storage=open_storage(self.storage, heartbeat_interval=None, grace_period=None),
            )
            self._setup()
            assert self._logged is not None
            done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.FAIL))
            new = [t for t in done if t.number not in self._logged]
            for t in new:
                self._log_trial(study, t)
                self._logged.add(t.number)
            return len(new)
        except Exception as e:  # MLflow and its stores raise many types
            logger.warning(
                "MLflow at %s: could not log study %r (%s: %s); the study goes on",
                self.uri,
                self.study_name,
                type(e).__name__,
                str(e).splitlines()[0] if str(e) else "",
            )
            return 0

    def _log_trial(self, study: Any, t: Any) -> None:
        from mlflow.entities import Metric, Param, RunTag

        assert self._parent is not None
        exp = self._experiment_id()
        run = self.client.create_run(
            exp,
            run_name=f"trial {t.number}",
            tags={
                "mlflow.parentRunId": self._parent,
                TAG_STUDY: self.study_name,
                TAG_TRIAL: str(t.number),
                "moo_search.state": t.state.name,
                # an inference-only variant (re-ranked, or fused at other weights) of a fine-tune
                **(
                    {"moo_search.variant_of": str(t.user_attrs[ATTR.DERIVED_FROM])}
                    if t.user_attrs.get(ATTR.DERIVED_FROM) is not None
                    else {}
                ),
            },
        )
        rid, now = run.info.run_id, int(time.time() * 1000)
        params = [Param(mlflow_key(k), str(v)[:500]) for k, v in sorted(t.params.items())]
        metrics: list[Metric] = []
        names = [o["metric"] for o in study.user_attrs.get(STUDY_ATTR.OBJECTIVES) or []]
        recorded = t.user_attrs.get(ATTR.METRICS) or {}
        for part, values in recorded.items():
            if isinstance(values, dict):
                metrics += [
                    Metric(mlflow_key(f"{part}/{k}"), float(v), now, 0)
                    for k, v in values.items()
                    if _finite(v)
                ]
        if t.values and not recorded:  # a custom objective: its values by objective name
            labels = names if len(names) == len(t.values) else range(len(t.values))
            metrics += [
                Metric(mlflow_key(f"val/{n}"), float(v), now, 0)
                for n, v in zip(labels, t.values)
                if _finite(v)
            ]
        cost = t.user_attrs.get(ATTR.COST) or {}
        metrics += [
            Metric(mlflow_key(f"cost/{k}"), float(v), now, 0) for k, v in cost.items() if _finite(v)
        ]
        metrics += self._curve(t, now)
        tags = []
        if t.user_attrs.get(ATTR.ARTIFACTS):
            tags.append(RunTag("moo_search.artifacts", str(t.user_attrs[ATTR.ARTIFACTS])))
        if t.user_attrs.get(ATTR.FAIL):
            tags.append(RunTag("moo_search.fail_reason", str(t.user_attrs[ATTR.FAIL])[:5000]))
        for i in range(0, max(len(metrics), 1), 1000):  # MLflow's batch limit
            self.client.log_batch(
                rid,
                metrics=metrics[i : i + 1000],
                params=params if i == 0 else [],
                tags=tags if i == 0 else [],
            )
        status = "FINISHED" if t.state.name == "COMPLETE" else "FAILED"
        self.client.set_terminated(rid, status=status)

    @staticmethod
    def _curve(t: Any, now: int) -> list[Any]:
        """The learning curve (``loss_curve.json`` beside the artifacts) as step metrics."""
        from mlflow.entities import Metric

        art = t.user_attrs.get(ATTR.ARTIFACTS)
        path = Path(art) / "loss_curve.json" if art else None
        if path is None or not path.is_file():
            return []
        try:
            curve = json.loads(path.read_text())
        except (OSError, ValueError):
            return []
        steps, loss = curve.get("steps") or [], curve.get("loss") or []
        return [
            Metric("train/loss", float(v), now, int(s)) for s, v in zip(steps, loss) if _finite(v)
        ]

    def close(self) -> None:
        """A final sync, then the parent run marked finished."""
        self.sync()
        if self._parent is not None:
            try:
                self.client.set_terminated(self._parent, status="FINISHED")
            except Exception as e:
                logger.warning("MLflow at %s: %s", self.uri, e)
