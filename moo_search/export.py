"""Export a chosen trial as a package production can load, and load it back.

Bundle layout (``DIR``)::

    config.yaml          the resolved trial config; `moo-search trial DIR/config.yaml` re-runs it
    adapter/             the adapter in standard PEFT format (PeftModel.from_pretrained)
    heads.safetensors    ID embeddings, item bias, CTR head, like-rates
    backbone.safetensors the closed-form collaborative backbone W (fusion.cf ease/itemknn)
    catalog.json         item ids and texts, user ids and texts, features, train counts
    seen.npz             items each known user interacted with (never recommended again),
                         and their train rows (the backbone scores them as x_u W)
    metrics.json         validation/test metrics, objectives, the front, the selection rule
    manifest.json        versions, base model and data fingerprints, SHA-256 of every file
    MODEL_CARD.md        what it is, how it was chosen, how to load it
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from moo_search.errors import ExportError, SpecError, StorageError
from moo_search.spec import Constraint, StudySpec, spec_from_dict

__all__ = ["ExportedRecommender", "export_trial", "load_exported", "verify_export"]

logger = logging.getLogger("moo_search")

MANIFEST = "manifest.json"
FORMAT_VERSION = 1
_MINIMIZED = re.compile(r"(logloss|gini@|^cost/)")


# --------------------------------------------------------------------------- selection


@dataclass
class Selection:
    trial: Any  # FrozenTrial
    rule: str
    where: list[str]
    front: list[dict[str, Any]]


def _parse_where(texts: list[str]) -> list[Constraint]:
    out = []
    for t in texts:
        try:
            out.append(Constraint.parse(t))
        except ValueError as e:
            raise ExportError(f"--where {t!r}: {e}") from None
    return out


def _select(study: Any, *, trial: int | None, select: str | None, where: list[str]) -> Selection:
    from optuna.trial import TrialState

    from moo_search import pareto
    from moo_search.report._data import collect

    data = collect(study)
    metrics, dirs = data.metrics, data.directions
    front = data.front
    front_list = [
        {"trial": int(r["number"]), **{m: r[f"obj:{m}"] for m in metrics}}
        for _, r in front.iterrows()
    ]
    if trial is not None:
        trials = study.get_trials(deepcopy=False)
        t = next((x for x in trials if x.number == trial), None)
        if t is None:
            raise ExportError(
                f"--trial {trial}: no such trial; the study has trials 0..{len(trials) - 1}"
            )
        if t.state != TrialState.COMPLETE:
            raise ExportError(
                f"--trial {trial}: the trial is {t.state.name}, only COMPLETE trials can be exported"
            )
        return Selection(t, f"trial {trial}", where, front_list)
    if not select:
        raise ExportError("choose a trial: --trial N or --select knee|compromise|best:METRIC")
    cands = front.copy()
    for c in _parse_where(where):
        col = f"obj:{c.metric}" if f"obj:{c.metric}" in cands else f"val:{c.metric}"
        if col not in cands:
            raise ExportError(f"--where {c}: unknown metric {c.metric!r}; objectives are {metrics}")
        vals = cands[col].astype(float)
        cands = cands[vals >= c.value] if c.op == ">=" else cands[vals <= c.value]
    if cands.empty:
        ranges = (
            ", ".join(
                f"{m} in [{front[f'obj:{m}'].min():.4g}, {front[f'obj:{m}'].max():.4g}]"
                for m in metrics
            )
            if not front.empty
            else "the front is empty (no complete feasible trial)"
        )
        raise ExportError(
            f"no front trial satisfies {' and '.join(where) or 'the selection'}; front ranges: {ranges}"
        )
    F = cands[[f"obj:{m}" for m in metrics]].to_numpy(dtype=np.float64)
    if select == "knee":
        idx = pareto.knee_index(F, dirs)
    elif select == "compromise":
        idx = pareto.compromise_index(F, dirs)
    elif select.startswith("best:"):
        metric = select.split(":", 1)[1]
        if metric in metrics:
            col, direction = f"obj:{metric}", dirs[metrics.index(metric)]
        elif f"val:{metric}" in cands:
            col, direction = (
                f"val:{metric}",
                "minimize" if _MINIMIZED.search(metric) else "maximize",
            )
        else:
            raise ExportError(
                f"--select {select}: unknown metric {metric!r}; objectives are {metrics}"
            )
        vals = cands[col].astype(float).to_numpy()
        idx = int(np.nanargmax(vals) if direction == "maximize" else np.nanargmin(vals))
    else:
        raise ExportError(f"--select {select!r}: expected knee, compromise or best:METRIC")
    number = int(cands.iloc[idx]["number"])
    chosen = next(t for t in study.get_trials(deepcopy=False) if t.number == number)
    return Selection(chosen, select, where, front_list)


# --------------------------------------------------------------------------- writing


def _sha256(path: Path) -> str:
    from moo_search.study import sha256_file

    return sha256_file(path)


def _write_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(_clean(obj), indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _clean(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _clean(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_clean(x) for x in v]
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def _standalone_config(raw: dict[str, Any], study_name: str, number: int) -> StudySpec:
    cfg = {
        k: v for k, v in raw.items() if k not in ("search_space", "enqueue", "storage", "out_dir")
    }
    cfg["name"] = f"{study_name}-trial-{number}"
    cfg["description"] = f"Exported from study {study_name!r}, trial {number}."
    return spec_from_dict(cfg)


def base_model_fingerprint(encoder: Any) -> str:
    """SHA-256 over the base encoder's weights (names, shapes, bytes), adapter excluded."""
    import torch

    h = hashlib.sha256()
    for name, t in sorted(encoder.state_dict().items()):
        if "lora_" in name or "ia3_" in name:
            continue
        h.update(name.encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.detach().to(torch.float32).cpu().numpy().tobytes())
    return h.hexdigest()


