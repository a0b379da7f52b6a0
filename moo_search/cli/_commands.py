"""What each ``moo-search`` subcommand does (the parser is in ``moo_search.cli``)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from moo_search.errors import MooSearchError

__all__ = [
    "cmd_export",
    "cmd_report",
    "cmd_run",
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


def _print_progress(prog: Any) -> None:
    print(prog.line(), file=sys.stderr, flush=True)


def _mlflow_mirror(args: argparse.Namespace, spec: Any, storage: str) -> Any:
    """The study's mirror in MLflow (``run --mlflow URI`` or the spec's ``mlflow``), or None;
    a URI MLflow cannot use is a SpecError naming where it came from."""
    uri, flag = (args.mlflow, "--mlflow") if args.mlflow else (spec.mlflow, "mlflow (the spec's)")
    if not uri:
        return None
    from moo_search.study._mlflow import MlflowMirror
    from moo_search.study._tracking import scrub

    mirror = MlflowMirror(uri, args.study_name or spec.name, storage, flag=flag)
    print(f"logging trials to MLflow at {scrub(mirror.uri)}", file=sys.stderr)
    return mirror


def _prepare(spec: Any) -> None:
    """What the study's objective fetches before any trial (the recommender: its dataset)."""
    from moo_search.objective import objective_for

    objective_for(spec.objective).prepare(spec)


def cmd_run(args: argparse.Namespace) -> int:
    from moo_search.drivers import run_study
    from moo_search.redact import redact_url
    from moo_search.spec import load_spec

    spec = load_spec(args.spec, args.set)
    _prepare(spec)
    n = args.n_trials or spec.budget.n_trials
    url = args.storage or spec.storage_url
    print(
        f"study {args.study_name or spec.name!r}: {spec.driver.backend} {spec.driver.algorithm}, "
        f"{n} trials, storage {redact_url(url)}",
        file=sys.stderr,
    )
    mirror = _mlflow_mirror(args, spec, url)

    def progress(prog: Any) -> None:
        _print_progress(prog)
        if mirror is not None:
            mirror.maybe_sync()

    interrupted = True
    try:
        study = run_study(
            spec,
            n_trials=args.n_trials,
            storage=args.storage,
            study_name=args.study_name,
            workers=args.workers,
            on_progress=progress,
        )
        interrupted = False
    finally:
        if mirror is not None:  # what finished is logged, also after Ctrl-C or a failure
            mirror.close(interrupted=interrupted)
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
    if complete:
        from moo_search.report import collect

        for line in (data or collect(study)).comparison_lines():  # the report's, if built
            print(line)
    if index.is_file():
        print(f"report: {index}")


def _wait_for_study(storage: str, name: str, seconds: float) -> None:
    """Block until study ``name`` exists in ``storage`` (a cluster's workers may start before
    the run that creates it), at most ``seconds``; then joining goes on as usual (and says
    so if the study is still missing)."""
    import optuna

    from moo_search.study._storage import open_storage

    deadline = time.monotonic() + seconds
    said = False
    while time.monotonic() < deadline:
        store = open_storage(storage, heartbeat_interval=None, grace_period=None)
        if name in optuna.study.get_all_study_names(storage=store):
            return
        if not said:
            print(f"waiting up to {seconds:g} s for study {name!r} to be created", file=sys.stderr)
            said = True
        time.sleep(2.0)


def cmd_worker(args: argparse.Namespace) -> int:
    from moo_search.drivers import run_worker
    from moo_search.spec import load_spec

    spec = load_spec(args.spec, args.set)
    _prepare(spec)
    if args.wait:
        _wait_for_study(args.storage, args.study_name or spec.name, args.wait)
    if args.workers is None:
        from moo_search.drivers._local import gpu_count

        args.workers = max(1, gpu_count())
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


def _register_target(args: argparse.Namespace) -> str | None:
    """``export --register NAME [--tracking-uri URI]`` checked before anything is exported:
    the name is not blank, the URI (or ``MLFLOW_TRACKING_URI``) is one MLflow can use."""
    import os

    from moo_search.errors import ExportError

    if args.register is None:
        if args.tracking_uri is not None:
            raise ExportError(
                "--tracking-uri is where --register NAME logs to; pass --register too"
            )
        return None
    if not args.register.strip():
        raise ExportError("--register: expected a model name (such as 'movies-ranker'), got ''")
    from moo_search.study._tracking import tracking_uri

    if args.tracking_uri is not None:
        return tracking_uri(args.tracking_uri, flag="--tracking-uri")
    env = os.environ.get("MLFLOW_TRACKING_URI")
    return tracking_uri(env, flag="MLFLOW_TRACKING_URI") if env else None


def cmd_export(args: argparse.Namespace) -> int:
    """Write the chosen trial's bundle: what the study's objective exports (the recommender:
    a sealed model bundle; any other: a sealed selection of params and values)."""
    from moo_search.errors import ExportError
    from moo_search.export import ExportRequest, export_selection, study_objective
    from moo_search.study import load_study

    if (args.trial is None) == (args.select is None):
        raise ExportError(
            "choose exactly one of --trial N and --select knee|compromise|best:METRIC"
        )
    tracking = _register_target(args)
    objective = study_objective(load_study(args.target, args.study_name))
    request = ExportRequest(
        target=args.target,
        out=Path(args.out),
        trial=args.trial,
        select=args.select,
        where=args.where,
        study_name=args.study_name,
        force=args.force,
    )
    if (args.verify or args.register) and not objective.exports_model:  # before any writing
        flag = "--verify" if args.verify else "--register"
        raise ExportError(
            f"{flag}: this study's objective exports a selection (its trial's params and "
            "values), not a model to re-train or register; drop the flag"
        )
    out = objective.export(request) if objective.exports_model else export_selection(request)
    manifest = json.loads((out / "manifest.json").read_text())
    print(
        f"exported trial {manifest['study']['trial']} of study {manifest['study']['name']!r} to {out}"
    )
    base = (manifest.get("base_model") or {}).get("id")
    n = len(manifest["files"])
    print(f"  {n} file{'s' if n != 1 else ''}" + (f", base model {base}" if base else ""))
    if args.verify:
        print("verifying: re-training the exported config with its seed ...", file=sys.stderr)
        res = objective.verify_export(out)
        verdict = "reproduced" if res["reproduced"] else "NOT reproduced"
        print(
            f"  {verdict}: max |difference| {res['max_abs_diff']:.2e} over {res['metrics_checked']} metrics "
            f"(tolerance {res['tolerance_abs']:.0e}, worst: {res['worst_metric']})"
        )
        if not res["reproduced"]:
            return 1
    if args.register:
        v = objective.register_export(out, args.register.strip(), tracking)
        print(f"  registered as models:/{v.name}/{v.version}")
    return 0


def cmd_storage_proxy(args: argparse.Namespace) -> int:
    """Serve ``args.url`` over gRPC until Ctrl-C or SIGTERM."""
    from moo_search.redact import redact_url
    from moo_search.study._storage import serve_storage_proxy

    print(
        f"storage proxy for {redact_url(args.url)} on {args.host}:{args.port}; workers pass "
        f"--storage grpc://{args.host}:{args.port} (Ctrl-C stops it)",
        file=sys.stderr,
        flush=True,
    )
    import contextlib

    with contextlib.suppress(KeyboardInterrupt):
        serve_storage_proxy(args.url, host=args.host, port=args.port)
    return 0
