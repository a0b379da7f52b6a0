"""Loading a bundle back: every file verified against the manifest, then the recommender
assembled from it (:class:`~moo_search.recommender.export._exported.ExportedRecommender`)."""

from __future__ import annotations

import contextlib
import json
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import yaml

from moo_search.errors import ExportError, SpecError
from moo_search.export._files import verify_manifest
from moo_search.recommender.export._exported import ExportedRecommender
from moo_search.recommender.model.encoder import base_model_fingerprint
from moo_search.recommender.spec import RecommenderSpec, recommender_spec

__all__ = ["load_exported"]

T = TypeVar("T")

# the text tower's item and user embeddings, computed at export (loading does not re-encode)
EMBEDDINGS = "embeddings.safetensors"


def _read(path: Path, reader: Callable[[Path], T]) -> T:
    """``reader(path)``, any failure to parse turned into an :class:`ExportError` naming it."""
    try:
        return reader(path)
    except SpecError as e:
        raise ExportError(f"{path}: {e}") from None
    except (OSError, ValueError, KeyError, TypeError, yaml.YAMLError, zipfile.BadZipFile) as e:
        # safetensors raises its own error types; they subclass Exception only
        raise ExportError(f"{path}: unreadable ({type(e).__name__}: {e})") from None
    except Exception as e:
        if type(e).__module__.startswith("safetensors"):
            raise ExportError(f"{path}: unreadable ({e})") from None
        raise


@contextlib.contextmanager
def _naming(path: Path) -> Iterator[None]:
    """A file that parsed but does not fit the rest of the bundle (a shape, a missing key):
    an :class:`ExportError` naming it."""
    try:
        yield
    except (ValueError, KeyError, IndexError, RuntimeError, TypeError) as e:
        raise ExportError(f"{path}: does not fit the bundle ({type(e).__name__}: {e})") from None


def load_exported(path: str | Path) -> ExportedRecommender:
    """Verify ``manifest.json`` (every file present, unaltered, nothing extra), then load.

    Raises:
        ExportError: a missing, altered or unexpected file (named), or a base model whose
            weights differ from the ones the adapter was trained on.
    """
    from safetensors.torch import load_file

    from moo_search.recommender.model.assemble import TowerParts, assemble

    root = Path(path)
    manifest = verify_manifest(root)
    spec = _read(
        root / "config.yaml", lambda p: recommender_spec(yaml.safe_load(p.read_text()), stored=True)
    )
    encoder, tokenizer = _encoder(root, spec, manifest)
    catalog = _read(root / "catalog.json", lambda p: json.loads(p.read_text()))
    heads = _read(root / "heads.safetensors", lambda p: load_file(str(p)))
    heads = legacy_heads(heads, spec.fusion.cf)
    with _naming(root / "heads.safetensors"):
        n_items, n_users = heads["logpop"].shape[0], heads["user_like"].shape[0]
    seen, train = _seen_and_train(root, n_users, n_items)
    cf_weights, cf_scores = _backbone(root, train, n_users, n_items)
    parts = TowerParts(
        n_users=n_users,
        n_items=n_items,
        item_logpop=heads["logpop"].numpy(),
        cf_weights=cf_weights,
        cf_scores=cf_scores,
        cf_train=train,
    )
    # the same layer path the trial evaluated with, without the on-disk cache
    model = assemble(spec, encoder, parts)
    _load_heads(root, model, heads, float(spec.fusion.alpha))
    embeddings = _embeddings(root, n_users, n_items) if spec.fusion.alpha > 0 else None
    return ExportedRecommender(
        root, manifest, spec, model, tokenizer, catalog, (seen, train), embeddings=embeddings
    )


_LEGACY_MF = ("user_emb.weight", "item_emb.weight", "item_bias")
"""The ID embeddings' keys in a bundle written before the collaborative tower was one
module: every backbone shipped them (unused but by mf); now they are mf's, under cf_tower."""


def legacy_heads(heads: dict[str, Any], cf: str) -> dict[str, Any]:
    """A bundle's heads as the current recommender names them: the old top-level ID
    embeddings moved under ``cf_tower`` (mf) or dropped (every other backbone); the
    closed-form buffers an old bundle may hold dropped (the backbone file has W)."""
    out = {k: v for k, v in heads.items() if k not in ("cf_weights", "cf_scores", *_LEGACY_MF)}
    if cf == "mf":
        out.update({f"cf_tower.{k}": heads[k] for k in _LEGACY_MF if k in heads})
    return out


