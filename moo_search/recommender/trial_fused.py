"""Several trials fine-tuned together over one frozen base (``driver.fuse``).

:func:`run_trials_together` runs each trial's stages as :meth:`Trial.run` does, except
``fit``: the trials are grouped by what a shared pass needs (:func:`group_key`: the model
section, the data and its texts, precision and device, the frozen-layer depth, then equal
base weights), and each group trains in lock-step (:mod:`.train.fused`). Each trial keeps
its own seed (set before its own ``prepare`` and ``build``, as alone), its artifacts,
metrics, curve and rungs; its ``cost.seconds`` is its own stages' time plus its share of
the group's shared training time (by its rows in the shared passes), and
``cost.fused_trials`` says how many trials it trained with. A trial that fails or is stopped
is returned as its exception; the others go on.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from moo_search.recommender.memory import PeakRSS, available_bytes
from moo_search.recommender.trial import RungHook, Trial, TrialResult

__all__ = ["TrialRequest", "choose_fuse", "group_key", "run_trials_together"]

logger = logging.getLogger("moo_search")

AFTER_FIT = ("score", "evaluate", "variants", "save")


@dataclass
class TrialRequest:
    """One trial of a fused run: what :func:`~.trial.run_trial` takes."""

    config: Any
    artifact_dir: str | Path | None = None
    variants: list[dict[str, float]] | None = None
    on_rung: RungHook | None = None


class _Member(Trial):
    """A trial of a fused run: its cost says how many trials it trained with."""

    fused_with = 1

    def start(self) -> None:
        self.begin()
        self.prepare()
        self.build()

    def _cost(self) -> dict[str, float]:
        cost = super()._cost()
        if self.fused_with > 1:
            cost["fused_trials"] = float(self.fused_with)
        return cost


def group_key(trial: Trial) -> str:
    """What trials must share to train in one pass (equal base weights are checked after)."""
    spec, prefix = trial.spec, trial.model.prefix
    return json.dumps(
        {
            "model": spec.model.model_dump(mode="json"),
            "data": spec.data.model_dump(mode="json"),
            "amp": spec.train.amp,
            "device": str(trial.device),
            "prefix": None if prefix is None else prefix.n,
            "left": trial.model.left_padded,
        },
        sort_keys=True,
        default=str,
    )


def run_trials_together(requests: list[TrialRequest]) -> list[TrialResult | BaseException]:
    """Each request's :class:`TrialResult`, or the exception that ended it (a config error,
    a failed or stopped fine-tune); in the requests' order."""
    trials = [
        _Member(r.config, artifact_dir=r.artifact_dir, variants=r.variants, on_rung=r.on_rung)
        for r in requests
    ]
    out: list[TrialResult | BaseException | None] = [None] * len(trials)
    own = [0.0] * len(trials)  # each trial's own time so far (its stages alone)

    def stage(k: int, fn: Callable[[], None]) -> bool:
        t0 = time.perf_counter()
        try:
            fn()
        except Exception as e:
            out[k] = e
            logger.warning("trial %d of the fused run failed: %s: %s", k, type(e).__name__, e)
        own[k] += time.perf_counter() - t0
        return out[k] is None

    for k, t in enumerate(trials):  # each seeded, prepared and built as it would be alone
        stage(k, t.start)
    for group in _groups(trials, [k for k in range(len(trials)) if out[k] is None]):
        try:
            _fit_group(trials, group, out, own)
        except Exception as e:  # the shared pass itself failed: every member, with its reason
            logger.warning("a fused group of %d failed: %s: %s", len(group), type(e).__name__, e)
            for k in group:
                out[k] = out[k] or e
    for k, t in enumerate(trials):
        for name in AFTER_FIT:
            if out[k] is not None:
                break
            if name == "save":  # its clock: its own stages and its share of the shared ones
                t.t0 = time.perf_counter() - own[k]
            stage(k, getattr(t, name))
        if out[k] is None:
            t.done()
            out[k] = t.result
    assert all(r is not None for r in out)
    return out  # type: ignore[return-value]


def _groups(trials: list[_Member], built: list[int]) -> list[list[int]]:
    """The built trials by :func:`group_key`, in order; a member whose base weights differ
    from its group's first starts a group of its own."""
    from moo_search.recommender.train.fused import share_base

    by_key: dict[str, list[list[int]]] = {}
    for k in built:
        groups = by_key.setdefault(group_key(trials[k]), [])
        for g in groups:
            if share_base(trials[g[0]].model, trials[k].model):
                g.append(k)
                break
        else:
            groups.append([k])
    return sorted((g for gs in by_key.values() for g in gs), key=lambda g: g[0])


