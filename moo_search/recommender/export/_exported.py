"""A loaded bundle: recommendations, scores and conversion probabilities for known users, new
users (from their history) and items added after training."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import numpy as np

from moo_search.errors import ExportError
from moo_search.recommender.export._checks import (
    check_id,
    check_k,
    check_new_items,
    check_new_user,
    shown,
)
from moo_search.recommender.export._new_items import NewItems, new_item_scores
from moo_search.recommender.inference import CatalogScorer, new_item_knobs, recommend_lists
from moo_search.recommender.spec import RecommenderSpec
from moo_search.recommender.train._setup import autocast_for

__all__ = ["ExportedRecommender"]


class ExportedRecommender:
    """A loaded bundle: ``recommend``, ``score`` and ``ctr`` for known or new users."""

    def __init__(
        self,
        root: Path,
        manifest: dict[str, Any],
        spec: RecommenderSpec,
        model: Any,
        tokenizer: Any,
        catalog: dict[str, Any],
        rows: tuple[Any, Any],
        embeddings: dict[str, Any] | None = None,
    ) -> None:
        """``rows``: the known users' (seen items, train rows), sparse users x items."""
        import torch

        from moo_search.recommender.model.tokens import text_table

        self.root, self.manifest, self.spec, self.model, self.tokenizer = (
            root,
            manifest,
            spec,
            model,
            tokenizer,
        )
        self.item_ids: list[str] = catalog["item_ids"]
        self.user_ids: list[str] = catalog["user_ids"]
        self._item_index = {x: i for i, x in enumerate(self.item_ids)}
        self._user_index = {x: i for i, x in enumerate(self.user_ids)}
        self._titles: list[str] = catalog["item_titles"]
        self._user_texts: list[str] = catalog["user_texts"]
        self._features = np.asarray(catalog["item_features"], dtype=np.float32)
        self._counts = np.asarray(catalog["item_counts"], dtype=np.int64)
        self._genres: list[str] = list(catalog.get("genres") or [])
        seen, train = rows
        self._seen = seen
        self._device = torch.device("cpu")
        self._items_tok = text_table(tokenizer, catalog["item_texts"], spec.model, "item")
        self._users_tok = text_table(tokenizer, self._user_texts, spec.model, "user")
        # the trial's precision where this machine has it (train.amp), as evaluation used
        self._autocast, _ = autocast_for(self._device, spec.train.amp)
        if embeddings is not None:  # computed at export by this same code: no re-encoding
            self._scorer = CatalogScorer(
                model, embeddings["items"], embeddings["users"], self._device
            )
        else:
            self._scorer = CatalogScorer.encode(
                model, self._items_tok, self._users_tok, self._device, self._autocast
            )
        for name, value in new_item_knobs(spec.fusion).items():
            setattr(self._scorer, name, value)
        self._train = train  # (U, I) train rows: what scores new items for known users
        self._new = NewItems.empty(self._features.shape[1])

    # ---- users
    def _resolve(self, user: Any) -> tuple[Any, Any, np.ndarray]:
        """(semantic vector or None, collaborative user vector, items to exclude)."""
        import torch

        from moo_search.recommender.data.text import render_user
        from moo_search.recommender.model.tokens import text_table

        if isinstance(user, dict):
            user = check_new_user(user)
            hist = user["history"]
            missing = [i for i in hist if i not in self._item_index]
            if missing:
                raise ExportError(f"history items {missing[:5]} are not in the catalog")
            idx = np.array([self._item_index[i] for i in hist], dtype=np.int64)
            text = render_user(
                user["attributes"],
                [self._titles[i] for i in idx[::-1][: self.spec.data.history_len]],
            )
            with torch.no_grad():
                sem = None
                if self.model.alpha > 0:
                    table = text_table(
                        self.tokenizer, [text], self.spec.model, "user", cached=False
                    )
                    with self._autocast() if self._autocast else contextlib.nullcontext():
                        sem = self.model.encode_rows(table, np.arange(1), self._device)[0]
                collab = self.model.collaborative_from_history(torch.as_tensor(idx))
            return sem, collab, idx
        key = str(user)
        if key not in self._user_index:
            raise ExportError(
                f"unknown user id {user!r}; pass a known id or {{'attributes': ..., 'history': [...]}}"
            )
        u = self._user_index[key]
        user_emb = self._scorer.user_emb
        sem = user_emb[u] if user_emb is not None else None
        seen = self._seen.indices[self._seen.indptr[u] : self._seen.indptr[u + 1]]
        with torch.no_grad():
            collab = self.model.collaborative(torch.as_tensor([u]))[0]
        return sem, collab, seen

    def _scores(self, sem: Any, collab: Any) -> np.ndarray:
        """Fused scores over the catalog, exactly as the trial scored them."""
        return self._scorer.fuse(None if sem is None else sem[None], collab[None])[0]

    # ---- new items
    @property
    def new_item_ids(self) -> list[str]:
        """Items added after training (:meth:`add_items`), ranked beside the catalog."""
        return list(self._new.ids)

    def embed_items(self, items: list[dict[str, Any]]) -> NewItems:
        """New items (``{"id": ..., "title": ..., "genres": [...], ...}``: an id plus the
        fields the trial's item texts were made of, ``data.item_text``) embedded by the text
        tower, ready to rank beside the catalog (see :meth:`add_items`)."""
        from moo_search.recommender.data.text import render_item_record
        from moo_search.recommender.model.tokens import text_table

        if self.model.alpha <= 0 or self._scorer.item_emb is None:
            raise ExportError(
                "this model has no text tower (fusion.alpha = 0): it cannot score items "
                "without interaction data"
            )
        fields = list(self.spec.data.item_text)
        items = check_new_items(items)
        if not items:
            return NewItems.empty(self._features.shape[1])
        ids = [x["id"] for x in items]
        taken = [i for i in ids if i in self._item_index or i in self._new.index]
        if taken or len(set(ids)) != len(ids):
            dup = taken or sorted({i for i in ids if ids.count(i) > 1})
            raise ExportError(f"new items: ids {dup[:5]} are already in the catalog or repeated")
        texts = [render_item_record(x, fields, fallback=f"item {i}") for i, x in zip(ids, items)]
        genre_index = {g: j for j, g in enumerate(self._genres)}
        feats = np.zeros((len(items), self._features.shape[1]), dtype=np.float32)
        for row, x in enumerate(items):
            for g in x.get("genres") or []:
                if g in genre_index:
                    feats[row, genre_index[g]] = 1.0
        table = text_table(self.tokenizer, texts, self.spec.model, "item", cached=False)
        import torch

        with torch.no_grad():
            emb = self.model.encode_table(table, self._device, autocast=self._autocast)
        return NewItems(ids=ids, emb=emb, features=feats, index={})

    def add_items(self, items: list[dict[str, Any]]) -> list[str]:
        """Add items that were not in training: their text is embedded once and they are
        ranked beside the catalog from then on, scored as the trial scored its held-out
        items (``fusion.new_items``). The scores of catalog items do not change."""
        self._new = self._new.plus(self.embed_items(items))
        return self.new_item_ids

    def _new_scores(self, sem: Any, collab: Any, history: Any, new: NewItems) -> np.ndarray:
        mode = self._scorer.new_items
        return new_item_scores(self._scorer, mode, sem, history, new, collab)

    def _history(self, user: Any) -> np.ndarray:
        """The user's train items as a row summing to 1 (a new user's history)."""
        row = np.zeros(len(self.item_ids), dtype=np.float64)
        if isinstance(user, dict):
            idx = [self._item_index[str(i)] for i in user.get("history", [])]
            np.add.at(row, idx, 1.0)
        elif self._train is not None:
            u = self._user_index[str(user)]
            lo, hi = self._train.indptr[u], self._train.indptr[u + 1]
            row[self._train.indices[lo:hi]] = self._train.data[lo:hi]
        return row / max(row.sum(), 1.0)

    @property
    def known_users(self) -> dict[str, int]:
        """Known user ids (those with a row in the trial's data) -> their index."""
        return self._user_index

    def recommend(self, user: Any, k: int = 10) -> list[str]:
        """Top-``k`` item ids, seen items excluded, re-ranked exactly as in evaluation."""
        return self.recommend_scored(user, k)[0]

    def recommend_scored(
        self, user: Any, k: int = 10, *, exclude: list[Any] | None = None
    ) -> tuple[list[str], list[float]]:
        """Top-``k`` item ids and their fused scores; seen items and ``exclude`` (ids) are
        never recommended; re-ranked exactly as in evaluation."""
        return self.rank(user, k, exclude=exclude)

    def rank(
        self,
        user: Any,
        k: int = 10,
        *,
        exclude: list[Any] | None = None,
        new_items: NewItems | None = None,
        only_new: bool = False,
    ) -> tuple[list[str], list[float]]:
        """:meth:`recommend_scored` over the catalog plus the added items and ``new_items``
        (this call only; see :meth:`embed_items`); ``only_new`` ranks the new items alone."""
        k = check_k(k)
        if new_items is not None:
            taken = [x for x in new_items.ids if x in self._item_index or x in self._new.index]
            if taken:
                raise ExportError(
                    f"new_items: ids {taken[:5]} are already in the catalog (or added with "
                    "add_items); a request's new items need ids of their own"
                )
        new = self._new if new_items is None else self._new.plus(new_items)
        ids = [*self.item_ids, *new.ids]
        index = {**self._item_index, **{x: len(self.item_ids) + j for j, x in enumerate(new.ids)}}
        sem, collab, seen = self._resolve(user)
        drop = np.asarray(seen, dtype=np.int64)
        if exclude is not None and not isinstance(exclude, list | tuple):
            raise ExportError(f"exclude must be a list of item ids, got {shown(exclude)}")
        exclude = [check_id(x, f"exclude item {n}") for n, x in enumerate(exclude or [])]
        if exclude:
            missing = [x for x in exclude if str(x) not in index]
            if missing:
                raise ExportError(f"exclude: items {missing[:5]} are not in the catalog")
            drop = np.concatenate([drop, [index[str(x)] for x in exclude]])
        if only_new:
            drop = np.concatenate([drop, np.arange(len(self.item_ids))])
        scores = self._scores(sem, collab)
        if len(new.ids):
            scores = np.concatenate(
                [scores, self._new_scores(sem, collab, self._history(user), new)]
            )
        lists = recommend_lists(
            scores[None, :],
            k,
            exclude=[drop.astype(np.int64)],
            rerank_cfg=self.spec.rerank,
            features=np.concatenate([self._features, new.features]),
            item_counts=np.concatenate([self._counts, np.zeros(len(new.ids), np.int64)]),
        )
        dropped = set(drop.tolist())  # k beyond what is left: the list is shorter, not padded
        top = [int(i) for i in lists[0] if int(i) not in dropped]
        return [ids[i] for i in top], [float(scores[i]) for i in top]

    def score(self, user: Any, items: list[Any]) -> np.ndarray:
        """Fused scores of ``items`` (ids) for ``user`` (before re-ranking)."""
        sem, collab, _ = self._resolve(user)
        idx = self._items(items)
        return self._scores(sem, collab)[idx]

    def conversion(self, user: Any, item: Any, *, new_items: NewItems | None = None) -> float:
        """p(like | user, item): the conversion head (its linear part plus the trained part
        over the towers), as the trial predicted it. An item without interactions (held out
        in training, added with :meth:`add_items` or given in ``new_items``) is predicted from
        its text by the new-item head; a new user's counts are the prior's."""
        return self.ctr(user, item, new_items=new_items)

    def ctr(self, user: Any, item: Any, *, new_items: NewItems | None = None) -> float:
        """:meth:`conversion` (its old name)."""
        import scipy.sparse as sp
        import torch

        from moo_search.recommender.zscore import standardise

        sem, collab, _ = self._resolve(user)
        history = sp.csr_matrix(self._history(user)[None])
        warm = self.model.warm
        n = len(self.item_ids)
        with torch.no_grad():
            semantic = self._scorer.semantic(None if sem is None else sem[None])
            added = self._new if new_items is None else self._new.plus(new_items)
            if str(item) in added.index:  # added after training: its text alone
                j = added.index[str(item)]
                own = self._new_scores(sem, collab, self._history(user), added)[j]
                item_emb, i, new = added.emb[j], 0, True
                if semantic is not None:
                    col = (sem.double() @ item_emb.double()).float().reshape(1, 1)
                    semantic = torch.cat([semantic, col], 1)
                    warm = torch.cat(
                        [
                            torch.ones(n, dtype=torch.bool) if warm is None else warm,
                            torch.zeros(1, dtype=torch.bool),
                        ]
                    )
                    i_sem = n
            else:
                i = int(self._items([item])[0])
                item_emb = None if self._scorer.item_emb is None else self._scorer.item_emb[i]
                new, i_sem = False, i
                fused = self._scorer.fuse(None if sem is None else sem[None], collab[None], history)
                own = fused[0, i]  # a held-out item's score: the one it is ranked by
            cold = new or (warm is not None and not bool(warm[i]))
            if cold:
                r_z = torch.as_tensor([float(own)])
            else:
                r_z = standardise(collab[None].float(), warm)[0, i : i + 1]
            s_z = None if semantic is None else standardise(semantic, warm)[0, i_sem : i_sem + 1]
            feats = self._pair_features(user, i, r_z, s_z)
            if new:
                feats[:, [1, 2, 6]] = self.model.new_item_counts()[None]
            eu = None if sem is None else sem[None].float()
            ei = None if item_emb is None else item_emb[None].float()
            deep = self.model.task_towers(feats, eu, ei)[:, 1]
            if cold:
                linear = self.model.tasks.cold_conversion(feats).squeeze(-1)
            else:
                linear = self.model.ctr_logit(feats)
            return float(torch.sigmoid(linear.float() + deep.float())[0])

    def _pair_features(self, user: Any, i: int, r_z: Any, s_z: Any) -> Any:
        """The task features of (user, item index ``i``); a new user has the prior's
        like-rate, no rating offset and the activity of its history."""
        import torch

        known = not isinstance(user, dict)
        u = self._user_index[str(user)] if known else 0
        kw: dict[str, Any] = {}
        if not known:
            n = len(user.get("history", []))
            kw = {"user_like": self.model.global_like.reshape(1), "user_offset": torch.zeros(1)}
        feats = self.model.task_features(torch.as_tensor([u]), torch.as_tensor([i]), r_z, s_z, **kw)
        if not known:
            feats[:, 7] = float(np.log1p(n))
        return feats

    def _items(self, items: list[Any]) -> np.ndarray:
        missing = [x for x in items if str(x) not in self._item_index]
        if missing:
            raise ExportError(f"items {missing[:5]} are not in the catalog")
        return np.array([self._item_index[str(x)] for x in items], dtype=np.int64)
