"""Text rendering of items and users, the input of the language-model towers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from moo_search.recommender.data._dataset import Dataset

__all__ = ["render_item", "render_item_record", "render_items", "render_user", "render_users"]

_SKIP_USER_COLS = {"zip_code", "zip"}


def render_item(title: str, year: str, genres: list[str], extra: Sequence[str] = ()) -> str:
    """``Toy Story (1995) · Animation, Children's, Comedy`` (then any ``extra`` texts)."""
    head = f"{title} ({year})" if year else str(title)
    parts = [head, ", ".join(genres), *extra]
    return " · ".join(p for p in parts if p)


def render_items(ds: Dataset, fields: Sequence[str] = ("title", "genres")) -> list[str]:
    """One text per item from the ``data.item_text`` fields, in their order."""
    columns = ["title", "year", "genres", *(f for f in fields if f in ds.items.columns)]
    records = ds.items[list(dict.fromkeys(columns))].to_dict("records")
    return [
        render_item_record(r, fields, fallback=f"item {ds.item_ids[i]}")
        for i, r in enumerate(records)
    ]


def render_item_record(
    record: Mapping[str, Any], fields: Sequence[str], fallback: str = "item"
) -> str:
    """One item's text from its fields (``title``, ``year``, ``genres`` as a list, and any
    other ``data.item_text`` field by name): the text :func:`render_items` gives it."""
    parts = []
    for f in fields:
        if f == "title":
            t, y = str(record.get("title", "")), str(record.get("year", ""))
            parts.append(f"{t} ({y})" if y else t)
        elif f == "genres":
            parts.append(", ".join(str(g) for g in record.get("genres") or []))
        elif f in record:
            v = str(record[f])
            parts.append(f"keywords: {v}" if f == "keywords" and v else v)
    return " · ".join(p for p in parts if p) or fallback


def render_user(attributes: dict[str, object], history: list[str]) -> str:
    """``age 24, M, technician. Recently: Toy Story (1995); Heat (1995)``."""
    attrs = ", ".join(
        f"age {v}" if k == "age" else str(v)
        for k, v in attributes.items()
        if k not in _SKIP_USER_COLS and v is not None and str(v) != "" and str(v) != "nan"
    )
    text = f"User: {attrs}." if attrs else "User."
    if history:
        text += " Recently: " + "; ".join(history)
    return text


def render_users(ds: Dataset, train: pd.DataFrame, history_len: int) -> list[str]:
    """One text per user from attributes and the most recent ``history_len`` train items."""
    item_titles = [
        f"{t} ({y})" if y else str(t) for t, y in zip(ds.items["title"], ds.items["year"])
    ]
    hist: list[list[str]] = [[] for _ in range(ds.n_users)]
    if history_len > 0 and len(train):
        ordered = train.sort_values(["user", "timestamp"], kind="stable")
        users = ordered["user"].to_numpy()
        items = ordered["item"].to_numpy()
        bounds = np.flatnonzero(np.diff(users)) + 1
        for chunk_u, chunk_i in zip(np.split(users, bounds), np.split(items, bounds)):
            if len(chunk_u):
                hist[int(chunk_u[0])] = [item_titles[i] for i in chunk_i[-history_len:][::-1]]
    records = ds.users.to_dict("records") if len(ds.users.columns) else [{}] * ds.n_users
    return [render_user(records[u], hist[u]) for u in range(ds.n_users)]