def _fit_group(
    trials: list[_Member],
    group: list[int],
    out: list[TrialResult | BaseException | None],
    own: list[float],
) -> None:
    """Train ``group`` together; each member's history, its failure, and its time."""
    from moo_search.recommender.train.fused import train_together
    from moo_search.recommender.train.loop import Trainer, TrainOptions

    trainers: dict[int, Trainer] = {}
    for k in group:
        t0 = time.perf_counter()
        t = trials[k]
        try:
            trainers[k] = Trainer(t.model, t.train_data(), TrainOptions(**t.train_options()))
        except Exception as e:
            out[k] = e
        own[k] += time.perf_counter() - t0
    members = list(trainers)
    logger.info("training %d trials together over one base", len(members))
    left, seconds = train_together([trainers[k] for k in members])
    for j, k in enumerate(members):
        own[k] += seconds[j]
        if j in left:
            out[k] = left[j]
            continue
        t0 = time.perf_counter()
        try:
            trials[k].history = trainers[k].finish()
        except Exception as e:
            out[k] = e
        finish = time.perf_counter() - t0
        own[k] += finish
        if out[k] is None:
            trials[k].history.seconds = seconds[j] + finish
            trials[k].fused_with = len(members)


CANDIDATES = {"cpu": (1, 2, 4, 8), "cuda": (1, 2, 4, 8, 16)}
"""The group sizes ``driver.fuse: auto`` measures, by device type."""
GAIN = 1.25
"""How much faster per example a group must train than one trial to be chosen."""


def choose_fuse(spec: Any) -> tuple[int, dict[int, float]]:
    """``driver.fuse: auto``: (the group size, seconds per training example at each size
    measured). Builds the study's base trial K times over one base (as a fused run does),
    times a training step's shared pass (forward and backward) at each candidate K, and
    keeps the fastest per example if it beats one trial by :data:`GAIN`; a size that runs
    out of device memory ends the search."""
    import torch

    from moo_search.recommender.train.fused import SharedBase, encode_together
    from moo_search.recommender.train.loop import Trainer, TrainOptions

    first = _Member(spec)
    first.start()
    members = [first]
    sizes = list(CANDIDATES.get(first.device.type, CANDIDATES["cpu"]))
    while len(members) < max(sizes):
        before = PeakRSS.current()
        m = _Member(spec)
        m.start()
        share_base_or_fail(first, m)
        members.append(m)
        room = _room_for(first.device, before, PeakRSS.current())
        sizes = [k for k in sizes if k <= len(members) + room]
    trainers = [
        Trainer(m.model, m.train_data(), TrainOptions(**m.train_options())) for m in members
    ]
    if not trainers[0].reads_text:
        return 1, {}
    for t in trainers:
        t.draw()
        t.step = 1  # (no catalog refresh in the timed draws)
    per_example: dict[int, float] = {}
    for k in sizes:
        group = trainers[:k]
        shared = SharedBase([t.model for t in group])

        def step(group: list[Trainer] = group, shared: SharedBase = shared) -> None:
            for t in group:
                t.draw()
            enc = encode_together(shared, group, list(range(len(group))))
            sum(a.sum() + b.sum() for a, b in enc.values()).backward()  # type: ignore[union-attr]

        try:
            per_example[k] = _median_seconds(step) / (k * spec.train.batch_size)
        except torch.OutOfMemoryError:
            break
    best = min(per_example, key=lambda k: per_example[k])
    chosen = best if per_example[1] >= GAIN * per_example[best] else 1
    return chosen, per_example


def _room_for(device: Any, before: float | None, after: float | None) -> int:
    """How many more trials like the last one built fit in half the memory left (the
    device's on CUDA, the machine's on the CPU)."""
    import torch

    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        each = max(torch.cuda.memory_allocated(device) / 2, 1.0)  # (a rough per-trial share)
        return int(free / 2 / each)
    if before is None or after is None:
        return 0
    each = max(after - before, 1.0) * 2**20
    return int(available_bytes() / 2 / each)


def share_base_or_fail(first: _Member, member: _Member) -> None:
    from moo_search.recommender.train.fused import share_base

    if not share_base(first.model, member.model):
        raise RuntimeError("the same spec built twice gave different base weights")


def _median_seconds(fn: Callable[[], None], repeats: int = 3) -> float:
    fn()  # warm
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]
