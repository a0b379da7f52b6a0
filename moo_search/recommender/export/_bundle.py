"""Writing the bundle of one trial (see :mod:`moo_search.export`)."""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from moo_search.errors import ExportError
from moo_search.export._files import (
    FORMAT_VERSION,
    check_not_inside,
    check_out,
    seal,
    study_paths,
    swap_into_place,
    write_json,
)
from moo_search.export._select import Selection, select_trial
from moo_search.recommender.export._card import write_model_card
from moo_search.recommender.export.pyfunc import write_mlflow_model
from moo_search.recommender.model.encoder import base_model_fingerprint, base_model_loading
from moo_search.recommender.records import BACKBONE_RECORD
from moo_search.recommender.spec import RecommenderSpec, recommender_spec
from moo_search.study import ATTR, STUDY_ATTR, ArtifactMismatch, check_artifacts, record_key

__all__ = ["PER_ITEM", "export_trial"]

# the heads with one row per item (sliced to the served items)
PER_ITEM = frozenset(
    {
        "item_alpha",
        "cf_tower.item_bias",
        "cf_tower.item_emb.weight",
        "item_like",
        "logpop",
        "tasks.item_offset",
    }
)

logger = logging.getLogger("moo_search")


def _standalone_config(raw: dict[str, Any], study_name: str, number: int) -> RecommenderSpec:
    cfg = {
        k: v
        for k, v in raw.items()
        if k not in ("search_space", "enqueue", "storage", "out_dir", "mlflow")
    }
    cfg["name"] = f"{study_name}-trial-{number}"
    cfg["description"] = f"Exported from study {study_name!r}, trial {number}."
    return recommender_spec(cfg, stored=True)


def _with_choices_of_the_trial(spec: RecommenderSpec, art: Path) -> RecommenderSpec:
    """The new-item knobs a trial chose itself on validation (``fusion.new_items: auto``,
    ``new_item_neighbours``/``new_item_ridge``/``new_item_blend: null``), read from the
    config its artifacts were written with."""
    import yaml

    if not (art / "config.yaml").is_file():
        return spec
    ran = (yaml.safe_load((art / "config.yaml").read_text()) or {}).get("fusion") or {}
    mine = spec.fusion.model_dump()
    chosen = {
        f"fusion.{k}": ran[k]
        for k in ("new_items", "new_item_neighbours", "new_item_ridge", "new_item_blend")
        if ran.get(k) is not None and mine.get(k) in (None, "auto")
    }
    return spec.with_params(chosen) if chosen else spec


def _versions() -> dict[str, str]:
    import optuna
    import peft
    import torch
    import transformers

    from moo_search._version import __version__

    return {
        "moo_search": __version__,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "peft": peft.__version__,
        "optuna": optuna.__version__,
    }