def _encoder(root: Path, spec: RecommenderSpec, manifest: dict[str, Any]) -> tuple[Any, Any]:
    """The base encoder (its weights checked against the manifest's) with the bundle's adapter."""
    from moo_search.recommender.model.encoder import load_encoder

    encoder, tokenizer, _ = load_encoder(spec.model)
    got = base_model_fingerprint(encoder)
    if got != manifest["base_model"]["weights_sha256"]:
        raise ExportError(
            f"base model {manifest['base_model']['id']}: weights differ from the ones the "
            f"adapter was trained on (sha256 {got[:12]}… != "
            f"{manifest['base_model']['weights_sha256'][:12]}…)"
        )
    if spec.adapter.type != "none":
        from peft import PeftModel

        from moo_search.recommender.model.adapters import quiet_peft

        with quiet_peft():
            encoder = PeftModel.from_pretrained(encoder, str(root / "adapter"))
    return encoder, tokenizer


def _seen_and_train(root: Path, n_users: int, n_items: int) -> tuple[Any, Any]:
    """The items each known user interacted with, and their train rows (``seen.npz``)."""
    import scipy.sparse as sp

    z = _read(root / "seen.npz", lambda p: dict(np.load(p, allow_pickle=False)))
    with _naming(root / "seen.npz"):
        shape = tuple(int(v) for v in z["shape"])
        if shape != (n_users, n_items):
            raise ValueError(f"holds a {shape} matrix; the heads are for {(n_users, n_items)}")
        seen = sp.csr_matrix((np.ones(len(z["indices"])), z["indices"], z["indptr"]), shape=shape)
        train = sp.csr_matrix((z["train_data"], z["train_indices"], z["train_indptr"]), shape=shape)
    return seen, train


def _backbone(root: Path, train: Any, n_users: int, n_items: int) -> tuple[Any, Any]:
    """The closed-form backbone's W (dense or sparse) and, within the memory budget, the known
    users' scores; (None, None) for a bundle without one (mf)."""
    if not (root / "backbone.safetensors").is_file():
        return None, None
    from safetensors.numpy import load_file as load_np

    from moo_search.recommender.memory import scores_fit
    from moo_search.recommender.model.sparse_weights import SparseWeights, user_scores

    arrays = _read(root / "backbone.safetensors", lambda p: load_np(str(p)))
    with _naming(root / "backbone.safetensors"):
        # dense: "weights"; sparse: CSR factors f0_data, f0_indices, f0_indptr, f0_shape...
        w = arrays["weights"] if "weights" in arrays else SparseWeights.from_arrays(arrays)
        if tuple(w.shape) != (n_items, n_items):
            raise ValueError(f"holds a {w.shape} W; the catalog has {n_items} items")
        return w, (user_scores(train, w) if scores_fit(n_users, n_items) else None)


def _load_heads(root: Path, model: Any, heads: dict[str, Any], alpha: float) -> None:
    import torch

    if "item_alpha" not in heads:  # a bundle without per-item weights: one alpha for all
        heads["item_alpha"] = torch.full((model.logpop.shape[0],), alpha)
    with _naming(root / "heads.safetensors"):
        missing, unexpected = model.load_state_dict(heads, strict=False)
    # a bundle without the click and satisfaction heads has no tasks.*: they stay at their
    # count-baseline start; one from before the task towers has no task_towers.*: their
    # outputs start at zero, so its heads predict as they did
    if unexpected or any(not k.startswith(("encoder.", "tasks.", "task_towers.")) for k in missing):
        raise ExportError(
            f"{root / 'heads.safetensors'}: does not match the model (missing {missing[:3]}, "
            f"unexpected {unexpected[:3]})"
        )
    model.eval()


def _embeddings(root: Path, n_users: int, n_items: int) -> dict[str, Any] | None:
    """The text tower's item and user embeddings computed at export (None in a bundle that
    has none: they are computed on load)."""
    from safetensors.torch import load_file

    if not (root / EMBEDDINGS).is_file():
        return None
    embeddings: dict[str, Any] = _read(root / EMBEDDINGS, lambda p: load_file(str(p)))
    with _naming(root / EMBEDDINGS):
        n_i, n_u = embeddings["items"].shape[0], embeddings["users"].shape[0]
        if (n_i, n_u) != (n_items, n_users):
            raise ValueError(
                f"holds {n_i} items and {n_u} users; the heads are for {n_items} and {n_users}"
            )
    return embeddings
