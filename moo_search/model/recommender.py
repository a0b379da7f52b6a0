"""The language-model recommender: two text towers, ID embeddings, fusion and a CTR head.

Scores (DESIGN.md, "The default trial"):
    s(u, i) = cos(enc(user text), enc(item text)) / temperature      semantic
    r(u, i) = <p_u, q_i> + b_i                                        collaborative (MF)
    f(u, i) = alpha * s + (1 - alpha) * r                             fused
    p(click | u, i) = sigmoid(head([p_u * q_i, s, r, log pop_i]))     CTR
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch import nn

from moo_search.model.tokens import TokenTable

__all__ = ["CTRHead", "Recommender"]


class CTRHead(nn.Module):
    """p(click | u, i) from the ID interaction, the fused-model CF score, item popularity and
    the item's text embedding."""

    def __init__(self, id_dim: int, text_dim: int) -> None:
        super().__init__()
        self.cross = nn.Linear(id_dim, 1)
        self.scores = nn.Linear(2, 1)
        self.text = nn.Linear(text_dim, 1, bias=False)

    def forward(
        self,
        pu: torch.Tensor,
        qi: torch.Tensor,
        r: torch.Tensor,
        logpop: torch.Tensor,
        item_text: torch.Tensor | None,
    ) -> torch.Tensor:
        out = self.cross(pu * qi).squeeze(-1) + self.scores(torch.stack([r, logpop], -1)).squeeze(
            -1
        )
        if item_text is not None:
            out = out + self.text(item_text.to(self.text.weight.dtype)).squeeze(-1)
        return out


class Recommender(nn.Module):
    def __init__(
        self,
        *,
        encoder: Any,
        n_users: int,
        n_items: int,
        id_dim: int,
        alpha: float,
        temperature: float,
        pooling: str,
        item_logpop: np.ndarray,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.alpha = alpha
        self.temperature = temperature
        self.pooling = pooling
        self.user_emb = nn.Embedding(n_users, id_dim)
        self.item_emb = nn.Embedding(n_items, id_dim)
        self.item_bias = nn.Parameter(torch.zeros(n_items))
        nn.init.normal_(self.user_emb.weight, std=0.05)
        nn.init.normal_(self.item_emb.weight, std=0.05)
        text_dim = int(getattr(getattr(encoder, "config", None), "hidden_size", 0) or 1)
        self.ctr = CTRHead(id_dim, text_dim)
        self.register_buffer("logpop", torch.as_tensor(item_logpop, dtype=torch.float32))

    # ---- parameters -------------------------------------------------------------------

    def adapter_parameters(self) -> Iterator[nn.Parameter]:
        return (p for p in self.encoder.parameters() if p.requires_grad)

    def head_parameters(self) -> list[torch.Tensor]:
        return [self.user_emb.weight, self.item_emb.weight, self.item_bias, *self.ctr.parameters()]

    def head_state(self) -> dict[str, torch.Tensor]:
        """Everything but the encoder: ID embeddings, item bias, CTR head, popularity."""
        return {
            k: v.detach().cpu().contiguous()
            for k, v in self.state_dict().items()
            if not k.startswith("encoder.")
        }

    # ---- towers -----------------------------------------------------------------------

    def encode(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        out = self.encoder(input_ids=ids, attention_mask=mask).last_hidden_state
        if self.pooling == "cls":
            pooled = out[:, 0]
        else:
            m = mask.unsqueeze(-1).to(out.dtype)
            pooled = (out * m).sum(1) / m.sum(1).clamp_min(1.0)
        return nn.functional.normalize(pooled.float(), dim=-1)

    @torch.no_grad()
    def encode_table(
        self, table: TokenTable, device: torch.device, batch_size: int = 256, autocast: Any = None
    ) -> torch.Tensor:
        """Embeddings of every text in ``table``: no grad, length-bucketed batches."""
        was_training = self.training
        self.eval()
        out = torch.empty(len(table), self._dim(table, device), device=device)
        for idx in table.length_buckets(batch_size):
            ids, mask = table.batch(idx)
            with autocast() if autocast else contextlib.nullcontext():
                out[torch.from_numpy(idx).to(device)] = self.encode(ids.to(device), mask.to(device))
        self.train(was_training)
        return out

    def _dim(self, table: TokenTable, device: torch.device) -> int:
        hidden = getattr(getattr(self.encoder, "config", None), "hidden_size", None)
        if hidden is None:
            ids, mask = table.batch(np.array([0]))
            hidden = self.encode(ids.to(device), mask.to(device)).shape[-1]
        return int(hidden)

    # ---- scores -----------------------------------------------------------------------

    def collaborative(self, users: torch.Tensor, items: torch.Tensor | None = None) -> torch.Tensor:
        pu = self.user_emb(users)
        if items is None:
            return pu @ self.item_emb.weight.T + self.item_bias
        return (pu * self.item_emb(items)).sum(-1) + self.item_bias[items]

    def fuse(self, semantic: torch.Tensor, collaborative: torch.Tensor) -> torch.Tensor:
        return self.alpha * semantic / self.temperature + (1.0 - self.alpha) * collaborative

    def ctr_logit(
        self,
        users: torch.Tensor,
        items: torch.Tensor,
        r: torch.Tensor,
        item_text: torch.Tensor | None,
    ) -> torch.Tensor:
        logpop: torch.Tensor = self.logpop  # type: ignore[assignment]  # a registered buffer
        return self.ctr(self.user_emb(users), self.item_emb(items), r, logpop[items], item_text)
