"""Choosing a trial of a study: a pure choice over the front's rows (the knee, the best by one
metric, a compromise, under ``--where`` filters). What is then written for the chosen trial is the
objective's (:meth:`moo_search.objective.Objective.export`): by default a sealed selection
bundle (:func:`export_selection`); the recommender's bundle: :mod:`moo_search.recommender.export`."""

from moo_search.export._select import Selection, select_row, select_trial
from moo_search.export._selection import (
    SELECTION,
    ExportRequest,
    export_selection,
    study_objective,
)

__all__ = [
    "SELECTION",
    "ExportRequest",
    "Selection",
    "export_selection",
    "select_row",
    "select_trial",
    "study_objective",
]
