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


def new_item_scores(
    scorer: Any, mode: str, sem: Any, history: Any, new: NewItems, collab: Any = None
) -> np.ndarray:
    """Fused scores of ``new`` items for one user, z-scored with the catalog's mean and
    deviation, as the trial scored its held-out items (``fusion.new_items``): the user's
    history through each item's nearest catalog items (``history``), the user text
    (``user``), the user's backbone row (``collab``) through the ridge map (``map``), or the
    map and the history z-scored and mixed (``blend``)."""
    import torch

    from moo_search.recommender.zscore import standardise

    if not len(new.ids):
        return np.zeros(0, dtype=np.float32)
    n = scorer.item_emb.shape[0]
    mask = torch.zeros(n + len(new.ids), dtype=torch.bool)
    mask[:n] = True
    with torch.no_grad():
        if mode == "user":
            u = sem.double()[None]
            both = torch.cat([u @ scorer.item_emb.double().T, u @ new.emb.double().T], 1)
        elif mode == "history":
            both = _history_scores(scorer, history, new)
        else:
            both = _map_scores(scorer, collab, new)
            if mode == "blend":
                b = 0.5 if scorer.new_item_blend is None else scorer.new_item_blend
                text = _history_scores(scorer, history, new)
                both = b * standardise(both, mask) + (1.0 - b) * standardise(text, mask)
        return standardise(both.float(), mask)[0, n:].numpy()


def _history_scores(scorer: Any, history: Any, new: NewItems) -> Any:
    """(1, catalog + new) float64: the user's history scored by text (the catalog's items
    through their nearest warm items, the new ones through their nearest catalog items)."""
    import torch

    from moo_search.recommender.inference import nearest_only

    rows = torch.as_tensor(history, dtype=torch.float64)[None]
    warm = torch.as_tensor(scorer.neighbour_sims().of_history(rows.numpy()))
    sims = nearest_only(new.emb.double() @ scorer.item_emb.double().T, scorer.new_item_neighbours)
    return torch.cat([warm, rows @ sims.T], 1)


def _map_scores(scorer: Any, collab: Any, new: NewItems) -> Any:
    """(1, catalog + new) float64: the user's backbone row through the ridge map."""
    import torch

    fitted = scorer.ridge_map()
    return torch.cat([fitted.scores(collab[None], e) for e in (scorer.item_emb, new.emb)], 1)
