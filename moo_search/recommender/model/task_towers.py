"""The trained part of the business-task heads: a multi-gate mixture of experts (MMoE, Ma et
al., KDD 2018) over what the towers know of a (user, item) pair.

Its input per pair is the text tower's user and item embeddings (their elementwise product,
which sums to the semantic score, and the item's own embedding, which lets a task learn an
item's propensity from its text) beside the pair's count features (the like-rates, popularity,
the rating offsets and the user's activity; not the backbone's score, which is in-sample on
train pairs). ``experts`` small ReLU layers are shared by the tasks; each task mixes them
through its own softmax gate and reads the mixture through its own output, which starts at
zero: a task whose loss weight is 0 gets no gradient and adds nothing. Gradients reach the
text tower through the batch's embeddings, so ``loss.weights.click``, ``conversion`` and
``satisfaction`` change what the towers learn.

A task's prediction is this output plus the task's linear head over
:data:`~moo_search.recommender.model.tasks.TASK_FEATURES` (:mod:`moo_search.recommender.task_eval`).
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["COUNT_COLUMNS", "TASKS", "TaskTowers"]

TASKS = ("click", "conversion", "satisfaction")
"""The business tasks, in the order of :class:`TaskTowers`' outputs."""

COUNT_COLUMNS = (0, 1, 2, 5, 6, 7)
"""The columns of ``TASK_FEATURES`` the experts read: every one but the two tower scores."""

ITEM_COUNT_COLUMNS = (1, 2, 6)
"""The item-side count columns (like-rate, popularity, rating offset): what a new item lacks."""


class TaskTowers(nn.Module):
    """MMoE over ``[e_u * e_i * d, e_i * sqrt(d), counts]`` (layer-normalised); one output per
    task of :data:`TASKS`, zero until its task trains it."""

    def __init__(self, text_dim: int, *, experts: int = 4, hidden: int = 32) -> None:
        super().__init__()
        self.text_dim = text_dim
        d_in = 2 * text_dim + len(COUNT_COLUMNS)
        self.norm = nn.LayerNorm(d_in, elementwise_affine=False)
        self.experts = nn.Linear(d_in, experts * hidden)
        self.gates = nn.Linear(d_in, experts * len(TASKS))
        self.out = nn.Parameter(torch.zeros(len(TASKS), hidden))
        self.n_experts, self.hidden = experts, hidden
        # the popularity feature of an item without interactions (set by the recommender;
        # kept here so a bundle, whose catalog holds warm items only, knows it)
        self.register_buffer("new_item_logpop", torch.tensor(0.0))

    def forward(
        self, features: torch.Tensor, user_emb: torch.Tensor | None, item_emb: torch.Tensor | None
    ) -> torch.Tensor:
        """(N, len(TASKS)) outputs for pairs with ``features`` (N, 8) and their text
        embeddings (N, d) each, or None without a text tower."""
        counts = features[:, list(COUNT_COLUMNS)].float()
        parts = [counts]
        if self.text_dim:
            n = len(features)
            if user_emb is None or item_emb is None:
                zeros = counts.new_zeros(n, self.text_dim)
                user_emb, item_emb = zeros, zeros
            d = float(self.text_dim)
            ui = user_emb.float() * item_emb.float() * d
            parts = [ui, item_emb.float() * d**0.5, counts]
        x = self.norm(torch.cat(parts, -1).to(self.experts.weight.dtype))
        h = torch.relu(self.experts(x)).view(-1, self.n_experts, self.hidden)
        g = torch.softmax(self.gates(x).view(-1, len(TASKS), self.n_experts), -1)
        mixed = torch.einsum("ntk,nkh->nth", g, h)  # each task's mixture of the experts
        return (mixed * self.out).sum(-1)

    def output(self, task: str, *args: torch.Tensor | None) -> torch.Tensor:
        """``task``'s output alone."""
        return self(*args)[:, TASKS.index(task)]


def drop_item_counts(
    features: torch.Tensor, new_values: torch.Tensor, rate: float, gen: torch.Generator
) -> torch.Tensor:
    """``features`` with each pair's item-side counts set, with probability ``rate``, to what a
    new item has (``new_values``: its like-rate logit, popularity and rating offset): the
    experts learn to read an item from its text where its counts say nothing (DropoutNet,
    Volkovs et al., NeurIPS 2017)."""
    if rate <= 0 or not len(features):
        return features
    drop = (torch.rand(len(features), generator=gen) < rate).to(features.device)
    out = features.clone()
    cols = list(ITEM_COUNT_COLUMNS)
    out[:, cols] = torch.where(drop[:, None], new_values.to(out.dtype)[None], out[:, cols])
    return out
