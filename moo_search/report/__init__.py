"""The study dashboard: storage -> tidy data -> plotly figures -> one self-contained HTML file.

``build_report(target)`` reads only the storage (and nothing from the network); the page
embeds plotly.js and opens offline from disk.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import tempfile
from pathlib import Path
from typing import Any

from moo_search.report._data import StudyData, collect
from moo_search.report._decide import param_importance
from moo_search.report._registry import FIGURES, Figure

__all__ = [
    "FIGURES",
    "Figure",
    "StudyData",
    "build_report",
    "build_study_report",
    "collect",
    "param_importance",
    "write_report",
    "write_study_report",
]

logger = logging.getLogger("moo_search")


def build_report(
    target: str | Path | Any,
    *,
    study_name: str | None = None,
    out: str | Path | None = None,
) -> Path:
    """Write the HTML dashboard of a study and return its path.

    Args:
        target: A study directory (``reports/<study>``), a ``.db`` file, a storage URL, or an
            ``optuna.Study``.
        study_name: Needed when the storage holds several studies.
        out: Output file (default: ``index.html`` in the study directory, else the cwd).
    """
    return write_report(target, study_name=study_name, out=out)[0]


def build_study_report(spec: Any, study: Any, *, storage: str | None = None) -> Path:
    """The dashboard of a study run from ``spec``, written beside the study's artifacts
    (``study_home``), as ``moo-search run`` does at the end.

    Args:
        spec: The study's :class:`~moo_search.spec.StudySpec`.
        study: The ``optuna.Study`` (``run_study``'s return value).
        storage: The storage URL it was run with (default: the spec's).
    """
    return write_study_report(spec, study, storage=storage)[0]


def write_study_report(
    spec: Any, study: Any, *, storage: str | None = None
) -> tuple[Path, StudyData]:
    """Like :func:`build_study_report`, and also return the study's tidy data."""
    from moo_search.study import study_home

    url = storage or spec.storage_url
    # the default SQLite lives in the study directory: name the directory (shorter commands)
    target = str(spec.study_dir) if url == spec.storage_url and not spec.storage else url
    out = study_home(spec, url, study) / "index.html"
    return write_report(target, study_name=study.study_name, out=out)


def write_report(
    target: str | Path | Any,
    *,
    study_name: str | None = None,
    out: str | Path | None = None,
) -> tuple[Path, StudyData]:
    """Like :func:`build_report`, and also return the study's tidy data (for summaries).

    Args:
        target: A study directory (``reports/<study>``), a ``.db`` file, a storage URL, or an
            ``optuna.Study``.
        study_name: Needed when the storage holds several studies.
        out: Output file (default: ``index.html`` in the study directory, else the cwd).
    """
    from plotly.offline import get_plotlyjs

    from moo_search.redact import redact_url
    from moo_search.report._html import render_page
    from moo_search.report._registry import figures
    from moo_search.study import load_study, resolve_storage_arg

    if hasattr(target, "get_trials"):
        study, study_dir, shown = target, None, "STUDY"
    else:
        url, study_dir = resolve_storage_arg(str(target))
        study = load_study(str(target), study_name)
        # what the page's export command names: the directory, or the (redacted) URL and study
        shown = (
            shlex.quote(str(study_dir))
            if study_dir is not None
            else f"{shlex.quote(redact_url(url))} --study-name {shlex.quote(study.study_name)}"
        )
        if study_dir is not None and len(_study_names(study)) > 1:  # pasted, it must still work
            shown += f" --study-name {shlex.quote(study.study_name)}"
    data = collect(study, study_target=shown)
    figs = figures(data)
    html = render_page(data, figs, get_plotlyjs())
    if out is None:
        out = (Path(study_dir) if study_dir is not None else Path.cwd()) / "index.html"
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".index-", suffix=".html", dir=out.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(html)
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    except BaseException:  # a full disk, --out naming a directory: no temporary file is left
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    logger.info("report written to %s", out)
    return out, data


def _study_names(study: Any) -> list[str]:
    """Every study name in ``study``'s storage."""
    import optuna

    return list(optuna.get_all_study_names(study._storage))
