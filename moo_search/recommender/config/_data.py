"""The data section: dataset, split, relevance, item texts, and the dataset source's own knobs
(``data.params``, checked against the source's params model: :class:`SyntheticParams`,
:class:`BookCrossingParams`, :class:`CsvParams` for the built-ins)."""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from moo_search.recommender.config._compat import move_old_data_keys
from moo_search.recommender.config._knobs import check_own_params
from moo_search.recommender.registries import DATASETS
from moo_search.spec._errors import Located, Strict

ItemText = Literal["title", "genres", "overview", "tagline", "keywords", "author", "publisher"]

TRIAL_SECTIONS = ("seed", "data", "model", "adapter", "fusion", "loss", "train", "rerank", "eval")
"""The top-level spec keys that make up a trial config (search dimensions point into these)."""


class SplitConfig(Strict):
    method: Literal["chronological", "random", "leave_last"] = Field(
        "chronological", description="Per-user chronological, random ratio, or leave-last-n-out."
    )
    ratios: tuple[float, float, float] = Field(
        (0.8, 0.1, 0.1), description="train/val/test shares."
    )
    n: int = Field(
        1, ge=1, description="Items per user held out for val and for test (leave_last)."
    )
    seed: int = Field(0, description="Seed of the random split methods.")
    cold_items: float = Field(
        0.0,
        ge=0.0,
        lt=1.0,
        description=(
            "Share of the items held out with all their interactions (the item-cold "
            "protocol): half are validation's new items, half test's; 0 = none."
        ),
    )
    cold_seed: int = Field(0, description="Seed of the held-out item draw.")

    @field_validator("ratios")
    @classmethod
    def _ratios_sum_to_one(cls, v: tuple[float, float, float]) -> tuple[float, float, float]:
        if any(r < 0 for r in v) or not math.isclose(sum(v), 1.0, abs_tol=1e-6):
            raise ValueError(f"must be three non-negative shares summing to 1, got {list(v)}")
        return v


class SyntheticParams(Strict):
    """The synthetic source's knobs: the planted data's size and structure."""

    n_users: int = Field(300, ge=2, description="Users generated.")
    n_items: int = Field(200, ge=2, description="Items generated.")
    n_genres: int = Field(8, ge=1, description="Genres the items are drawn from.")
    interactions_per_user: int = Field(30, ge=3, description="Interactions of each user.")
    popularity_exponent: float = Field(1.0, ge=0.0, description="Zipf exponent of item popularity.")
    genre_affinity: float = Field(
        4.0, ge=0.0, description="How strongly users prefer their genres."
    )
    seed: int = Field(0, description="Seed of the generator.")


class BookCrossingParams(Strict):
    """The book-crossing source's knobs: which items count as one, and the k-core."""

    k_core: int = Field(
        10,
        ge=1,
        description="Keep users and items with at least this many interactions (repeated "
        "until stable).",
    )
    collapse_editions: bool = Field(
        True,
        description="One item per work: ISBNs with the same normalised title and author.",
    )


class CsvParams(Strict):
    """The csv source's knobs: the optional item and user tables, and column renames."""

    items_path: str | None = Field(
        None, description="The item table (item, title, year, genres, ...)."
    )
    users_path: str | None = Field(None, description="The user table (user, attributes).")
    columns: dict[str, str] = Field(
        default_factory=dict,
        description="Column renames: {user: ..., item: ..., rating: ..., timestamp: ...}.",
    )


class DataConfig(Strict):
    dataset: str = Field(
        "movielens-100k",
        description="A registered dataset (moo_search.recommender.registries.DATASETS).",
    )
    path: str | None = Field(None, description="Directory (recbole) or interactions file (csv).")
    split: SplitConfig = Field(
        default_factory=SplitConfig,
        description="How interactions become train, validation and test (and new items).",
    )
    relevance_threshold: float = Field(4.0, description="rating >= threshold counts as relevant.")
    history_len: int = Field(10, ge=0, description="Recent items rendered into the user's text.")
    item_text: list[ItemText] = Field(
        default_factory=lambda: ["title", "genres"],  # type: ignore[arg-type,list-item]
        description="What an item's text holds, in order; overview/tagline/keywords come from "
        "the movie-overviews table (matched by title and year; unmatched items keep the rest).",
    )
    params: dict[str, Any] = Field(
        default_factory=dict,
        description="The dataset source's own knobs, checked against its params model "
        "(synthetic: n_users, n_items ...; book-crossing: k_core, collapse_editions; csv: "
        "items_path, users_path, columns; a plugin source's own); search them as "
        "data.params.<knob>. Empty: its defaults.",
    )

    @model_validator(mode="before")
    @classmethod
    def _old_keys(cls, data: Any) -> Any:
        return move_old_data_keys(data)

    def source_params(self) -> Any:
        """The dataset source's knobs: ``params`` validated by its params model (None for a
        source without one)."""
        model = DATASETS.get(self.dataset).params
        return None if model is None else model.model_validate(self.params)

    def record(self) -> dict[str, Any]:
        """This section as plain data with the source's knobs filled in (what identifies a
        study's data: ``{}`` and the defaults written out are the same data)."""
        out = self.model_dump(mode="json")
        own = self.source_params()
        out["params"] = own.model_dump(mode="json") if own is not None else dict(self.params)
        return out

    @field_validator("dataset")
    @classmethod
    def _known_dataset(cls, v: str) -> str:
        return DATASETS.check(v)

    @field_validator("item_text")
    @classmethod
    def _item_text(cls, v: list[str]) -> list[str]:
        if not v or len(set(v)) != len(v):
            raise ValueError(f"must name each text field at most once, and at least one; got {v}")
        return v

    @model_validator(mode="after")
    def _path_required(self) -> DataConfig:
        source = DATASETS.get(self.dataset)
        check_own_params(source, self.params, "params", f"dataset {self.dataset!r}")
        if source.needs_path and not self.path:
            raise Located(
                ("path",), f"dataset {self.dataset!r} needs data.path (a file or directory)"
            )
        return self
