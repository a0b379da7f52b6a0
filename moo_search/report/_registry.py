"""The figure registry: one entry per figure of the dashboard, which drives both the Python
build and the page (its section, title and empty state)."""

from __future__ import annotations

import html
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from moo_search.registry import Registry
from moo_search.report._data import StudyData
from moo_search.report._figures import hv_history, importance, parallel, val_vs_test
from moo_search.report._fronts import front_3d, pareto_2d, pareto_matrix

__all__ = ["FAILED", "FIGURES", "Figure", "figure_sections", "figures"]

logger = logging.getLogger("moo_search")


@dataclass(frozen=True)
class Figure:
    """One figure of the page: the registry below drives both the Python build and the page
    (its section, its title, what it says when there is nothing to draw).

    Attributes:
        id: The element id the figure is drawn into.
        build: StudyData -> plotly figure dict, or None when there is nothing to show.
        empty: The text shown instead of a figure that was not built.
        half: Drawn at half width, beside the next half-width figure.
        note: A line of explanation under the title.
        controls: Id of a controls row above the plot (filled by the page's script).
        eager: Drawn at load; the others are drawn when they come near the viewport.
    """

    id: str
    title: str
    build: Callable[[StudyData], dict[str, Any] | None]
    empty: str = "Nothing to show yet: no complete trials with the data this view needs."
    half: bool = False
    note: str = ""
    controls: str | None = None
    eager: bool = False


def _front(data: StudyData) -> dict[str, Any] | None:
    if data.complete.empty:
        return None
    if len(data.metrics) == 2:
        return pareto_2d(data)
    return pareto_matrix(data) if len(data.metrics) > 2 else None


FIGURES: Registry[Figure] = Registry(
    "figure", field="figures", entry="moo_search.report._registry:Figure"
)
"""Every figure of the dashboard by element id, in page order (the first sits above the
workbench); a plugin's figure (``FIGURES.register("fig-mine", Figure(...))``) comes last."""

for _figure in [
    Figure(
        "fig-front",
        "Pareto front",
        _front,
        note="Blue: non-dominated feasible trials · grey: dominated · red ×: infeasible "
        "(violates a constraint) · green ★: baselines · orange ◇: reference front (every "
        "baseline through the same inference knobs). Click a point to inspect it.",
        eager=True,
    ),
    Figure(
        "fig-3d",
        "Three objectives",
        front_3d,
        empty="Needs at least three objectives.",
        controls="axes-3d",
    ),
    Figure("fig-parallel", "Parallel coordinates", parallel),
    Figure("fig-hv", "Hypervolume history", hv_history, half=True),
    Figure("fig-importance", "Parameter importance", importance, half=True),
    Figure("fig-valtest", "Validation vs test", val_vs_test),
]:
    FIGURES.register(_figure.id, _figure)


def figures(data: StudyData) -> dict[str, dict[str, Any]]:
    """Every figure the page shows, by element id (figures with nothing to show are left out).
    A figure that raises, or builds something other than a plotly figure dict, costs that
    figure, not the page: it is left out, with why in :data:`FAILED` (the page says it) and
    one warning naming it."""
    FAILED.clear()
    out: dict[str, dict[str, Any]] = {}
    for _, f in FIGURES.items():
        try:
            built = f.build(data)
            if built is not None and hasattr(built, "to_plotly_json"):
                built = built.to_plotly_json()  # a plotly.graph_objects.Figure
            if built is not None and not isinstance(built, dict):
                raise TypeError(f"built a {type(built).__name__}, not a plotly figure dict")
        except Exception as e:
            first = str(e).splitlines()[0] if str(e) else ""
            FAILED[f.id] = f"This figure failed to build ({type(e).__name__}: {first})."
            logger.warning(
                "report: figure %r failed (%s: %s); the page goes on", f.id, type(e).__name__, first
            )
            continue
        if built is not None:
            out[f.id] = built
    return out


FAILED: dict[str, str] = {}
"""The figures of the last :func:`figures` call that failed: element id -> what the page
shows in their place."""


def figure_sections(figs: list[Figure]) -> str:
    """The page's ``<section>`` of each figure (two half-width ones share a row)."""

    def section(f: Figure) -> str:
        note = f'\n    <div class="note">{html.escape(f.note)}</div>' if f.note else ""
        controls = f'\n    <div class="controls" id="{f.controls}"></div>' if f.controls else ""
        return (
            f'  <section id="sec-{f.id.removeprefix("fig-")}">\n    <h2>{html.escape(f.title)}</h2>'
            f'{note}{controls}\n    <div id="{f.id}"></div>\n  </section>'
        )

    out: list[str] = []
    i = 0
    while i < len(figs):
        if figs[i].half and i + 1 < len(figs) and figs[i + 1].half:
            out.append(
                f'  <div class="grid2">\n{section(figs[i])}\n{section(figs[i + 1])}\n  </div>'
            )
            i += 2
        else:
            out.append(section(figs[i]))
            i += 1
    return "\n".join(out)
