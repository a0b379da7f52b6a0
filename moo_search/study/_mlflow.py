"""A study mirrored in MLflow (``moo-search run --mlflow URI`` or the spec's ``mlflow``).

One MLflow experiment per study name, one parent run for the study, one child run per
finished trial: its parameters, validation and test metrics (named as in the study,
``precision@10`` -> ``val/precision_at_10``: MLflow keys allow no ``@``), its cost, the
learning curve as step metrics, its state and the path of its artifacts. Syncing is
idempotent (a trial already logged is skipped), so it can run after every trial, at the end
of a run, and again from another host; the study's own storage stays the record.

A study is identified by its id (``moo:study_id``, given at creation), not its name alone: two
studies of one name in two storages get two parent runs. Syncing runs on a thread of its own,
so a tracking server that is slow or gone never holds up a trial or Ctrl-C: the driver asks
for a sync and goes on; a failed sync is one warning (repeated only when the error changes)
and the next request tries again. The URI is checked and stripped of its credentials first
(:func:`~moo_search.study._tracking.tracking_uri`).
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from pathlib import Path
from typing import Any

from moo_search.study._keys import ATTR, STUDY_ATTR
from moo_search.study._tracking import scrub, tracking_uri

__all__ = ["MlflowMirror", "mlflow_key"]

logger = logging.getLogger("moo_search")

TAG_STUDY = "moo_search.study"
TAG_TRIAL = "moo_search.trial"
TAG_PARENT = "moo_search.parent"
TAG_STUDY_ID = "moo_search.study_id"
FINAL_SYNC_SECONDS = 15.0  # what closing waits for the last sync, at most
INTERRUPTED_SYNC_SECONDS = 2.0  # ... after Ctrl-C or SIGTERM


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
        self,
        uri: str,
        study_name: str,
        storage: str,
        *,
        every_seconds: float = 10.0,
        flag: str = "--mlflow",
    ) -> None:
        self.uri = tracking_uri(uri, flag=flag)  # checked, credentials moved out (SpecError)
        self.study_name, self.every, self.storage = study_name, every_seconds, storage
        self._client: Any = None  # made on the mirror's thread: a database store connects
        self._logged: set[int] | None = None
        self._parent: str | None = None
        self._study_id: str | None = None
        self._last = -math.inf
        self._last_error: str | None = None
        self._wanted = threading.Event()
        self._closing = False
        self._thread = threading.Thread(target=self._loop, name="moo-search-mlflow", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while True:
            self._wanted.wait()
            self._wanted.clear()
            self.sync()  # never raises: a failure is a warning
            if self._closing and not self._wanted.is_set():
                return

    @property
    def client(self) -> Any:
        if self._client is None:
            import mlflow

            # MLflow retries a database store's first connection for minutes, warning at
            # each try with the driver's error; our one warning says it (see _warn)
            logging.getLogger("mlflow.store.db.utils").setLevel(logging.ERROR)
            self._client = mlflow.MlflowClient(tracking_uri=self.uri)
        return self._client

    # ---- the parent run and what is already there
    def _experiment_id(self) -> str:
        name = f"moo-search/{self.study_name}"
        exp = self.client.get_experiment_by_name(name)
        return exp.experiment_id if exp is not None else self.client.create_experiment(name)

    def _setup(self, study: Any) -> None:
        if self._parent is not None:
            return
        self._study_id = str(study.user_attrs.get(STUDY_ATTR.STUDY_ID) or study._study_id)
        exp = self._experiment_id()
        runs = self.client.search_runs(
            [exp],
            filter_string=(
                f"tags.{TAG_PARENT} = 'true' and tags.`{TAG_STUDY_ID}` = '{self._study_id}'"
            ),
            max_results=1,
        )
        if runs:
            self._parent = runs[0].info.run_id
        else:
            run = self.client.create_run(
                exp,
                run_name=self.study_name,
                tags={
                    TAG_PARENT: "true",
                    TAG_STUDY: self.study_name,
                    TAG_STUDY_ID: self._study_id,
                    "moo_search.storage": scrub(self.storage),
                },
            )
            self._parent = run.info.run_id
        children = self.client.search_runs(
            [exp], filter_string=f"tags.mlflow.parentRunId = '{self._parent}'", max_results=50000
        )
        self._logged = {int(r.data.tags[TAG_TRIAL]) for r in children if TAG_TRIAL in r.data.tags}

    # ---- syncing
    def maybe_sync(self) -> None:
        """Ask for a :meth:`sync` at most every ``every_seconds`` (for a per-trial callback);
        returns at once: the sync runs on the mirror's thread."""
        if time.monotonic() - self._last >= self.every:
            self._last = time.monotonic()
            self.request_sync()

    def request_sync(self) -> None:
        """Ask the mirror's thread for a sync (coalesced with one already asked for)."""
        self._wanted.set()

    def sync(self) -> int:
        """Log the study's finished trials not logged yet; returns how many it logged.
        A tracking server that fails is a warning, never a failed study."""
        import optuna
        from optuna.trial import TrialState

        from moo_search.study._storage import open_storage

        try:
            study = optuna.load_study(
                study_name=self.study_name,
                storage=open_storage(self.storage, heartbeat_interval=None, grace_period=None),
            )
            self._setup(study)
            assert self._logged is not None
            done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.FAIL))
            new = [t for t in done if t.number not in self._logged]
            for t in new:
                self._log_trial(study, t)
                self._logged.add(t.number)
        except Exception as e:  # MLflow and its stores raise many types
            self._warn(e)
            return 0
        if self._last_error is not None:
            logger.warning(
                "MLflow at %s answers again; %d trials logged", scrub(self.uri), len(new)
            )
            self._last_error = None
        return len(new)

    def _warn(self, e: BaseException) -> None:
        first = str(e).splitlines()[0] if str(e) else ""
        error = scrub(f"{type(e).__name__}: {first}")
        if error != self._last_error:  # one warning per distinct failure, not one per trial
            logger.warning(
                "MLflow at %s: could not log study %r (%s); the study goes on, and the next "
                "sync tries again",
                scrub(self.uri),
                self.study_name,
                error,
            )
        self._last_error = error

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
                # an inference-only variant of a trial that ran (e.g. re-ranked)
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

    def close(self, *, interrupted: bool = False) -> None:
        """A final sync, then the parent run marked finished, waiting at most
        :data:`FINAL_SYNC_SECONDS` (:data:`INTERRUPTED_SYNC_SECONDS` after Ctrl-C, or when
        the last sync failed): what is not logged by then is logged by the next sync of this
        study."""
        self._closing = True
        self.request_sync()
        healthy = self._last_error is None
        wait = FINAL_SYNC_SECONDS if healthy and not interrupted else INTERRUPTED_SYNC_SECONDS
        self._thread.join(wait)
        if self._thread.is_alive():
            logger.warning(
                "MLflow at %s: gave up waiting %.0f s for the last sync; the trials not "
                "logged yet are logged by the next run of study %r with --mlflow",
                scrub(self.uri),
                wait,
                self.study_name,
            )
            return
        if self._parent is not None and self._last_error is None:
            try:
                self.client.set_terminated(self._parent, status="FINISHED")
            except Exception as e:
                self._warn(e)
