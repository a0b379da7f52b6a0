"""What the engine writes for a chosen trial of any objective: a sealed selection bundle
(``selection.json``: the trial's params, objective values and metrics, the rule that chose it
and the front it was chosen from; ``manifest.json`` with every file's hash).

An objective that keeps a model writes more (the recommender's bundle:
:mod:`moo_search.recommender.export`) through :meth:`moo_search.objective.Objective.export`.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from moo_search.export._files import (
    FORMAT_VERSION,
    check_not_inside,
    check_out,
    seal,
    study_paths,
    swap_into_place,
    write_json,
)
from moo_search.export._select import select_trial

__all__ = ["SELECTION", "ExportRequest", "export_selection", "study_objective"]

SELECTION = "selection.json"


@dataclass(frozen=True, kw_only=True)
class ExportRequest:
    """``moo-search export``'s choice of a trial and where its bundle goes."""

    target: str | Path  # the study: its directory, a .db file or a storage URL
    out: Path
    trial: int | None = None
    select: str | None = None  # knee, compromise, best:METRIC
    where: list[str] = field(default_factory=list)
    study_name: str | None = None
    force: bool = False  # replace a previous bundle at ``out``


def study_objective(study: Any) -> Any:
    """The :class:`~moo_search.objective.Objective` a stored study ran."""
    from moo_search.objective import objective_for
    from moo_search.spec import DEFAULT_OBJECTIVE
    from moo_search.study import STUDY_ATTR

    spec = study.user_attrs.get(STUDY_ATTR.SPEC) or {}
    return objective_for(str(spec.get("objective") or DEFAULT_OBJECTIVE))


def export_selection(request: ExportRequest) -> Path:
    """Write the selection bundle of the trial ``request`` chooses; ``out`` is replaced only
    whole (a failure leaves it as it was)."""
    from moo_search.study import ATTR, STUDY_ATTR, load_study

    final = Path(request.out)
    check_out(final, force=request.force)
    check_not_inside(final, [Path(p) for p in study_paths(request.target)])
    study = load_study(request.target, request.study_name)
    sel = select_trial(study, trial=request.trial, select=request.select, where=request.where)
    t = sel.trial
    objectives = study.user_attrs.get(STUDY_ATTR.OBJECTIVES) or []
    names = [o.get("metric", f"objective {i}") for i, o in enumerate(objectives)]
    selection = {
        "study": study.study_name,
        "trial": t.number,
        "rule": sel.rule,
        "where": sel.where,
        "params": t.params,
        "values": dict(zip(names or [str(i) for i in range(len(t.values))], t.values)),
        "metrics": t.user_attrs.get(ATTR.METRICS) or {},
        "front": sel.front,
    }
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.export-", dir=final.parent))
    try:
        write_json(tmp / SELECTION, selection)
        seal(
            tmp,
            {
                "format_version": FORMAT_VERSION,
                "kind": "selection",
                "study": {"name": study.study_name, "trial": t.number, "rule": sel.rule},
            },
        )
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    swap_into_place(tmp, final)
    return final