def export_trial(
    target: str | Path,
    *,
    out: str | Path,
    trial: int | None = None,
    select: str | None = None,
    where: list[str] | None = None,
    study_name: str | None = None,
    force: bool = False,
) -> Path:
    """Write the bundle of one trial of a study (see the module docstring) into ``out``.

    Raises:
        ExportError: no such trial, an empty selection (with the front's ranges), a non-empty
            ``out`` without ``force``, or missing artifacts.
    """
    from moo_search.recommender.model.encoder import load_encoder
    from moo_search.recommender.prepare import prepare_data
    from moo_search.study import load_study

    where = list(where or [])
    final = Path(out)
    check_out(final, force=force)
    study = load_study(target, study_name)
    sel = select_trial(study, trial=trial, select=select, where=where)
    t = sel.trial
    raw, art = _trial_artifacts(t)
    check_not_inside(final, [art, *[Path(p) for p in study_paths(target)]])
    try:
        artifact_check = check_artifacts(t, art)
    except ArtifactMismatch as e:
        raise ExportError(f"{e}. Nothing was exported") from None
    spec = _with_choices_of_the_trial(_standalone_config(raw, study.study_name, t.number), art)
    data = prepare_data(spec)
    encoder, _, base_id = load_encoder(spec.model)
    bundle = _Bundle(spec, art, data, t, study, sel, encoder, base_id, artifact_check)
    # everything is written to a new directory beside --out and renamed into place at the end:
    # a failure leaves --out as it was
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.export-", dir=final.parent))
    try:
        bundle.write(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    swap_into_place(tmp, final)
    logger.info("exported trial %d of %s to %s", t.number, study.study_name, final)
    return final


def _trial_artifacts(t: Any) -> tuple[dict[str, Any], Path]:
    """The trial's resolved config and its artifact directory, with the files a bundle needs."""
    raw = t.user_attrs.get(ATTR.CONFIG)
    art = Path(t.user_attrs.get(ATTR.ARTIFACTS) or "")
    if raw is None or not art.is_dir():
        raise ExportError(
            f"trial {t.number} has no trial config or artifacts ({art or 'none recorded'}); "
            "only trials of the default objective (run_trial) with their artifacts can be "
            "exported"
        )
    needed = ["heads.safetensors", "metrics.json"]
    if (raw.get("adapter") or {}).get("type", "lora") != "none":
        needed.append("adapter")
    for name in needed:
        if not (art / name).exists():
            raise ExportError(f"{art / name}: missing; the trial's artifacts are incomplete")
    return raw, art


@dataclass
class _Bundle:
    """What one bundle is written from: the trial's resolved spec, artifacts and data, the
    study and the selection, the base encoder and the artifact check."""

    spec: RecommenderSpec
    art: Path
    data: Any
    trial: Any
    study: Any
    sel: Selection
    encoder: Any
    base_id: str
    artifact_check: dict[str, Any]

    def write(self, out: Path) -> None:
        spec, art, data = self.spec, self.art, self.data
        spec.save(out / "config.yaml")
        if spec.adapter.type != "none":
            shutil.copytree(art / "adapter", out / "adapter")
            acfg_path = out / "adapter" / "adapter_config.json"
            acfg = json.loads(acfg_path.read_text())
            acfg["base_model_name_or_path"] = self.base_id  # not this machine's site-packages
            acfg_path.write_text(json.dumps(acfg, indent=2, sort_keys=True))
        _write_heads(art / "heads.safetensors", out / "heads.safetensors", spec, data)
        self._write_backbone(out)
        _write_catalog(out, data, _kept_items(data))
        recorded = self._write_metrics(out)
        manifest = self._manifest()
        objectives = self.study.user_attrs.get(STUDY_ATTR.OBJECTIVES) or []
        write_model_card(out, spec, manifest, recorded, self.sel, objectives)
        write_mlflow_model(out, example_user=str(data.ds.user_ids[0]))
        seal(out, manifest)
        _write_embeddings(out, manifest)

    def _write_backbone(self, out: Path) -> None:
        """The closed-form W at the trial's recorded parameters (restricted to the trained
        items under the item-cold protocol); none for a learned backbone."""
        backbone = _backbone_for_export(self.trial, self.spec, self.data)
        if backbone is None:
            return
        from safetensors.numpy import save_file as save_np

        from moo_search.recommender.model.sparse_weights import SparseWeights

        keep = _kept_items(self.data)
        if isinstance(backbone, SparseWeights):  # its CSR factors, f0_data, f0_indices, ...
            if keep is not None:
                backbone = backbone.restrict(keep)
            save_np(backbone.arrays(), str(out / "backbone.safetensors"))
        else:
            if keep is not None:
                backbone = np.ascontiguousarray(backbone[np.ix_(keep, keep)])
            save_np({"weights": backbone}, str(out / "backbone.safetensors"))

    def _write_metrics(self, out: Path) -> dict[str, Any]:
        """metrics.json: the trial's own metrics (a re-ranking variant shares its fine-tune's
        artifacts, not its metrics), the objectives, the front and the selection."""
        t, sel = self.trial, self.sel
        recorded = json.loads((self.art / "metrics.json").read_text())
        if t.user_attrs.get(ATTR.METRICS):
            recorded = {
                **recorded,
                "metrics": t.user_attrs[ATTR.METRICS],
                "cost": t.user_attrs.get(ATTR.COST, recorded.get("cost", {})),
            }
        write_json(
            out / "metrics.json",
            {
                "metrics": recorded["metrics"],
                "cost": recorded.get("cost", {}),
                "objectives": self.study.user_attrs.get(STUDY_ATTR.OBJECTIVES) or [],
                "front": sel.front,
                "selection": {"rule": sel.rule, "where": sel.where, "trial": t.number},
            },
        )
        return recorded

    def _manifest(self) -> dict[str, Any]:
        spec, data, t = self.spec, self.data, self.trial
        keep = _kept_items(data)
        return {
            "format_version": FORMAT_VERSION,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "versions": _versions(),
            "base_model": {
                "id": self.base_id,
                "weights_sha256": base_model_fingerprint(self.encoder),
                **base_model_loading(spec.model),
            },
            "data": {
                "dataset": data.ds.name,
                "fingerprint": data.ds.fingerprint(),
                "split": spec.data.split.model_dump(mode="json"),
                "sizes": data.split.fingerprint_parts(),
                "relevance_threshold": spec.data.relevance_threshold,
                "item_text": list(spec.data.item_text),  # what the items' texts were made of
                # item-cold protocol: held out of training, so not in the bundle (add_items)
                "held_out_items": 0 if keep is None else int(data.ds.n_items - len(keep)),
            },
            "seed": spec.seed,
            "study": {"name": self.study.study_name, "trial": t.number},
            "trial_artifacts": self.artifact_check,
            "backbone": t.user_attrs.get(record_key(BACKBONE_RECORD)) or {"name": spec.fusion.cf},
        }


def _write_embeddings(out: Path, manifest: dict[str, Any]) -> None:
    """The text tower's embeddings of the catalog and the known users, computed by loading
    the sealed bundle (the code that serves it), then sealed with the rest."""
    from safetensors.torch import save_file

    from moo_search.recommender.export._load import EMBEDDINGS, load_exported

    rec = load_exported(out)
    scorer = rec._scorer
    if scorer.item_emb is None:
        return
    save_file(
        {"items": scorer.item_emb.contiguous(), "users": scorer.user_emb.contiguous()},
        str(out / EMBEDDINGS),
    )
    seal(out, manifest)


def _write_heads(src: Path, dst: Path, spec: RecommenderSpec, data: Any) -> None:
    """The fine-tune's heads, with the fusion weights the exported config serves at: a variant
    served at other weights (``fusion.serve_*``) shares its fine-tune's artifact."""
    import torch
    from safetensors.torch import load_file, save_file

    from moo_search.recommender.prepare import item_alpha

    heads = load_file(str(src))
    keep = _kept_items(data)
    if "item_alpha" not in heads and keep is None:  # a trial from before tail_weight: as it was
        shutil.copy2(src, dst)
        return
    if "item_alpha" in heads:
        heads["item_alpha"] = torch.as_tensor(item_alpha(spec, data, serving=True))
    if keep is not None:
        n_items = data.ds.n_items
        index = torch.as_tensor(keep)
        heads = {
            k: v[index].contiguous() if k in PER_ITEM and v.shape[:1] == (n_items,) else v
            for k, v in heads.items()
        }
    save_file(heads, str(dst))


def _kept_items(data: Any) -> np.ndarray | None:
    """The items the bundle serves: every item, or (item-cold protocol) the warm ones only;
    the held-out items were never trained on, and a bundle adds them as new items."""
    return np.flatnonzero(data.split.warm) if data.split.has_cold_items else None


def _backbone_for_export(t: Any, spec: RecommenderSpec, data: Any) -> Any:
    """The closed-form backbone W the trial used (None for mf), checked against its record."""
    from moo_search.recommender.model.backbone_cache import backbone_sha256
    from moo_search.recommender.prepare import collaborative_backbone

    recorded = t.user_attrs.get(record_key(BACKBONE_RECORD)) or {}
    params = recorded.get("params") or {}
    # the knobs the trial's backbone was fit with (a tuned L2 weight), not tuned again here
    spec = spec.with_params(pinned_knobs(spec.fusion, params))
    cf = collaborative_backbone(spec, data)
    if cf.weights is None:
        return None
    want = recorded.get("sha256")
    got = backbone_sha256(cf.weights)
    if want and want != got:
        raise ExportError(
            f"trial {t.number}: the {cf.name} backbone rebuilt from its data differs from the one "
            f"it was trained with (SHA-256 recorded {want}, rebuilt {got}); nothing was exported"
        )
    return cf.weights


def pinned_knobs(fusion: Any, used: dict[str, Any]) -> dict[str, Any]:
    """``fusion.cf_params.<knob>`` for each knob of the backbone's params model that its fit
    recorded (``used``) and the spec leaves unset."""
    from moo_search.recommender.registries import BACKBONES

    model = BACKBONES.get(fusion.cf).params
    fields = getattr(model, "model_fields", {}) if model is not None else {}
    names = {f.alias or n for n, f in fields.items()}
    return {
        f"fusion.cf_params.{k}": v
        for k, v in used.items()
        if k in names and (fusion.cf_params or {}).get(k) is None
    }


def _write_catalog(out: Path, data: Any, keep: np.ndarray | None) -> None:
    ds, split = data.ds, data.split
    items = np.arange(ds.n_items) if keep is None else keep
    seen = split.seen_before("test").tocsr()[:, items]
    train = split.matrix("train").tocsr()[:, items]  # what the backbone scored users from
    titles = [f"{t} ({y})" if y else str(t) for t, y in zip(ds.items["title"], ds.items["year"])]
    np.savez_compressed(
        out / "seen.npz",
        indptr=seen.indptr,
        indices=seen.indices,
        shape=np.array(seen.shape),
        train_indptr=train.indptr,
        train_indices=train.indices,
        train_data=train.data.astype(np.float32),
    )
    write_json(
        out / "catalog.json",
        {
            "item_ids": [str(ds.item_ids[i]) for i in items],
            "item_texts": [data.item_texts[i] for i in items],
            "item_titles": [titles[i] for i in items],
            "user_ids": [str(x) for x in ds.user_ids],
            "user_texts": data.user_texts,
            "item_features": data.features[items].astype(float).tolist(),
            "item_counts": data.item_counts[items].astype(int).tolist(),
            "genres": ds.genres,
        },
    )
