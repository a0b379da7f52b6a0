"""Choosing a trial of a study: a pure choice over the front's rows (the knee, the best by one
metric, a compromise, under ``--where`` filters). What is then written for the chosen trial is the
objective's (the recommender's bundle: :mod:`moo_search.recommender.export`)."""

from moo_search.export._select import Selection, select_row, select_trial

__all__ = ["Selection", "select_row", "select_trial"]