def _versions() -> dict[str, str]:
    import optuna
    import peft
    import torch
    import transformers

    from moo_search import __version__

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
    from moo_search.model.encoder import load_encoder
    from moo_search.study import ATTR, load_study
    from moo_search.trial import prepare_data

    where = list(where or [])
    final = Path(out)
    _check_out(final, force=force)
    study = load_study(target, study_name)
    sel = _select(study, trial=trial, select=select, where=where)
    t = sel.trial
    raw = t.user_attrs.get(ATTR.CONFIG)
    art = Path(t.user_attrs.get(ATTR.ARTIFACTS) or "")
    if raw is None or not art.is_dir():
        raise ExportError(
            f"trial {t.number} has no trial config or artifacts ({art or 'none recorded'}); only trials of "
            "the default objective (run_trial) with their artifacts can be exported"
        )
    needed = ["heads.safetensors", "metrics.json"]
    if (raw.get("adapter") or {}).get("type", "lora") != "none":
        needed.append("adapter")
    for name in needed:
        if not (art / name).exists():
            raise ExportError(f"{art / name}: missing; the trial's artifacts are incomplete")
    _check_not_inside(final, [art, *[Path(p) for p in _study_paths(target)]])
    artifact_check = _check_artifacts(t, art)
    spec = _standalone_config(raw, study.study_name, t.number)
    data = prepare_data(spec)
    encoder, _, base_id = load_encoder(spec.model)
    backbone = _backbone_for_export(t, spec, data)

    # everything is written to a new directory beside --out and renamed into place at the end:
    # a failure leaves --out as it was
    final.parent.mkdir(parents=True, exist_ok=True)
    out = Path(tempfile.mkdtemp(prefix=f".{final.name}.export-", dir=final.parent))
    try:
        _write_bundle(
            out, spec, art, base_id, backbone, data, t, study, sel, encoder, artifact_check
        )
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)
        raise
    _swap_into_place(out, final)
    logger.info("exported trial %d of %s to %s", t.number, study.study_name, final)
    return final


