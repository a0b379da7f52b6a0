"""The ``moo-search`` command: the parser and ``main``; the subcommands are in ``_commands``."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from moo_search.cli._commands import (
    cmd_export,
    cmd_report,
    cmd_run,
    cmd_storage_proxy,
    cmd_worker,
)
from moo_search.cli._list import cmd_list
from moo_search.cli._recommender import cmd_baselines, cmd_data, cmd_trial
from moo_search.errors import MooSearchError
from moo_search.interrupts import dump_stacks_on_sigusr1, interrupt_on_sigterm

__all__ = ["build_parser", "main"]

Subparsers = argparse._SubParsersAction  # what add_subparsers returns: a command per call


# --------------------------------------------------------------------------- parser


def _positive_int(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {n}")
    return n


def _with_spec(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("spec", help="Study spec (YAML).")
    sp.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="PATH=VALUE",
        help="Override a spec value by dotted path, typed like YAML (repeatable).",
    )


def _add_data(sub: Subparsers) -> None:
    d = sub.add_parser("data", help="Fetch datasets into the cache, or describe one.")
    d.add_argument(
        "action",
        choices=["fetch", "info"],
        help="fetch: download and verify into the cache; info: sizes and sparsity.",
    )
    d.add_argument(  # the names are checked by the command: the parser imports no recommender
        "name",
        help="The dataset (`moo-search list datasets`; or movie-overviews, the TMDB texts for "
        "MovieLens).",
    )
    d.add_argument("--json", action="store_true", help="Print info as JSON.")
    d.set_defaults(func=cmd_data)


def _add_list(sub: Subparsers) -> None:
    ls = sub.add_parser("list", help="What the spec may name: datasets, adapters, drivers, ...")
    ls.add_argument(
        "kind",
        nargs="?",
        help="Only this kind (families: a row per model family).",
        choices=[
            "datasets",
            "adapters",
            "backbones",
            "drivers",
            "problems",
            "objectives",
            "metrics",
            "families",
        ],
    )
    ls.set_defaults(func=cmd_list)


def _add_baselines(sub: Subparsers) -> None:
    b = sub.add_parser(
        "baselines",
        help="Random, MostPop, ItemKNN, BPR, ALS, EASE (SANSA on large catalogs), the content "
        "and the count baselines on the spec's data: metrics, fit seconds, peak memory.",
    )
    _with_spec(b)
    b.add_argument("--json", action="store_true", help="Print the metrics as JSON.")
    b.set_defaults(func=cmd_baselines)


def _add_run(sub: Subparsers) -> None:
    r = sub.add_parser("run", help="Create or resume a study and run it to its budget.")
    _with_spec(r)
    r.add_argument(
        "--n-trials",
        type=_positive_int,
        default=None,
        help="Budget of complete trials (spec: budget.n_trials).",
    )
    r.add_argument(
        "--storage", default=None, help="Optuna storage URL (default: SQLite in reports/<study>/)."
    )
    r.add_argument(
        "--mlflow",
        default=None,
        metavar="URI",
        help="Also log each trial as an MLflow run under one parent run (the spec's mlflow).",
    )
    r.add_argument("--study-name", default=None, help="Study name (default: the spec's name).")
    r.add_argument(
        "--workers",
        type=_positive_int,
        default=1,
        help="Local worker processes (one per GPU when several).",
    )
    r.add_argument(
        "--no-report", action="store_true", help="Do not build the HTML report at the end."
    )
    r.set_defaults(func=cmd_run)


def _add_worker(sub: Subparsers) -> None:
    w = sub.add_parser("worker", help="Join a running study from this host.")
    _with_spec(w)
    w.add_argument(
        "--storage", required=True, help="The study's storage URL (e.g. postgresql://...)."
    )
    w.add_argument("--study-name", default=None, help="Study name (default: the spec's name).")
    w.add_argument(
        "--workers",
        type=_positive_int,
        default=None,
        help="Processes on this host (default: one per visible GPU, else 1).",
    )
    w.add_argument(
        "--n-trials",
        type=_positive_int,
        default=None,
        help="Complete trials to work to (default: the budget of the run it joins).",
    )
    w.add_argument(
        "--wait",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="Wait up to SECONDS for the study to be created (a cluster's workers may start "
        "before the run that creates it).",
    )
    w.set_defaults(func=cmd_worker)


def _add_storage_proxy(sub: Subparsers) -> None:
    sp = sub.add_parser(
        "storage-proxy",
        help="Serve a study database over gRPC, so many workers share one connection pool "
        "(workers then pass --storage grpc://HOST:PORT).",
    )
    sp.add_argument("url", help="The database the studies live in (sqlite:///, postgresql://).")
    sp.add_argument("--port", type=_positive_int, default=13000, help="Port to serve on.")
    sp.add_argument(
        "--host", default="127.0.0.1", help="Address to bind (0.0.0.0: every interface)."
    )
    sp.set_defaults(func=cmd_storage_proxy)


def _add_report(sub: Subparsers) -> None:
    rp = sub.add_parser("report", help="(Re)build the HTML dashboard of a study.")
    rp.add_argument("target", help="Study directory (reports/<study>), .db file or storage URL.")
    rp.add_argument(
        "--study-name", default=None, help="Which study, where the storage holds several."
    )
    rp.add_argument(
        "--out", default=None, help="Output HTML file (default: <study dir>/index.html)."
    )
    rp.set_defaults(func=cmd_report)


def _add_export(sub: Subparsers) -> None:
    e = sub.add_parser(
        "export", help="Export a trial (adapter, config, metrics, manifest) for production."
    )
    e.add_argument("target", help="Study directory (reports/<study>), .db file or storage URL.")
    e.add_argument(
        "--study-name", default=None, help="Which study, where the storage holds several."
    )
    e.add_argument("--trial", type=int, default=None, help="Export this trial number.")
    e.add_argument(
        "--select",
        default=None,
        metavar="RULE",
        help="knee, compromise or best:METRIC (on the front).",
    )
    e.add_argument(
        "--where",
        action="append",
        default=[],
        metavar="COND",
        help='Filter the front first, e.g. "precision@10>=0.05" (repeatable).',
    )
    e.add_argument("--out", required=True, help="Bundle directory (must be empty unless --force).")
    e.add_argument(
        "--force", action="store_true", help="Replace the contents of a non-empty --out."
    )
    e.add_argument(
        "--verify", action="store_true", help="Re-train with the seed and compare the metrics."
    )
    e.add_argument(
        "--register",
        default=None,
        metavar="NAME",
        help="Also log the bundle to MLflow and register it as a new version of model NAME.",
    )
    e.add_argument(
        "--tracking-uri",
        default=None,
        metavar="URI",
        help="MLflow tracking URI for --register (default: MLFLOW_TRACKING_URI or ./mlruns).",
    )
    e.set_defaults(func=cmd_export)


def _add_trial(sub: Subparsers) -> None:
    t = sub.add_parser("trial", help="Run the spec's base config once and print its metrics.")
    _with_spec(t)
    t.add_argument(
        "--artifacts", default=None, metavar="DIR", help="Write adapter, heads, metrics here."
    )
    t.add_argument("--no-baselines", action="store_true", help="Skip the baseline rows.")
    t.add_argument("--json", action="store_true", help="Print metrics and cost as JSON.")
    t.set_defaults(func=cmd_trial)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="moo-search",
        description="Multi-objective Pareto search over PEFT fine-tunes of LM recommenders.",
    )
    p.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="More logging: -v adds warnings and failed trials' tracebacks, -vv debug.",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_data(sub)
    _add_list(sub)
    _add_baselines(sub)
    _add_run(sub)
    _add_worker(sub)
    _add_storage_proxy(sub)
    _add_report(sub)
    _add_export(sub)
    _add_trial(sub)
    return p


def _setup_logging(verbosity: int) -> None:
    level = logging.WARNING if verbosity == 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    lib = logging.getLogger("moo_search")
    lib.handlers[:] = [handler]
    lib.setLevel(level)
    import optuna  # its own handler and level: the logging module's setLevel is overridden

    # Failed trials are reported on our progress line with their reason; -v adds Optuna's
    # warnings (with the failing trial's traceback), -vv its info lines.
    optuna.logging.set_verbosity(
        optuna.logging.ERROR
        if verbosity == 0
        else optuna.logging.WARNING
        if verbosity == 1
        else optuna.logging.INFO
    )
    if verbosity < 2:
        for noisy in ("transformers", "peft"):
            logging.getLogger(noisy).setLevel(logging.ERROR)


def _root_cause(e: BaseException) -> BaseException:
    while e.__cause__ is not None or e.__context__ is not None:
        e = e.__cause__ or e.__context__  # type: ignore[assignment]
    return e


def _storage_failure(e: BaseException) -> bool:
    """The study's database failed (SQLAlchemy's errors, Optuna's wrapper of them), not our
    code: a message, not a traceback."""
    import optuna

    chain: list[BaseException] = [e]
    while chain[-1].__cause__ is not None or chain[-1].__context__ is not None:
        chain.append(chain[-1].__cause__ or chain[-1].__context__)  # type: ignore[arg-type]
    return any(
        type(x).__module__.startswith("sqlalchemy")
        or isinstance(x, optuna.exceptions.StorageInternalError)
        for x in chain
    )


def _os_error_lines(e: OSError) -> list[str]:
    """One file-system error as the CLI reports it: the path, what is wrong in plain words,
    and for the cache a hint (MOO_SEARCH_CACHE)."""
    import errno

    from moo_search.recommender.data.movielens import cache_dir

    what = e.filename or "a file"
    reason = {
        errno.ENOENT: "file not found",
        errno.EACCES: "permission denied",
        errno.EPERM: "permission denied",
        errno.EROFS: "read-only file system",
        errno.ENOSPC: "no space left on the device",
        errno.EEXIST: "a file is where a directory is needed",
        errno.ENOTDIR: "a file is where a directory is needed",
        errno.EISDIR: "is a directory (a file was expected)",
        errno.ENAMETOOLONG: "file name too long",
    }.get(e.errno or 0, (e.strerror or str(e)).lower())
    lines = [f"moo-search: error: {what}: {reason}"]
    if str(what).startswith(str(cache_dir())) and e.errno != errno.ENOENT:
        lines.append("moo-search: hint: MOO_SEARCH_CACHE picks another cache directory")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _setup_logging(args.verbose)
    interrupt_on_sigterm()  # SIGTERM stops a run as Ctrl-C does
    dump_stacks_on_sigusr1()  # kill -USR1 shows where a run is
    try:
        return int(args.func(args) or 0)
    except MooSearchError as e:
        print(f"moo-search: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print(
            "moo-search: interrupted; a running trial was marked failed. "
            "Run the same command again to resume.",
            file=sys.stderr,
        )
        return 130
    except OSError as e:  # a missing file, a full disk, a read-only mount, a file in the way
        for line in _os_error_lines(e):
            print(line, file=sys.stderr)
        return 2
    except Exception as e:
        if not _storage_failure(e):
            raise  # a bug: the traceback is the report
        # the database refused (read-only file, lost connection, full disk): not a bug of ours
        root = _root_cause(e)
        first = (str(getattr(root, "orig", None) or root).splitlines() or [type(root).__name__])[0]
        hint = (
            "; the study database is read-only (check the file's permissions and mount)"
            if "readonly" in first.replace("-", "").lower()
            else ""
        )
        print(f"moo-search: error: the study storage failed: {first}{hint}", file=sys.stderr)
        return 2
