"""Items added to a loaded bundle after training (``add_items``, a request's ``new_items``):
scored the way the trial scored its held-out items."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["NewItems", "new_item_scores"]


@dataclass(frozen=True)
class NewItems:
    """Items added after training: ids, text-tower embeddings (n, d), genre features."""

    ids: list[str]
    emb: Any
    features: np.ndarray
    index: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.index.update({x: j for j, x in enumerate(self.ids)})

    @classmethod
    def empty(cls, n_features: int) -> NewItems:
        import torch

        return cls([], torch.zeros(0, 0), np.zeros((0, n_features), np.float32))

    def plus(self, other: NewItems) -> NewItems:
        if not self.ids:
            return other
        import torch

        return NewItems(
            [*self.ids, *other.ids],
            torch.cat([self.emb, other.emb]),
            np.concatenate([self.features, other.features]),
        )


def new_item_scores(scorer: Any, mode: str, sem: Any, history: Any, new: NewItems) -> np.ndarray:
    """Fused scores of ``new`` items for one user: z(c) with c the user's history scored
    through each item's nearest catalog items (``fusion.new_items: history``) or the user
    text (``user``), z with the mean and deviation over the catalog, as the trial did."""
    import torch

    from moo_search.recommender.inference import nearest_only
    from moo_search.recommender.model.recommender import standardise

    if not len(new.ids):
        return np.zeros(0, dtype=np.float32)
    items = scorer.item_emb.double()
    with torch.no_grad():
        if mode == "history":
            rows = torch.as_tensor(history, dtype=torch.float64)[None]
            warm = torch.as_tensor(scorer.neighbour_sims().of_history(rows.numpy())).float()
            sims = nearest_only(new.emb.double() @ items.T, scorer.new_item_neighbours)
            c = (rows @ sims.T).float()
        else:
            u = sem.double()[None]
            warm, c = (u @ items.T).float(), (u @ new.emb.double().T).float()
        both = torch.cat([warm, c], 1)
        mask = torch.zeros(both.shape[1], dtype=torch.bool)
        mask[: warm.shape[1]] = True
        return standardise(both, mask)[0, warm.shape[1] :].numpy()