def _write_bundle(
    out: Path,
    spec: StudySpec,
    art: Path,
    base_id: str,
    backbone: np.ndarray | None,
    data: Any,
    t: Any,
    study: Any,
    sel: Selection,
    encoder: Any,
    artifact_check: dict[str, Any],
) -> None:
    from moo_search.study import ATTR

    spec.save(out / "config.yaml")
    if spec.adapter.type != "none":
        shutil.copytree(art / "adapter", out / "adapter")
        acfg_path = out / "adapter" / "adapter_config.json"
        acfg = json.loads(acfg_path.read_text())
        acfg["base_model_name_or_path"] = base_id  # not this machine's site-packages path
        acfg_path.write_text(json.dumps(acfg, indent=2, sort_keys=True))
    shutil.copy2(art / "heads.safetensors", out / "heads.safetensors")
    if backbone is not None:
        from safetensors.numpy import save_file as save_np

        save_np({"weights": backbone}, str(out / "backbone.safetensors"))
    _write_catalog(out, data)
    recorded = json.loads((art / "metrics.json").read_text())
    if t.user_attrs.get(ATTR.METRICS):
        # the trial's own record: a re-ranking variant shares its fine-tune's artifacts, not
        # its metrics
        recorded = {
            **recorded,
            "metrics": t.user_attrs[ATTR.METRICS],
            "cost": t.user_attrs.get(ATTR.COST, recorded.get("cost", {})),
        }
    objectives = study.user_attrs.get("moo:objectives") or []
    _write_json(
        out / "metrics.json",
        {
            "metrics": recorded["metrics"],
            "cost": recorded.get("cost", {}),
            "objectives": objectives,
            "front": sel.front,
            "selection": {"rule": sel.rule, "where": sel.where, "trial": t.number},
        },
    )
    split = data.split
    manifest = {
        "format_version": FORMAT_VERSION,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "versions": _versions(),
        "base_model": {"id": base_id, "weights_sha256": base_model_fingerprint(encoder)},
        "data": {
            "dataset": data.ds.name,
            "fingerprint": data.ds.fingerprint(),
            "split": spec.data.split.model_dump(mode="json"),
            "sizes": split.fingerprint_parts(),
            "relevance_threshold": spec.data.relevance_threshold,
        },
        "seed": spec.seed,
        "study": {"name": study.study_name, "trial": t.number},
        "trial_artifacts": artifact_check,
        "backbone": t.user_attrs.get(ATTR.BACKBONE) or {"name": spec.fusion.cf},
    }
    _write_model_card(out, spec, manifest, recorded, sel, objectives)
    _seal(out, manifest)


