"""The recommender's subcommands: ``data`` (fetch, describe), ``baselines`` and ``trial``."""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from typing import Any

from moo_search.cli._commands import _metric_columns, _table

__all__ = ["cmd_baselines", "cmd_data", "cmd_trial", "require_recommender"]


def _json(obj: Any, **kw: Any) -> str:
    """JSON that any parser reads: a NaN or infinite number (a metric a slice could not
    define) is written as null, not as the bare NaN json.dumps writes."""

    def clean(v: Any) -> Any:
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, list | tuple):
            return [clean(x) for x in v]
        return v

    return json.dumps(clean(obj), allow_nan=False, **kw)


def cmd_data(args: argparse.Namespace) -> int:
    require_recommender("data")
    _check_data_name(args.name)
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
        print(_json(info, indent=2, sort_keys=True))
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
        print(_json(out, indent=2, sort_keys=True))
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


def require_recommender(command: str) -> None:
    """Refuse a recommender command where the recommender is not installed (the engine alone:
    ``pip install moo-search``), naming what is missing and what to install."""
    from moo_search.errors import MissingLibraries, SpecError
    from moo_search.registry import OBJECTIVES
    from moo_search.spec import DEFAULT_OBJECTIVE

    try:
        OBJECTIVES.get(DEFAULT_OBJECTIVE)
    except (MissingLibraries, SpecError) as e:
        raise MissingLibraries(
            f"`moo-search {command}` runs the language-model recommender: {e}"
        ) from None


def _check_data_name(name: str) -> None:
    """``data fetch|info NAME``: a dataset the cache can fetch, or movie-overviews."""
    import difflib

    from moo_search.errors import SpecError
    from moo_search.recommender.data.sources import MOVIE_OVERVIEWS
    from moo_search.recommender.registries import DATASETS

    names = [n for n, src in DATASETS.items() if not src.needs_path] + [MOVIE_OVERVIEWS.name]
    if name not in names:
        hint = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
        raise SpecError(
            f"data: {name!r} is not a dataset the cache fetches"
            + (f"; did you mean {hint[0]!r}?" if hint else "")
            + f" (choices: {', '.join(names)})"
        )


def cmd_baselines(args: argparse.Namespace) -> int:
    require_recommender("baselines")
    from moo_search.recommender.baselines.ranking import BaselineContext, evaluate_baselines
    from moo_search.recommender.data import ensure_dataset
    from moo_search.recommender.prepare import prepare_data
    from moo_search.recommender.spec import load_recommender_spec

    spec = load_recommender_spec(args.spec, args.set, command="baselines")
    ensure_dataset(spec.data)
    data = prepare_data(spec)
    ds = data.ds
    ctx = BaselineContext.of(spec, data)
    res = evaluate_baselines(ctx)
    cols = _metric_columns(spec)
    if args.json:
        print(_json(res, indent=2, sort_keys=True))
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
    require_recommender("trial")
    from moo_search.recommender.baselines.ranking import BaselineContext, evaluate_baselines
    from moo_search.recommender.data import ensure_dataset
    from moo_search.recommender.prepare import prepare_data
    from moo_search.recommender.spec import load_recommender_spec
    from moo_search.recommender.trial import run_trial

    spec = load_recommender_spec(args.spec, args.set, command="trial")
    ensure_dataset(spec.data)
    print(
        f"trial: {spec.adapter.type}{f' r={spec.adapter.r}' if spec.adapter.r else ''} on "
        f"{spec.model.name_or_path}, "
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
        print(_json({"metrics": result.metrics, "cost": result.cost}, indent=2, sort_keys=True))
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
