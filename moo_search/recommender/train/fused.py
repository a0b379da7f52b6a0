"""Several fine-tunes over one frozen base, trained together (``driver.fuse``).

The trials of a group share everything frozen: one copy of the base weights (each member's
frozen tensors point at the first member's), the frozen-layer cache, and, in every step,
**one pass** of the adapted layers over the members' concatenated batches. At each linear
position of the base that any member adapts, a :class:`_Segmented` layer runs the frozen
matmul once over all rows, then each member's adapter on its own rows only:

- LoRA and IA3 on a projection's output add to (scale) that one frozen result: PEFT's own
  layer is called on the member's rows with its ``base_layer`` standing in for the frozen
  output already computed, so its arithmetic is PEFT's;
- DoRA and IA3 on a feed-forward input change the frozen product itself: the member's layer
  runs in full on its rows (the frozen matmul again, on those rows only).

Everything else stays each trial's own (:class:`~.loop.Trainer`): its batches and generators,
loss weights, optimizer, schedule, clipping, heads, early stopping and rungs. The losses are
summed for one backward (the members' parameters are disjoint, so each gets exactly its own
gradient). A member that fails (a NaN loss) or is stopped (a rung) leaves the group; the
others' rows never depended on its rows. Members must share the base weights, its
tokenisation and frozen-layer depth (:func:`group_key`); dropout masks come from the one
global generator, so with dropout the members' draws differ from their solo runs' (without,
a fused trial's metrics are its solo run's up to float rounding).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch import nn

from moo_search.recommender.model.encoder import unwrapped
from moo_search.recommender.model.recommender import Recommender
from moo_search.recommender.train.loop import Trainer

__all__ = ["SharedBase", "encode_together", "share_base", "train_together"]


class _Given(nn.Module):
    """Stands in for a member layer's ``base_layer``: the frozen output already computed."""

    def __init__(self, out: torch.Tensor) -> None:
        super().__init__()
        self.out = out

    def forward(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        return self.out


def _is_tuner(module: nn.Module) -> bool:
    from peft.tuners.tuners_utils import BaseTunerLayer

    return isinstance(module, BaseTunerLayer)


def _adds_to_frozen(module: nn.Module) -> bool:
    """Whether the PEFT layer's output is a function of the frozen output alone plus a term
    of its input (plain LoRA; IA3 scaling an output): the frozen matmul can be shared."""
    from peft.tuners.ia3 import IA3Layer
    from peft.tuners.lora import LoraLayer

    if isinstance(module, LoraLayer):
        return not getattr(module, "lora_variant", {}) and not any(module.use_dora.values())
    if isinstance(module, IA3Layer):
        return not module.is_feedforward
    return False


class _Segmented(nn.Module):
    """One linear position of the shared base during a fused pass (see the module)."""

    def __init__(self, base: nn.Module, members: list[nn.Module | None], shared: SharedBase):
        super().__init__()
        self.base = base
        self.members = members
        self.shared = shared

    def forward(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        y = self.base(x, *args, **kwargs)
        pieces = []
        for k, start, end in self.shared.segments:
            member = self.members[k]
            if member is None:
                pieces.append(y[start:end])
            elif _adds_to_frozen(member):
                frozen = member.base_layer
                member.base_layer = _Given(y[start:end])
                try:
                    pieces.append(member(x[start:end], *args, **kwargs))
                finally:
                    member.base_layer = frozen
            else:
                pieces.append(member(x[start:end], *args, **kwargs))
        return torch.cat(pieces)


def _parent(root: nn.Module, path: str) -> tuple[nn.Module, str]:
    *parents, last = path.split(".")
    node = root
    for p in parents:
        node = getattr(node, p)
    return node, last


def _canonical(name: str) -> str:
    return name.replace(".base_layer", "")


def share_base(first: Recommender, member: Recommender) -> bool:
    """Point ``member``'s frozen encoder weights at ``first``'s (one copy of the base) when
    they are equal tensor for tensor; False (nothing changed) when they differ."""
    ours = {_canonical(n): p for n, p in unwrapped(first.encoder).named_parameters()}
    pairs = []
    for name, p in unwrapped(member.encoder).named_parameters():
        if p.requires_grad:
            continue
        q = ours.get(_canonical(name))
        if q is None or q.requires_grad or q.shape != p.shape or not torch.equal(q, p):
            return False
        pairs.append((p, q))
    for p, q in pairs:
        if type(p) is type(q) and p.is_floating_point():  # (a 4-bit weight keeps its own)
            p.data = q.data
    return True


class SharedBase:
    """The group's one pass through the base: the first member's encoder carries the rows of
    all, with each adapted position segmented by member for the pass's duration."""

    def __init__(self, models: list[Recommender]) -> None:
        self.models = models
        self.carrier = models[0]
        self.segments: list[tuple[int, int, int]] = []
        trees = [dict(unwrapped(m.encoder).named_modules()) for m in models]
        paths = sorted({p for tree in trees for p, mod in tree.items() if _is_tuner(mod)})
        self._swaps: list[tuple[nn.Module, str, nn.Module, _Segmented]] = []
        root = unwrapped(self.carrier.encoder)
        for path in paths:
            own = trees[0][path]
            base = own.get_base_layer() if _is_tuner(own) else own
            members = [tree[path] if _is_tuner(tree[path]) else None for tree in trees]
            parent, attr = _parent(root, path)
            self._swaps.append((parent, attr, own, _Segmented(base, members, self)))

    @contextlib.contextmanager
    def _segmented(self, segments: list[tuple[int, int, int]]) -> Iterator[None]:
        self.segments = segments
        for parent, attr, _, seg in self._swaps:
            setattr(parent, attr, seg)
        try:
            yield
        finally:
            for parent, attr, own, _ in self._swaps:
                setattr(parent, attr, own)
            self.segments = []

    def encode(
        self, table: Any, rows: dict[int, np.ndarray], device: torch.device
    ) -> dict[int, torch.Tensor]:
        """Each member's embeddings of its ``rows`` of ``table`` (the carrier's table: the
        members' are equal), in one pass."""
        order = sorted(rows)
        bounds = np.cumsum([0] + [len(rows[k]) for k in order])
        segments = [(k, int(bounds[j]), int(bounds[j + 1])) for j, k in enumerate(order)]
        with self._segmented(segments):
            out = self.carrier.encode_rows(table, np.concatenate([rows[k] for k in order]), device)
        return {k: out[s:e] for k, s, e in segments}


def train_together(trainers: list[Trainer]) -> tuple[dict[int, BaseException], list[float]]:
    """Step ``trainers`` together until each is done or has left the group; (the members that
    left with what stopped them, each member's share of the shared wall time in seconds:
    apportioned by its rows in the passes it took part in, plus its own steps' time).
    Each trainer's :meth:`~.loop.Trainer.finish` is left to the caller."""
    shared = SharedBase([t.model for t in trainers])
    first = trainers[0]
    left: dict[int, BaseException] = {}
    seconds = [0.0] * len(trainers)
    active = [k for k, t in enumerate(trainers) if not t.done]
    while active:
        own = dict.fromkeys(active, 0.0)
        for k in active:  # (a catalog refresh when due)
            try:
                own[k] = _timed(trainers[k].draw)
            except Exception as e:
                left[k] = e
        active = [k for k in active if k not in left]
        t0 = time.perf_counter()
        first.model.train()  # the carrier's dropout modes are the pass's
        encoded = encode_together(shared, trainers, [k for k in active if trainers[k].reads_text])
        lost = dict.fromkeys(active, 0.0)
        losses = _losses(trainers, active, encoded, left, lost)
        if losses:
            total: torch.Tensor = sum(trainers[k].scaled(v) for k, v in losses.items())  # type: ignore[assignment]
            total.backward()
        wall = time.perf_counter() - t0 - sum(lost.values())
        _share(seconds, active, trainers, {k: own[k] + lost[k] for k in active}, wall)
        for k in losses:
            t1 = time.perf_counter()
            try:
                trainers[k].update()
            except Exception as e:  # a rung's stop, a failed validation: this member only
                left[k] = e
            seconds[k] += time.perf_counter() - t1
        active = [k for k in active if k not in left and not trainers[k].done]
    return left, seconds


def encode_together(
    shared: SharedBase, trainers: list[Trainer], readers: list[int]
) -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
    """The drawn batches' (user, item) text embeddings of the ``readers`` (indices into
    ``trainers``), one shared pass per table, under the first trainer's precision."""
    if not readers:
        return {}
    first = trainers[0]
    users = {k: trainers[k].text_rows()[0] for k in readers}
    items = {k: trainers[k].text_rows()[1] for k in readers}
    with first.autocast() if first.autocast else contextlib.nullcontext():
        eu = shared.encode(first.data.user_tokens, users, first.device)
        ei = shared.encode(first.data.item_tokens, items, first.device)
    return {k: (eu[k], ei[k]) for k in readers}


def _timed(fn: Any) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _losses(
    trainers: list[Trainer],
    active: list[int],
    encoded: dict[int, tuple[torch.Tensor, torch.Tensor]],
    left: dict[int, BaseException],
    own: dict[int, float],
) -> dict[int, torch.Tensor]:
    """Each member's loss (its own time added to ``own``)."""
    out = {}
    for k in active:
        t0 = time.perf_counter()
        try:
            out[k] = trainers[k].loss(encoded.get(k))
        except Exception as e:  # the NaN guard: this member fails, the others go on
            left[k] = e
        own[k] += time.perf_counter() - t0
    return out


def _share(
    seconds: list[float],
    active: list[int],
    trainers: list[Trainer],
    own: dict[int, float],
    wall: float,
) -> None:
    """Each member's own time of the step, and the shared time (the pass and the backward)
    by its rows in the pass."""
    rows = {k: len(trainers[k].idx) * (2 if trainers[k].reads_text else 1) for k in active}
    total = sum(rows.values()) or 1
    for k in active:
        seconds[k] += own[k] + max(0.0, wall) * rows[k] / total
