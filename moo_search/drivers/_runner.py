"""One trial as the Optuna objective: suggest, resolve, evaluate, record."""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator
from typing import Any

from moo_search.drivers._context import StudyContext
from moo_search.errors import MooSearchError
from moo_search.objective import EvalRequest, Evaluation, metric_value
from moo_search.spec import Dimension, StudySpec, suggestion_order
from moo_search.stats import finite_or_none
from moo_search.study import ATTR, artifact_hashes, finite_metrics, is_derived, record_key
from moo_search.study import violations as recorded_violations

__all__ = ["TrialRunner", "constraints_func", "suggest"]

MAX_REPEATS = 50
"""Repeated proposals skipped in a row before one is run anyway: a small discrete search space
may have no new configuration left, and the study must still end."""


def suggest(trial: Any, space: dict[str, Dimension]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for path in suggestion_order(space):  # what a `when` depends on is suggested first
        d = space[path]
        if not d.active(params):  # a knob that does not act here (Dimension.when)
            continue
        if d.kind == "categorical":
            params[path] = trial.suggest_categorical(path, d.choices)
        elif d.kind == "int":
            params[path] = trial.suggest_int(
                path,
                int(d.low or 0),
                int(d.high or 0),
                log=d.log,
                step=int(d.step) if d.step else 1,
            )
        else:
            params[path] = trial.suggest_float(
                path, float(d.low or 0), float(d.high or 0), log=d.log, step=d.step
            )
    return params


class TrialRunner:
    """The Optuna objective: suggest, resolve, evaluate, record. Failures are recorded with
    their reason and re-raised for Optuna to mark the trial FAIL."""

    def __init__(self, ctx: StudyContext) -> None:
        self.ctx = ctx
        self.last_values: list[float] | None = None
        self.last_violations: list[float] = []
        self.repeats = 0  # proposals in a row that repeated a finished trial (skipped)
        self._curves: dict[int, list[dict[str, Any]]] = {}  # each running trial's rung points

    def _repeat_of(self, trial: Any, params: dict[str, Any]) -> int | None:
        """The number of a finished (or running) trial with exactly these parameters, if
        a sampler proposed them again: on resume, or in another process seeded alike
        (enqueued parameters, anchors and pymoo's slots, always run)."""
        from optuna.trial import TrialState

        if self.repeats >= MAX_REPEATS:
            return None
        if "fixed_params" in trial.storage.get_trial_system_attrs(trial._trial_id):
            return None  # enqueued on purpose
        states = (TrialState.COMPLETE, TrialState.RUNNING)  # running: another worker's
        for t in self.ctx.study.get_trials(deepcopy=False, states=states):
            if t.number != trial.number and t.params == params and not is_derived(t):
                return int(t.number)
        return None

    def _rung_hook(self, trial: Any) -> Any:
        """The early-stopping hook of this trial, or None when early stopping is off."""
        import optuna

        from moo_search.drivers._pruning import stays

        ctx, es = self.ctx, self.ctx.spec.driver.early_stopping
        curve: list[dict[str, Any]] = []
        self._curves[trial.number] = curve
        if not es.enabled:
            return None
        rungs: dict[str, list[float | None]] = {}

        def hook(step: int, metrics: dict[str, dict[str, float]], cost: dict[str, float]) -> None:
            values = [metric_value(metrics, cost, m) for m in ctx.metric_names]
            rungs[str(step)] = _finite_list(values)
            curve.append({"step": step, "values": _finite_list(values)})
            trial.set_user_attr(ATTR.RUNGS, rungs)
            trial.set_user_attr(ATTR.CURVE, curve)
            keep, n = stays(
                ctx.study,
                trial.number,
                step,
                values,
                ctx.directions,
                eta=es.eta,
                min_trials=es.min_trials,
            )
            if not keep:
                steps = ctx.objective.steps(ctx.spec) if ctx.objective else step
                shown = ", ".join(f"{m} {v:.4g}" for m, v in zip(ctx.metric_names, values))
                reason = (
                    f"stopped at rung {step}/{steps} steps: ({shown}) ranks "
                    f"outside the best 1/{es.eta:g} of the {n} trials at this rung "
                    "(multi-objective successive halving)"
                )
                trial.set_user_attr(ATTR.PRUNED_AT, step)
                trial.set_user_attr(ATTR.FAIL, reason)
                raise optuna.TrialPruned(reason)

        return hook

    def _surplus(self, trial: Any) -> bool:
        from optuna.trial import TrialState

        ahead = [
            t
            for t in self.ctx.study.get_trials(
                deepcopy=False, states=(TrialState.COMPLETE, TrialState.RUNNING)
            )
            if t.number < trial.number and not is_derived(t)
        ]
        return len(ahead) >= self.ctx.n_trials

    def __call__(self, trial: Any) -> list[float]:
        ctx = self.ctx
        self.last_values = None
        t0 = time.monotonic()
        with self._failures(trial):
            params = self._start(trial)
            spec, ev = self._evaluate(trial, params)
            values = self._record(trial, spec, params, ev)
        ctx.durations.append(time.monotonic() - t0)
        self.last_values = values
        return values

    def _start(self, trial: Any) -> dict[str, Any]:
        """Who runs it, the budget's room, its params (a repeat is pruned, not run)."""
        import optuna

        from moo_search.drivers._workers import worker_record

        trial.set_user_attr(ATTR.WORKER, worker_record(trial.number))
        if self._surplus(trial):
            trial.set_user_attr(ATTR.FAIL, "budget already reached by other workers")
            raise optuna.TrialPruned("budget already reached by other workers")
        return self._params(trial)

    @contextlib.contextmanager
    def _failures(self, trial: Any) -> Iterator[None]:
        """A failure is recorded on the trial with its reason and re-raised (a prune as is)."""
        import optuna

        try:
            yield
        except optuna.TrialPruned:
            raise
        except BaseException as e:
            reason = (
                "interrupted (Ctrl-C)"
                if isinstance(e, KeyboardInterrupt)
                else f"{type(e).__name__}: {e}"
            )
            trial.set_user_attr(ATTR.FAIL, reason[:2000])
            self.ctx.session_failures += not isinstance(e, KeyboardInterrupt)
            raise

    def _params(self, trial: Any) -> dict[str, Any]:
        """The trial's suggested params; a repeat of an earlier trial's is pruned, not run."""
        import optuna

        params = suggest(trial, self.ctx.space)
        trial.set_user_attr(ATTR.PARAMS, params)
        same = self._repeat_of(trial, params)
        if same is not None:  # not run again; a pruned trial leaves the budget as it was
            self.repeats += 1
            reason = f"the sampler proposed trial {same}'s parameters again: not re-run"
            trial.set_user_attr(ATTR.FAIL, reason)
            raise optuna.TrialPruned(reason)
        self.repeats = 0
        return params

    def _evaluate(self, trial: Any, params: dict[str, Any]) -> tuple[Any, Evaluation]:
        """(the trial's spec, the objective's evaluation), with its config and artifacts
        recorded."""
        from moo_search.interrupts import interruptible

        req = self._request(trial, params)
        with interruptible():  # (interrupts are held around it: BaseDriver._run_one)
            ev = self.ctx.evaluate(req.params, req.spec, req.artifact_dir, on_rung=req.on_rung)
        self._kept(trial, req)
        return req.spec, ev

    def _request(self, trial: Any, params: dict[str, Any]) -> EvalRequest:
        """What the objective evaluates for ``trial`` (its resolved config recorded)."""
        ctx = self.ctx
        objective = ctx.objective
        assert objective is not None
        spec = ctx.spec.with_params(params) if objective.searches_spec else ctx.spec
        if objective.searches_spec:
            trial.set_user_attr(ATTR.CONFIG, spec.to_dict())
        art = ctx.study_dir / "artifacts" / f"trial_{trial.number:05d}"
        return EvalRequest(
            params,
            spec,
            art if objective.keeps_artifacts else None,
            self._rung_hook(trial) if objective.has_rungs else None,
        )

    def _kept(self, trial: Any, req: EvalRequest) -> None:
        """The trial's artifact directory and hashes (what export and report check: the
        files are this trial's, not a later run's)."""
        if req.artifact_dir is not None:
            trial.set_user_attr(ATTR.ARTIFACTS, str(req.artifact_dir.resolve()))
            trial.set_user_attr(ATTR.ARTIFACT_SHA256, artifact_hashes(req.artifact_dir))

    def run_group(self, trials: list[Any]) -> list[tuple[Any, list[float] | None]]:
        """Run ``trials`` (held RUNNING by this worker) together through the objective's
        group evaluator (``driver.fuse``); each one's (state, values), its failure recorded
        as :meth:`__call__` records it. A Ctrl-C fails them all and is re-raised."""
        import optuna
        from optuna.trial import TrialState

        from moo_search.interrupts import interruptible

        assert self.ctx.evaluate_group is not None
        out: list[tuple[Any, list[float] | None]] = [(TrialState.FAIL, None)] * len(trials)
        held: list[tuple[int, EvalRequest]] = []
        for j, trial in enumerate(trials):
            try:
                with self._failures(trial):
                    held.append((j, self._request(trial, self._start(trial))))
            except optuna.TrialPruned:
                out[j] = (TrialState.PRUNED, None)
            except Exception:
                out[j] = (TrialState.FAIL, None)
        t0 = time.monotonic()
        try:
            with interruptible():
                results = self.ctx.evaluate_group([req for _, req in held]) if held else []
        except KeyboardInterrupt:
            for j, _ in held:
                trials[j].set_user_attr(ATTR.FAIL, "interrupted (Ctrl-C)")
            raise
        except Exception as e:  # the group evaluation itself failed: each held trial, with it
            results = [e] * len(held)
        for (j, req), res in zip(held, results, strict=True):
            trial = trials[j]
            try:
                with self._failures(trial):
                    if isinstance(res, BaseException):
                        raise res
                    self._kept(trial, req)
                    out[j] = (TrialState.COMPLETE, self._record(trial, req.spec, req.params, res))
                    self.ctx.durations.append((time.monotonic() - t0) / len(held))
            except optuna.TrialPruned:
                out[j] = (TrialState.PRUNED, None)
            except Exception:
                out[j] = (TrialState.FAIL, None)
        return out

    def _record(self, trial: Any, spec: Any, params: dict[str, Any], ev: Evaluation) -> list[float]:
        """Record what the evaluation gave (metrics, cost, constraints, the curve's last
        point, the variants); the objective values, refused where one is not finite."""
        ctx = self.ctx
        objective = ctx.objective
        assert objective is not None
        metrics, cost = ev.metrics, ev.cost
        records = _records(ev.records)
        for key, value in records.items():
            trial.set_user_attr(key, value)
        trial.set_user_attr(ATTR.METRICS, finite_metrics(metrics))
        trial.set_user_attr(ATTR.COST, finite_metrics({"val": cost})["val"])
        values = [metric_value(metrics, cost, m) for m in ctx.metric_names]
        bad = [m for m, v in zip(ctx.metric_names, values) if not math.isfinite(v)]
        if bad:
            raise MooSearchError(f"objective(s) {bad} are not finite: {values}")
        if ctx.spec.driver.early_stopping.enabled and objective.has_rungs:
            final = {"step": objective.steps(spec), "values": _finite_list(values)}
            curve = self._curves.pop(trial.number, [])
            curve.append(final)
            trial.set_user_attr(ATTR.CURVE, curve)
        violations = [c.violation(metric_value(metrics, cost, c.metric)) for c in spec.constraints]
        trial.set_user_attr(ATTR.CONSTRAINTS, violations)
        self.last_violations = violations
        _set_constraints(trial, spec, violations)
        for v in ev.variants:
            _add_variant(ctx, trial, spec, params, cost, v, records)
        return values


_ENGINE_KEYS = {v for k, v in vars(ATTR).items() if k.isupper()}


def _records(records: dict[str, Any]) -> dict[str, Any]:
    """An evaluation's records as trial attributes (``moo:<name>``); a name that would
    overwrite what the engine records (``metrics``, ``config`` ...) is refused, naming it."""
    out = {}
    for name, value in records.items():
        key = record_key(name)
        if key in _ENGINE_KEYS:
            raise MooSearchError(
                f"the objective's record {name!r} would overwrite the engine's {key}; "
                "record it under another name"
            )
        if value is not None and value != {}:
            out[key] = value
    return out


def _finite_list(values: list[float]) -> list[float | None]:
    return [finite_or_none(v) for v in values]


def _add_variant(
    ctx: StudyContext,
    parent: Any,
    spec: StudySpec,
    params: dict[str, Any],
    cost: dict[str, float],
    variant: dict[str, Any],
    inherited: dict[str, Any],
) -> None:
    """Record an inference-only variant of the trial ``parent`` as its own COMPLETE trial
    (same artifacts, its own config and metrics), linked by ``ATTR.DERIVED_FROM``; its
    settings are in ``ATTR.KNOBS`` (and in its params where searched); it carries the
    parent's records (``inherited``; not those the objective names as a trial's own,
    ``Objective.own_records``) where it gives none of its own."""
    import inspect

    from optuna.trial import TrialState, create_trial

    knobs: dict[str, float] = variant["knobs"]
    metrics = variant["metrics"]
    values = [metric_value(metrics, cost, m) for m in ctx.metric_names]
    if not all(math.isfinite(v) for v in values):
        return
    searches_spec = ctx.objective is not None and ctx.objective.searches_spec
    vspec = spec.with_params(knobs) if searches_spec else spec  # (else its knobs are its own)
    violations = [c.violation(metric_value(metrics, cost, c.metric)) for c in spec.constraints]
    vparams = {**params, **{k: v for k, v in knobs.items() if k in parent.distributions}}
    attrs = {
        ATTR.DERIVED_FROM: parent.number,
        ATTR.KNOBS: knobs,
        ATTR.PARAMS: vparams,
        ATTR.METRICS: finite_metrics(metrics),
        ATTR.COST: finite_metrics({"val": cost})["val"],
        ATTR.CONSTRAINTS: violations,
    }
    if searches_spec:
        attrs[ATTR.CONFIG] = vspec.to_dict()
    for key in (ATTR.ARTIFACTS, ATTR.ARTIFACT_SHA256):
        if key in parent.user_attrs:
            attrs[key] = parent.user_attrs[key]
    own_records = {record_key(n) for n in (ctx.objective.own_records if ctx.objective else ())}
    attrs.update({k: v for k, v in inherited.items() if k not in own_records})
    attrs.update(_records(dict(variant.get("records") or {})))
    kwargs: dict[str, Any] = {}
    if violations and "constraints" in inspect.signature(create_trial).parameters:
        kwargs["constraints"] = {str(c): float(v) for c, v in zip(spec.constraints, violations)}
    # (Optuna 4.x has no such argument: its samplers read ATTR.CONSTRAINTS via constraints_func)
    frozen = create_trial(
        state=TrialState.COMPLETE,
        values=values,
        params=vparams,
        distributions=dict(parent.distributions),
        user_attrs=attrs,
        **kwargs,
    )
    ctx.study.add_trial(frozen)


def _set_constraints(trial: Any, spec: StudySpec, violations: list[float]) -> None:
    """Optuna >= 5 reads constraints set on the trial; 4.x reads them via constraints_func."""
    if not violations or not hasattr(trial, "set_constraint"):
        return
    for c, v in zip(spec.constraints, violations):
        trial.set_constraint(str(c), float(v))


def constraints_func(frozen: Any) -> list[float]:
    """For Optuna 4.x samplers: the violations the runner stored (<= 0 is feasible)."""
    return recorded_violations(frozen)