def _is_bundle(path: Path) -> bool:
    """A directory holding a previous export of ours (its manifest names our format)."""
    try:
        m = json.loads((path / MANIFEST).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(m, dict) and "format_version" in m and isinstance(m.get("files"), dict)


def _check_out(out: Path, *, force: bool) -> None:
    """The one place that decides whether ``--out`` may be replaced: only when it does not
    exist, is an empty directory, or (with ``force``) holds a previous bundle of ours; never
    the working directory or one of its parents."""
    if out.exists() and not out.is_dir():
        raise ExportError(f"--out {out}: exists and is not a directory; choose a new path")
    resolved = out.resolve()
    cwd = Path.cwd().resolve()
    if resolved == cwd or resolved in cwd.parents:
        raise ExportError(
            f"--out {out}: is the working directory or one of its parents; export into a new "
            "directory, e.g. exports/knee"
        )
    if out.is_dir() and any(out.iterdir()):
        if not force:
            raise ExportError(
                f"{out} exists and is not empty; pass --force to replace its contents"
            )
        if not _is_bundle(out):
            raise ExportError(
                f"--out {out}: holds files that are not an export bundle (no manifest.json of "
                "ours); --force replaces only a previous bundle. Nothing was deleted"
            )


def _check_not_inside(out: Path, protected: list[Path]) -> None:
    """Refuse an ``--out`` that is, or contains, the study or the trial's artifacts."""
    resolved = out.resolve()
    for p in protected:
        q = p.resolve()
        if resolved == q or resolved in q.parents:
            raise ExportError(
                f"--out {out}: would replace {p} (the study or its artifacts); choose a new path"
            )


def _study_paths(target: str | Path) -> list[str]:
    """The study directory and database file behind ``target``, when it is on disk."""
    from moo_search.study import resolve_storage_arg

    try:
        url, study_dir = resolve_storage_arg(str(target))
    except StorageError:  # not a path on disk: the artifact check still applies
        return []
    paths = [str(study_dir)] if study_dir is not None else []
    if url.startswith("sqlite:///"):
        paths.append(url.removeprefix("sqlite:///"))
    return paths


def _swap_into_place(tmp: Path, final: Path) -> None:
    """Rename the finished bundle into ``final``; a previous bundle (or empty dir) there is
    moved aside first and removed only once the new one is in place."""
    old = None
    if final.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{final.name}.old-", dir=final.parent))
        os.replace(final, old / "bundle")
    os.replace(tmp, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _check_artifacts(t: Any, art: Path) -> dict[str, Any]:
    """Refuse artifacts that are not this trial's: every file recorded when the trial
    completed must hash as recorded. Trials from before hashes were recorded are "unverified"."""
    from moo_search.study import ATTR

    recorded = t.user_attrs.get(ATTR.ARTIFACT_SHA256)
    if not recorded:
        return {"status": "unverified", "reason": "the trial predates artifact hashes"}
    for rel, sha in sorted(recorded.items()):
        p = art / rel
        if not p.is_file():
            raise ExportError(
                f"trial {t.number}: artifact {p} recorded when the trial completed is missing; "
                "nothing was exported"
            )
        got = _sha256(p)
        if got != sha:
            raise ExportError(
                f"trial {t.number}: artifact {p} is not the one this trial wrote (SHA-256 "
                f"recorded {sha}, found {got}); another run may have overwritten it. Nothing "
                "was exported"
            )
    return {"status": "verified", "files": len(recorded)}


def _backbone_for_export(t: Any, spec: StudySpec, data: Any) -> np.ndarray | None:
    """The closed-form backbone W the trial used (None for mf), checked against its record."""
    from moo_search.model.backbones import backbone_sha256
    from moo_search.study import ATTR
    from moo_search.trial import collaborative_backbone

    cf = collaborative_backbone(spec, data)
    if cf.weights is None:
        return None
    want = (t.user_attrs.get(ATTR.BACKBONE) or {}).get("sha256")
    got = backbone_sha256(cf.weights)
    if want and want != got:
        raise ExportError(
            f"trial {t.number}: the {cf.name} backbone rebuilt from its data differs from the one "
            f"it was trained with (SHA-256 recorded {want}, rebuilt {got}); nothing was exported"
        )
    return cf.weights


def _write_catalog(out: Path, data: Any) -> None:
    ds, split = data.ds, data.split
    seen = split.seen_before("test").tocsr()
    train = split.matrix("train").tocsr()  # what the backbone scored known users from
    np.savez_compressed(
        out / "seen.npz",
        indptr=seen.indptr,
        indices=seen.indices,
        shape=np.array(seen.shape),
        train_indptr=train.indptr,
        train_indices=train.indices,
        train_data=train.data.astype(np.float32),
    )
    _write_json(
        out / "catalog.json",
        {
            "item_ids": [str(x) for x in ds.item_ids],
            "item_texts": data.item_texts,
            "item_titles": [
                f"{t} ({y})" if y else str(t) for t, y in zip(ds.items["title"], ds.items["year"])
            ],
            "user_ids": [str(x) for x in ds.user_ids],
            "user_texts": data.user_texts,
            "item_features": data.features.astype(float).tolist(),
            "item_counts": data.item_counts.astype(int).tolist(),
            "genres": ds.genres,
        },
    )


def _seal(out: Path, manifest: dict[str, Any]) -> None:
    files = sorted(p for p in out.rglob("*") if p.is_file() and p.name != MANIFEST)
    manifest["files"] = {p.relative_to(out).as_posix(): _sha256(p) for p in files}
    _write_json(out / MANIFEST, manifest)


def _write_model_card(
    out: Path,
    spec: StudySpec,
    manifest: dict[str, Any],
    recorded: dict[str, Any],
    sel: Selection,
    objectives: list[dict[str, Any]],
) -> None:
    m = recorded["metrics"]
    names = [o["metric"] for o in objectives] or ["precision@10", "ndcg@10", "ild@10", "novelty@10"]
    extra = [
        x
        for x in ("precision@10", "ndcg@10", "ild@10", "novelty@10", "coverage@10", "ctr_auc")
        if x not in names
    ]
    rows = "\n".join(
        f"| {n} | {m['val'].get(n, float('nan')):.4f} | {m['test'].get(n, float('nan')):.4f} |"
        for n in names + extra
    )
    a = spec.adapter
    card = f"""# {spec.name}

A language-model recommender: {manifest["base_model"]["id"]} with a {a.type.upper()} adapter
(r={a.r}, alpha={a.alpha:g}, targets {", ".join(a.target_modules)}{f", layers {a.layers}" if a.layers else ""}),
the semantic score fused with the {spec.fusion.cf} collaborative backbone (alpha={spec.fusion.alpha:.3f}) and a CTR head;
re-ranking with MMR lambda={spec.rerank.mmr_lambda:.3f} and popularity penalty beta={spec.rerank.pop_penalty:.3f}.

## How it was chosen

Artifacts: {"checked against the SHA-256 recorded by the trial" if manifest["trial_artifacts"]["status"] == "verified" else "unverified (the trial predates artifact hashes)"}.

Study `{manifest["study"]["name"]}`, trial {manifest["study"]["trial"]}, selected by
`{sel.rule}`{f" among front trials with {' and '.join(sel.where)}" if sel.where else ""} from a Pareto front of
{len(sel.front)} trials over {", ".join(f"{o['metric']} ({o['direction']})" for o in objectives)}.

## Metrics

Data: {manifest["data"]["dataset"]} ({manifest["data"]["split"]["method"]} split, relevance: rating >= {manifest["data"]["relevance_threshold"]:g}).

| metric | validation | test |
|---|---|---|
{rows}

## Load it

```python
from moo_search import load_exported

rec = load_exported("{out.name}")                 # verifies manifest.json first
rec.recommend("196", k=10)                    # a known user id
rec.recommend({{"attributes": {{"age": 30}}, "history": ["1", "50"]}}, k=10)  # a new user
```

The adapter alone loads with plain PEFT:

```python
from peft import PeftModel
from transformers import AutoModel
model = PeftModel.from_pretrained(AutoModel.from_pretrained("{manifest["base_model"]["id"]}"), "{out.name}/adapter")
```

Re-run the training: `moo-search trial {out.name}/config.yaml`; check reproduction:
`moo-search export ... --verify`.

Versions: {", ".join(f"{k} {v}" for k, v in manifest["versions"].items())}.
"""
    (out / "MODEL_CARD.md").write_text(card, encoding="utf-8")


# --------------------------------------------------------------------------- loading


def _verify_manifest(root: Path) -> dict[str, Any]:
    mpath = root / MANIFEST
    if not root.is_dir():
        raise ExportError(f"{root}: not a directory")
    if not mpath.is_file():
        raise ExportError(f"{mpath}: missing; not an export bundle (or an incomplete one)")
    try:
        manifest = json.loads(mpath.read_text())
        files = manifest["files"]
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise ExportError(f"{mpath}: unreadable manifest ({e})") from None
    for rel, sha in sorted(files.items()):
        p = root / rel
        if not p.is_file():
            raise ExportError(f"{p}: listed in the manifest but missing; nothing was loaded")
        if _sha256(p) != sha:
            raise ExportError(
                f"{p}: SHA-256 differs from the manifest (altered or corrupt); nothing was loaded"
            )
    extra = sorted(
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file() and p.name != MANIFEST and p.relative_to(root).as_posix() not in files
    )
    if extra:
        raise ExportError(f"{root}: files not in the manifest: {extra}; nothing was loaded")
    return manifest


class ExportedRecommender:
    """A loaded bundle: ``recommend``, ``score`` and ``ctr`` for known or new users."""

    def __init__(
        self,
        root: Path,
        manifest: dict[str, Any],
        spec: StudySpec,
        model: Any,
        tokenizer: Any,
        catalog: dict[str, Any],
        seen: Any,
    ) -> None:
        import torch

        from moo_search.model.tokens import tokenize_cached

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
        self._seen = seen
        self._device = torch.device("cpu")
        self._items_tok = tokenize_cached(
            tokenizer, catalog["item_texts"], spec.model.max_item_length
        )
        self._users_tok = tokenize_cached(tokenizer, self._user_texts, spec.model.max_user_length)
        with torch.no_grad():
            self._item_emb = (
                model.encode_table(self._items_tok, self._device) if model.alpha > 0 else None
            )
            self._user_emb = (
                model.encode_table(self._users_tok, self._device) if model.alpha > 0 else None
            )

    # ---- users
    def _resolve(self, user: Any) -> tuple[Any, Any, np.ndarray]:
        """(semantic vector or None, collaborative user vector, items to exclude)."""
        import torch

        from moo_search.data.text import render_user

        if isinstance(user, dict):
            unknown = [k for k in user if k not in ("attributes", "history")]
            if unknown:
                raise ExportError(
                    f"a new user is {{'attributes': {{...}}, 'history': [item ids]}}; unknown keys {unknown}"
                )
            hist = [str(i) for i in user.get("history", [])]
            missing = [i for i in hist if i not in self._item_index]
            if missing:
                raise ExportError(f"history items {missing[:5]} are not in the catalog")
            idx = np.array([self._item_index[i] for i in hist], dtype=np.int64)
            text = render_user(
                dict(user.get("attributes", {})),
                [self._titles[i] for i in idx[::-1][: self.spec.data.history_len]],
            )
            with torch.no_grad():
                sem = None
                if self.model.alpha > 0:
                    enc = self.tokenizer(
                        [text],
                        truncation=True,
                        max_length=self.spec.model.max_user_length,
                        return_tensors="pt",
                    )
                    sem = self.model.encode(enc["input_ids"], enc["attention_mask"])[0]
                collab = self.model.collaborative_from_history(torch.as_tensor(idx))
            return sem, collab, idx
        key = str(user)
        if key not in self._user_index:
            raise ExportError(
                f"unknown user id {user!r}; pass a known id or {{'attributes': ..., 'history': [...]}}"
            )
        u = self._user_index[key]
        sem = self._user_emb[u] if self._user_emb is not None else None
        seen = self._seen.indices[self._seen.indptr[u] : self._seen.indptr[u + 1]]
        with torch.no_grad():
            collab = self.model.collaborative(torch.as_tensor([u]))[0]
        return sem, collab, seen

    def _scores(self, sem: Any, collab: Any) -> np.ndarray:
        """Fused scores over the catalog, exactly as the trial scored them."""
        import torch

        with torch.no_grad():
            s = (
                (sem @ self._item_emb.T)[None]
                if sem is not None and self._item_emb is not None
                else None
            )
            return self.model.fuse(s, collab[None])[0].float().numpy()

    def recommend(self, user: Any, k: int = 10) -> list[str]:
        """Top-``k`` item ids, seen items excluded, re-ranked exactly as in evaluation."""
        from moo_search.metrics import topk
        from moo_search.model.rerank import rerank

        sem, collab, seen = self._resolve(user)
        s = self._scores(sem, collab).astype(np.float64)[None, :]
        s[0, seen] = -np.inf
        rr = self.spec.rerank
        if rr.mmr_lambda < 1 or rr.pop_penalty > 0:
            lst = rerank(
                s,
                k,
                features=self._features,
                item_counts=self._counts,
                mmr_lambda=rr.mmr_lambda,
                pop_penalty=rr.pop_penalty,
                candidates=rr.candidates,
            )[0]
        else:
            lst = topk(s, k)[0]
        return [self.item_ids[i] for i in lst]

    def score(self, user: Any, items: list[Any]) -> np.ndarray:
        """Fused scores of ``items`` (ids) for ``user`` (before re-ranking)."""
        sem, collab, _ = self._resolve(user)
        idx = self._items(items)
        return self._scores(sem, collab)[idx]

    def ctr(self, user: Any, item: Any) -> float:
        """p(click | user, item) from the CTR head (like-rates of a new user: the prior)."""
        import torch

        from moo_search.model.recommender import standardise

        sem, collab, _ = self._resolve(user)
        i = int(self._items([item])[0])
        with torch.no_grad():
            r_z = standardise(collab[None].float())[0, i]
            s_z = None
            if sem is not None and self._item_emb is not None:
                s_z = standardise((sem @ self._item_emb.T)[None])[0, i]
            known = not isinstance(user, dict)
            u = self._user_index[str(user)] if known else 0
            feats = self.model.ctr_features(
                torch.as_tensor([u]),
                torch.as_tensor([i]),
                r_z[None],
                None if s_z is None else s_z[None],
                # a new user has no train exposures: the smoothed rate is the global one
                user_like=None if known else self.model.global_like.reshape(1),
            )
            return float(torch.sigmoid(self.model.ctr_logit(feats))[0])

    def _items(self, items: list[Any]) -> np.ndarray:
        missing = [x for x in items if str(x) not in self._item_index]
        if missing:
            raise ExportError(f"items {missing[:5]} are not in the catalog")
        return np.array([self._item_index[str(x)] for x in items], dtype=np.int64)


def load_exported(path: str | Path) -> ExportedRecommender:
    """Verify ``manifest.json`` (every file present, unaltered, nothing extra), then load.

    Raises:
        ExportError: a missing, altered or unexpected file (named), or a base model whose
            weights differ from the ones the adapter was trained on.
    """
    import scipy.sparse as sp
    from safetensors.torch import load_file

    from moo_search.model.encoder import load_encoder
    from moo_search.model.recommender import Recommender

    root = Path(path)
    manifest = _verify_manifest(root)
    try:
        spec = spec_from_dict(__import__("yaml").safe_load((root / "config.yaml").read_text()))
    except SpecError as e:
        raise ExportError(f"{root / 'config.yaml'}: {e}") from None
    encoder, tokenizer, _ = load_encoder(spec.model)
    got = base_model_fingerprint(encoder)
    if got != manifest["base_model"]["weights_sha256"]:
        raise ExportError(
            f"base model {manifest['base_model']['id']}: weights differ from the ones the adapter was trained on "
            f"(sha256 {got[:12]}… != {manifest['base_model']['weights_sha256'][:12]}…)"
        )
    if spec.adapter.type != "none":
        from peft import PeftModel

        from moo_search.model.adapters import quiet_peft

        with quiet_peft():
            encoder = PeftModel.from_pretrained(encoder, str(root / "adapter"))
    catalog = json.loads((root / "catalog.json").read_text())
    heads = load_file(str(root / "heads.safetensors"))
    heads = {k: v for k, v in heads.items() if k not in ("cf_weights", "cf_scores")}
    z = np.load(root / "seen.npz")
    seen = sp.csr_matrix(
        (np.ones(len(z["indices"])), z["indices"], z["indptr"]), shape=tuple(z["shape"])
    )
    cf_weights = cf_scores = None
    if (root / "backbone.safetensors").is_file():
        from safetensors.numpy import load_file as load_np

        cf_weights = load_np(str(root / "backbone.safetensors"))["weights"]
        train = sp.csr_matrix(
            (z["train_data"], z["train_indices"], z["train_indptr"]), shape=tuple(z["shape"])
        )
        cf_scores = np.asarray(train @ cf_weights, dtype=np.float32)
    n_items, id_dim = heads["item_emb.weight"].shape
    model = Recommender(
        encoder=encoder,
        n_users=heads["user_emb.weight"].shape[0],
        n_items=n_items,
        id_dim=id_dim,
        alpha=spec.fusion.alpha,
        temperature=spec.loss.temperature,
        pooling=spec.model.pooling,
        item_logpop=heads["logpop"].numpy(),
        cf_weights=cf_weights,
        cf_scores=cf_scores,
    )
    missing, unexpected = model.load_state_dict(heads, strict=False)
    if unexpected or any(not k.startswith("encoder.") for k in missing):
        raise ExportError(
            f"{root / 'heads.safetensors'}: does not match the model (missing {missing[:3]}, unexpected {unexpected[:3]})"
        )
    model.eval()
    return ExportedRecommender(root, manifest, spec, model, tokenizer, catalog, seen)


def verify_export(path: str | Path, *, atol: float = 1e-4) -> dict[str, Any]:
    """Re-train the exported config with its seed and compare with the recorded metrics.

    Writes the outcome into ``metrics.json`` (and re-seals the manifest). Returns it.
    """
    import yaml

    from moo_search.trial import run_trial

    root = Path(path)
    _verify_manifest(root)
    spec = spec_from_dict(yaml.safe_load((root / "config.yaml").read_text()))
    recorded = json.loads((root / "metrics.json").read_text())
    result = run_trial(spec)
    diffs: dict[str, float] = {}
    for part in ("val", "test"):
        for k, v in recorded["metrics"][part].items():
            new = result.metrics[part].get(k)
            if v is not None and new is not None and math.isfinite(new):
                diffs[f"{part}/{k}"] = abs(float(new) - float(v))
    worst = max(diffs, key=lambda k: diffs[k]) if diffs else None
    outcome = {
        "reproduced": all(d <= atol for d in diffs.values()),
        "tolerance_abs": atol,
        "max_abs_diff": diffs[worst] if worst else 0.0,
        "worst_metric": worst,
        "metrics_checked": len(diffs),
        "rerun_metrics": result.metrics,
        "checked": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    recorded["verification"] = outcome
    _write_json(root / "metrics.json", recorded)
    manifest = json.loads((root / MANIFEST).read_text())
    _seal(root, manifest)
    return outcome
