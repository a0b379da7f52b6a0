"""What each ``moo-search`` subcommand does (the parser is in ``moo_search.cli``)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Sequence
from typing import Any

from moo_search.errors import MooSearchError

__all__ = [
    "cmd_baselines",
    "cmd_data",
    "cmd_export",
    "cmd_list",
    "cmd_report",
    "cmd_run",
    "cmd_trial",
    "cmd_worker",
]

TABLE_METRICS = ("precision@10", "recall@10", "ndcg@10", "ild@10", "novelty@10", "coverage@10")


def _table(rows: list[tuple[str, dict[str, float]]], metrics: Sequence[str]) -> str:
    name_w = max([len("model")] + [len(r[0]) for r in rows])
    head = "model".ljust(name_w) + "".join(f"{m:>14}" for m in metrics)
    lines = [head, "-" * len(head)]
    for name, vals in rows:
        cells = "".join(
            f"{vals[m]:>14.4f}" if m in vals and vals[m] == vals[m] else f"{'-':>14}"
            for m in metrics
        )
        lines.append(name.ljust(name_w) + cells)
    return "\n".join(lines)


COLD_TABLE_METRICS = ("cold_item/recall@10", "cold_item/ndcg@10", "mixed/new_share@10")
"""Columns added under the item-cold protocol (new items ranked alone, and in the catalog)."""


def _metric_columns(spec: Any) -> tuple[str, ...]:
    """The table's metric columns at the spec's ``eval.k`` (and the largest K its objectives
    ask of the ``cold_item/`` slice)."""
    k = spec.eval.k
    cols = [m.replace("@10", f"@{k}") for m in TABLE_METRICS]
    if spec.data.split.cold_items > 0:
        cold_k = max([k, *(kk for kk in spec.requested_ks())])
        cols += [m.replace("@10", f"@{cold_k}") for m in COLD_TABLE_METRICS]
    # and every other objective (the business tasks' metrics, a slice, a cut-off)
    cols += [o.metric for o in spec.objectives if o.metric not in cols and "/" not in o.metric]
    return tuple(cols)


# --------------------------------------------------------------------------- commands


def cmd_data(args: argparse.Namespace) -> int:
    from moo_search.recommender.config import DataConfig
    from moo_search.recommender.data import fetch_dataset, load_dataset
    from moo_search.recommender.data.sources import MOVIE_OVERVIEWS

    if args.action == "fetch":
        path = (
            MOVIE_OVERVIEWS.fetch()
            if args.name == MOVIE_OVERVIEWS.name
            else fetch_dataset(args.name)
        )
        print(f"{args.name}: ready in {path}")
        return 0
    if args.name == MOVIE_OVERVIEWS.name:
        return _overview_info(args)
    t0 = time.perf_counter()
    ds = load_dataset(DataConfig(dataset=args.name))
    info = ds.info()
    info["load_seconds"] = round(time.perf_counter() - t0, 2)
    if ds.notes:
        info["notes"] = list(ds.notes)
    if MOVIE_OVERVIEWS.is_cached() and args.name.startswith("movielens"):
        from moo_search.recommender.data import overview_table
        from moo_search.recommender.data.overviews import coverage

        info["overviews"] = coverage(ds, overview_table()).to_dict()
    if args.json:
        print(json.dumps(info, indent=2, sort_keys=True))
        return 0
    for line in ds.notes:
        print(line)
    print(f"dataset       {info['dataset']}")
    print(f"users         {info['users']:,}")
    print(f"items         {info['items']:,}")
    print(f"interactions  {info['interactions']:,}")
    print(f"sparsity      {info['sparsity']:.4%}")
    print(f"genres        {info['genres']}")
    dist = info["rating_distribution"]
    assert isinstance(dist, dict)
    print("ratings       " + "  ".join(f"{k}: {v:,}" for k, v in dist.items()))
    ov = info.get("overviews")
    if isinstance(ov, dict):
        share = ov["matched"] / max(ov["items"], 1)
        print(
            f"overviews     {ov['matched']:,} of {ov['items']:,} items ({share:.1%}), "
            f"{ov['ratings_share']:.1%} of the ratings; most-rated unmatched: "
            + "; ".join(ov["unmatched_sample"][:5])
        )
    elif args.name.startswith("movielens"):
        print("overviews     not fetched (`moo-search data fetch movie-overviews`)")
    print(f"loaded in     {info['load_seconds']} s")
    return 0


def _overview_info(args: argparse.Namespace) -> int:
    """The overview table, and how much of each cached MovieLens it covers."""
    from moo_search.recommender.config import DataConfig
    from moo_search.recommender.data import load_dataset, overview_table
    from moo_search.recommender.data.overviews import coverage
    from moo_search.recommender.registries import DATASETS

    table = overview_table()
    out: dict[str, Any] = {
        "movies": len(table),
        "with_overview": int((table["overview"] != "").sum()),
    }
    for name in ("movielens-100k", "movielens-1m"):
        src = DATASETS.get(name)
        if src.is_cached is not None and src.is_cached():
            out[name] = coverage(load_dataset(DataConfig(dataset=name)), table).to_dict()
    if args.json:
        print(json.dumps(out, indent=2, sort_keys=True))
        return 0
    print(f"movies        {out['movies']:,} ({out['with_overview']:,} with an overview)")
    for name in ("movielens-100k", "movielens-1m"):
        if name in out:
            c = out[name]
            print(
                f"{name:13s} {c['matched']:,} of {c['items']:,} items "
                f"({c['matched'] / max(c['items'], 1):.1%}), {c['ratings_share']:.1%} of the "
                f"ratings; most-rated unmatched: {'; '.join(c['unmatched_sample'][:5])}"
            )
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    """What is registered: the names a spec may use for each extension point."""
    from moo_search import registry
    from moo_search.recommender import registries

    kinds = {
        "datasets": registries.DATASETS,
        "adapters": registries.ADAPTERS,
        "backbones": registries.BACKBONES,
        "drivers": registry.DRIVERS,
        "problems": registry.PROBLEMS,
        "objectives": registry.OBJECTIVES,
        "metrics": registries.METRICS,
    }
    for kind, reg in kinds.items():
        if args.kind and kind != args.kind:
            continue
        names = reg.names()
        if kind == "drivers":
            names = [f"{n} ({', '.join(reg.get(n).algorithms.names())})" for n in names]
        if kind == "metrics":
            names = [f"{n}@K" if reg.get(n).at_k else n for n in names]
        print(f"{kind:10s} {reg.field:18s} {', '.join(names)}")
    return 0


def _recommender(spec: Any) -> bool:
    """Whether the spec is a study of the default objective (the recommender)."""
    from moo_search.recommender.spec import RecommenderSpec

    return isinstance(spec, RecommenderSpec)


def _ensure_data(spec: Any) -> None:
    """Fetch the dataset the default trial reads (a custom objective reads none)."""
    from moo_search.recommender.data import ensure_dataset

    if _recommender(spec):
        ensure_dataset(spec.data)


def cmd_baselines(args: argparse.Namespace) -> int:
    from moo_search.recommender.baselines.ranking import BaselineContext, evaluate_baselines
    from moo_search.recommender.prepare import prepare_data
    from moo_search.recommender.spec import load_recommender_spec

    spec = load_recommender_spec(args.spec, args.set, command="baselines")
    _ensure_data(spec)
    data = prepare_data(spec)
    ds = data.ds
    ctx = BaselineContext.of(spec, data)
    res = evaluate_baselines(ctx)
    cols = _metric_columns(spec)
    if args.json:
        print(json.dumps(res, indent=2, sort_keys=True))
        return 0
    for part in ("val", "test"):
        print(f"\n{ds.name} · {part} ({spec.data.split.method} split)")
        print(_table([(n, r.get(part, {})) for n, r in res.items()], (*cols, "ctr_auc")))
    secs = {n: r.get("val", {}).get("cost/seconds") for n, r in res.items()}
    print("\nseconds to fit and score: " + ", ".join(f"{n} {v:.1f}" for n, v in secs.items() if v))
    rss = {n: r.get("val", {}).get("cost/peak_rss_mb") for n, r in res.items()}
    print("peak RSS meanwhile (MiB): " + ", ".join(f"{n} {v:.0f}" for n, v in rss.items() if v))
    for name, chose in ctx.tuned.items():
        shown = {k: v for k, v in chose.items() if k != "val"}
        print(f"{name} chose on validation: {shown}")
    return 0


def cmd_trial(args: argparse.Namespace) -> int:
    from moo_search.recommender.baselines.ranking import BaselineContext, evaluate_baselines
    from moo_search.recommender.spec import load_recommender_spec
    from moo_search.recommender.trial import prepare_data, run_trial

    spec = load_recommender_spec(args.spec, args.set, command="trial")
    _ensure_data(spec)
    print(
        f"trial: {spec.adapter.type} r={spec.adapter.r} on {spec.model.name_or_path}, "
        f"{spec.data.dataset}, {spec.train.max_steps} steps",
        file=sys.stderr,
    )
    result = run_trial(spec, artifact_dir=args.artifacts)
    rows: dict[str, list[tuple[str, dict[str, float]]]] = {"val": [], "test": []}
    if not args.no_baselines:
        data = prepare_data(spec)  # the trial's own cached dataset and split
        for name, res in evaluate_baselines(BaselineContext.of(spec, data)).items():
            for part in rows:
                rows[part].append((name, res[part]))
    if args.json:
        print(
            json.dumps({"metrics": result.metrics, "cost": result.cost}, indent=2, sort_keys=True)
        )
        return 0
    cols = (*_metric_columns(spec), "ctr_auc")
    for part in ("val", "test"):
        print(f"\n{part}")
        print(_table([("trial", result.metrics[part]), *rows[part]], cols))
    c = result.cost
    print(
        f"\ncost: {c['seconds']:.1f}s wall ({c['train_seconds']:.1f}s training), "
        f"{int(c['train_tokens']):,} training tokens, {int(c['trainable_params']):,} trainable "
        f"parameters, peak memory {c['peak_mem_mb']:.0f} MB"
    )
    if result.artifact_dir:
        print(f"artifacts: {result.artifact_dir}")
    return 0


def _print_progress(prog: Any) -> None:
    print(prog.line(), file=sys.stderr, flush=True)


def _mlflow_mirror(uri: str | None, study_name: str, storage: str) -> Any:
    """The study's mirror in MLflow (``run --mlflow URI`` or the spec's ``mlflow``), or None."""
    if not uri:
        return None
    from moo_search.redact import redact_url
    from moo_search.study._mlflow import MlflowMirror

    print(f"logging trials to MLflow at {redact_url(uri)}", file=sys.stderr)
    return MlflowMirror(uri, study_name, storage)


def cmd_run(args: argparse.Namespace) -> int:
    from moo_search.drivers import run_study
    from moo_search.redact import redact_url
    from moo_search.spec import load_spec

    spec = load_spec(args.spec, args.set)
    _ensure_data(spec)
    n = args.n_trials or spec.budget.n_trials
    url = args.storage or spec.storage_url
    print(
        f"study {args.study_name or spec.name!r}: {spec.driver.backend} {spec.driver.algorithm}, "
        f"{n} trials, storage {redact_url(url)}",
        file=sys.stderr,
    )
    mirror = _mlflow_mirror(args.mlflow or spec.mlflow, args.study_name or spec.name, url)

    def progress(prog: Any) -> None:
        _print_progress(prog)
        if mirror is not None:
            mirror.maybe_sync()

    try:
        study = run_study(
            spec,
            n_trials=args.n_trials,
            storage=args.storage,
            study_name=args.study_name,
            workers=args.workers,
            on_progress=progress,
        )
    finally:
        if mirror is not None:  # what finished is logged, also after Ctrl-C or a failure
            mirror.close()
    data = _build_report(spec, url, study) if not args.no_report else None
    _print_summary(study, spec, url, data)
    return 0


def _build_report(spec: Any, url: str, study: Any) -> Any:
    """The dashboard at the end of a run; its tidy data (None when it could not be built)."""
    from moo_search.report import write_study_report

    try:
        return write_study_report(spec, study, storage=url)[1]
    except MooSearchError as e:
        logging.getLogger("moo_search").warning("could not build the report: %s", e)
        return None


def _print_summary(study: Any, spec: Any, url: str, data: Any = None) -> None:
    from optuna.trial import TrialState

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    failed = study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
    from moo_search.study import is_derived, study_home

    variants = sum(is_derived(t) for t in complete)
    extra = f" (+{variants} inference-only variants)" if variants else ""
    print(
        f"\n{len(complete) - variants} complete{extra}, {len(failed)} failed trials in study "
        f"{study.study_name!r}"
    )
    if complete:
        names = [o.metric for o in spec.objectives]
        rows = [(f"trial {t.number}", dict(zip(names, t.values))) for t in study.best_trials]
        print(f"Pareto front ({len(rows)} trials, validation):")
        print(_table(rows, names))
    index = study_home(spec, url, study) / "index.html"
    if complete and _recommender(spec):
        from moo_search.report import collect

        for line in (data or collect(study)).comparison_lines():  # the report's, if built
            print(line)
    if index.is_file():
        print(f"report: {index}")


def cmd_worker(args: argparse.Namespace) -> int:
    from moo_search.drivers import run_worker
    from moo_search.spec import load_spec

    spec = load_spec(args.spec, args.set)
    _ensure_data(spec)
    if args.workers is None:
        from moo_search.drivers._run import _gpu_count

        args.workers = max(1, _gpu_count())
    if args.workers > 1:
        from moo_search.drivers import run_workers

        run_workers(
            spec,
            storage=args.storage,
            workers=args.workers,
            study_name=args.study_name,
            n_trials=args.n_trials,
            on_progress=_print_progress,
        )
        return 0
    run_worker(
        spec,
        storage=args.storage,
        study_name=args.study_name,
        n_trials=args.n_trials,
        on_progress=_print_progress,
    )
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from moo_search.report import write_report

    path, data = write_report(args.target, study_name=args.study_name, out=args.out)
    for line in data.comparison_lines():
        print(line)
    print(f"report: {path}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from moo_search.errors import ExportError
    from moo_search.recommender.export import export_trial, verify_export

    if (args.trial is None) == (args.select is None):
        raise ExportError(
            "choose exactly one of --trial N and --select knee|compromise|best:METRIC"
        )
    if args.tracking_uri and not args.register:
        raise ExportError("--tracking-uri is where --register NAME logs to; pass --register too")
    out = export_trial(
        args.target,
        out=args.out,
        trial=args.trial,
        select=args.select,
        where=args.where,
        study_name=args.study_name,
        force=args.force,
    )
    manifest = json.loads((out / "manifest.json").read_text())
    print(
        f"exported trial {manifest['study']['trial']} of study {manifest['study']['name']!r} to {out}"
    )
    print(f"  {len(manifest['files'])} files, base model {manifest['base_model']['id']}")
    if args.verify:
        print("verifying: re-training the exported config with its seed ...", file=sys.stderr)
        res = verify_export(out)
        verdict = "reproduced" if res["reproduced"] else "NOT reproduced"
        print(
            f"  {verdict}: max |difference| {res['max_abs_diff']:.2e} over {res['metrics_checked']} metrics "
            f"(tolerance {res['tolerance_abs']:.0e}, worst: {res['worst_metric']})"
        )
        if not res["reproduced"]:
            return 1
    if args.register:
        from moo_search.recommender.export import register_bundle

        v = register_bundle(out, args.register, args.tracking_uri)
        print(f"  registered as models:/{v.name}/{v.version}")
    return 0
