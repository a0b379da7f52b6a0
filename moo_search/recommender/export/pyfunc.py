"""The bundle as an MLflow model: the ``python_function`` flavor over :func:`load_exported`.

Every bundle is also an MLflow model directory (``MLmodel`` with a signature and an input
example, written by :func:`write_mlflow_model` and sealed by the manifest like every other
file), so an ML platform needs none of our code paths beyond this loader::

    model = mlflow.pyfunc.load_model("exports/knee")      # or models:/NAME/1 once registered
    model.predict(pd.DataFrame({"user": ["196"], "k": [10]}))

    mlflow models serve -m exports/knee --env-manager local   # POST /invocations

A request is a table, one row per user:

===========  =================  ========================================================
column       type               meaning
===========  =================  ========================================================
user         string             a known user id (or empty for a new user)
history      list of strings    a new user's item ids, oldest first
attributes   string (JSON)      a new user's attributes, e.g. ``{"age": 30}``
k            long               list length (default 10, at most ``MAX_K``)
exclude      list of strings    item ids never to recommend to this user
item         string             also return p(like | user, item) from the CTR head
new_items    string (JSON)      items added after training, ranked beside the catalog for
                                this row: ``[{"id": "n1", "title": ..., "genres": [...]}]``
                                (an id plus the fields of ``data.item_text``); a loaded
                                model also has ``add_items`` for items that stay
===========  =================  ========================================================

The answer has ``items`` (top-k ids, re-ranked as the trial was), ``scores`` (their fused
scores), ``conversion`` (p(like) of ``item`` for the user, from the conversion head; an item
added after training or given in ``new_items`` from its text; None without ``item``) and
``ctr`` (the same value under its old name). The signature declares the outputs only: MLflow's
input schema enforcement would run before our checks and change what was sent (``k: 5.5``
cast to 5, ``true`` to 1, a misspelt column dropped, a batch whose rows use different optional
columns refused for a float nobody sent), so the request's table (documented above, and in
the MLmodel's ``metadata.moo_search_request``) reaches :meth:`PyfuncRecommender.predict`
as sent, where every value is checked down to its elements; a bad row is refused naming its
column, and the scoring server answers it with HTTP 400. Loading runs the manifest check, as
:func:`load_exported` does.
"""

from __future__ import annotations

import json
import logging
import math
import numbers
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from moo_search.errors import ExportError
from moo_search.recommender.export._checks import check_id, check_new_user, shown

logger = logging.getLogger("moo_search")

__all__ = ["MAX_K", "MLFLOW_FILES", "PyfuncRecommender", "serve_command", "write_mlflow_model"]

MAX_K = 1000
DEFAULT_K = 10
COLUMNS = ("user", "history", "attributes", "k", "exclude", "item", "new_items")
MAX_NEW_ITEMS = 1000  # per request
# what mlflow.pyfunc.save_model writes beside the bundle's own files
MLFLOW_FILES = (
    "MLmodel",
    "conda.yaml",
    "python_env.yaml",
    "requirements.txt",
    "input_example.json",
    "serving_input_example.json",
)


REQUEST = {
    "user": "string: a known user id (or absent for a new user)",
    "history": "list of strings: a new user's item ids, oldest first",
    "attributes": 'string (JSON object): a new user\'s attributes, e.g. {"age": 30}',
    "k": f"integer: list length, 1 to {MAX_K} (default {DEFAULT_K})",
    "exclude": "list of strings: item ids never to recommend to this user",
    "item": "string: also return p(like | user, item) from the CTR head",
    "new_items": "string (JSON list of objects): items ranked beside the catalog for this row",
}
"""The request's columns (the MLmodel's ``metadata.moo_search_request``)."""


def _signature() -> Any:
    from mlflow.models import ModelSignature
    from mlflow.types.schema import Array, ColSpec, Schema

    strings = Array("string")
    return ModelSignature(
        inputs=None,  # checked by predict, as sent (see the module docstring)
        outputs=Schema(
            [
                ColSpec(strings, "items"),
                ColSpec(Array("double"), "scores"),
                ColSpec("double", "ctr", required=False),
                ColSpec("double", "conversion", required=False),
            ]
        ),
    )


def write_mlflow_model(out: Path, example_user: str) -> None:
    """Write the MLflow files (:data:`MLFLOW_FILES`) into the bundle directory ``out``."""
    import logging

    import mlflow.pyfunc
    import pandas as pd

    from moo_search._version import __version__

    example = pd.DataFrame({"user": [example_user], "k": [DEFAULT_K]})
    tmp = Path(tempfile.mkdtemp(prefix=".mlflow-", dir=out.parent))
    quiet = logging.getLogger("mlflow")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        mlflow.pyfunc.save_model(
            str(tmp / "model"),
            loader_module=__name__,
            signature=_signature(),
            input_example=example,
            metadata={"moo_search_request": REQUEST},
            pip_requirements=[f"moo-search=={__version__}"],
        )
        for p in sorted((tmp / "model").iterdir()):
            shutil.move(str(p), str(out / p.name))
    finally:
        quiet.setLevel(level)
        shutil.rmtree(tmp, ignore_errors=True)


def serve_command(
    bundle: str | Path, port: int, host: str = "127.0.0.1"
) -> tuple[list[str], dict[str, str]]:
    """(argv, environment) of ``mlflow models serve`` for ``bundle`` in this environment
    (``--env-manager local``; MLflow starts uvicorn from PATH, so this interpreter's bin comes
    first, and moo-search stays importable)."""
    import os
    import sys

    import moo_search

    bindir = str(Path(sys.executable).parent)
    src = str(Path(moo_search.__file__).resolve().parents[1])
    paths = [src, *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {
        **os.environ,
        "PATH": os.pathsep.join([bindir, os.environ.get("PATH", "")]),
        "PYTHONPATH": os.pathsep.join(paths),
    }
    argv = [sys.executable, "-m", "mlflow", "models", "serve", "-m", str(bundle)]
    return [*argv, "--env-manager", "local", "-h", host, "-p", str(port)], env


def _load_pyfunc(path: str) -> PyfuncRecommender:
    """MLflow's entry point (``loader_module``): the bundle at ``path``, verified."""
    from moo_search.recommender.export._load import load_exported

    try:
        return PyfuncRecommender(load_exported(path))
    except ExportError as e:
        from mlflow.exceptions import MlflowException

        raise MlflowException(f"moo-search bundle {path}: {e}") from None


def _bad(message: str) -> Exception:
    from mlflow.exceptions import MlflowException

    return MlflowException.invalid_parameter_value(message)


def _present(v: Any) -> bool:
    """A cell that holds a value (pandas fills absent ones with None or NaN)."""
    import math

    return v is not None and not (isinstance(v, float) and math.isnan(v))


def _strings(row: int, name: str, v: Any) -> list[str]:
    if not _present(v):
        return []
    if isinstance(v, str | bytes | dict) or not hasattr(v, "__iter__"):
        raise _bad(f"row {row}: '{name}' must be a list of item ids, got {shown(v)}")
    try:
        return [check_id(x, f"row {row}: '{name}' item {n}") for n, x in enumerate(v)]
    except ExportError as e:
        raise _bad(str(e)) from None


def _k(row: int, v: Any) -> int:
    if not _present(v):
        return DEFAULT_K
    ok = isinstance(v, numbers.Real) and not isinstance(v, bool | np.bool_)
    ok = ok and math.isfinite(float(v)) and float(v).is_integer() and 1 <= int(v) <= MAX_K
    if not ok:
        raise _bad(f"row {row}: 'k' must be an integer from 1 to {MAX_K}, got {shown(v)}")
    return int(v)


def _json(row: int, name: str, v: Any, example: str) -> Any:
    """A JSON cell parsed, or a 400 naming the column (a body nested too deep included)."""
    try:
        return json.loads(v) if isinstance(v, str) else None
    except (ValueError, RecursionError):
        raise _bad(f"row {row}: '{name}' must be JSON such as {example}, got {shown(v)}") from None


class PyfuncRecommender:
    """The loaded model MLflow calls: ``predict(table) -> table`` (see the module docstring)."""

    def __init__(self, rec: Any) -> None:
        self.rec = rec
        self._embedded: dict[str, Any] = {}  # a request's new items, by their JSON

    def predict(self, model_input: Any, params: dict[str, Any] | None = None) -> Any:
        import pandas as pd

        if isinstance(model_input, dict):
            model_input = [model_input]
        try:
            df = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        except (ValueError, TypeError) as e:
            raise _bad(f"a request is a table, one row per user: {e}") from None
        unknown = [str(c) for c in df.columns if c not in COLUMNS]
        if unknown:
            raise _bad(f"unknown columns {unknown}; a request has {list(COLUMNS)}")
        rows = [self._answer_row(i, r) for i, r in enumerate(df.to_dict("records"))]
        return pd.DataFrame(rows, columns=["items", "scores", "ctr", "conversion"])

    def _answer_row(self, i: int, row: dict[str, Any]) -> dict[str, Any]:
        """:meth:`_answer`; an error we did not foresee is logged here and answered as an
        internal error (no traceback or server path in the answer)."""
        from mlflow.exceptions import MlflowException
        from mlflow.protos.databricks_pb2 import INTERNAL_ERROR

        try:
            return self._answer(i, row)
        except MlflowException:
            raise
        except RecursionError:
            raise _bad(f"row {i}: a value is nested too deep") from None
        except Exception:
            logger.exception("row %d: unexpected error", i)
            raise MlflowException(
                f"row {i}: internal error answering it (logged by the server)",
                error_code=INTERNAL_ERROR,
            ) from None

    def _answer(self, i: int, row: dict[str, Any]) -> dict[str, Any]:
        user = self._user(i, row)
        k = _k(i, row.get("k"))
        exclude = _strings(i, "exclude", row.get("exclude"))
        new = self._new_items(i, row.get("new_items"))
        item = row.get("item")
        try:
            item = check_id(item, f"row {i}: 'item'") if _present(item) else None
            items, scores = self.rec.rank(user, k, exclude=exclude, new_items=new)
            ctr = self.rec.ctr(user, item, new_items=new) if item is not None else None
        except ExportError as e:
            raise _bad(f"row {i}: {e}" if not str(e).startswith("row ") else str(e)) from None
        scored = [float(s) for s in scores]
        return {"items": items, "scores": scored, "ctr": ctr, "conversion": ctr}

    def add_items(self, items: list[dict[str, Any]]) -> list[str]:
        """Items that stay in the catalog from now on (see ``ExportedRecommender.add_items``)."""
        return list(self.rec.add_items(items))

    def _new_items(self, i: int, v: Any) -> Any:
        if not _present(v):
            return None
        items = _json(i, "new_items", v, '[{"id": "n1", "title": "..."}]')
        if not isinstance(items, list) or not all(isinstance(x, dict) for x in items):
            raise _bad(
                f"row {i}: 'new_items' must be a JSON list of objects such as "
                f'[{{"id": "n1", "title": "..."}}], got {str(v)[:80]!r}'
            )
        if len(items) > MAX_NEW_ITEMS:
            raise _bad(f"row {i}: 'new_items' holds {len(items)} items; at most {MAX_NEW_ITEMS}")
        key = str(v)
        if key not in self._embedded:
            try:
                self._embedded[key] = self.rec.embed_items(items)
            except ExportError as e:
                raise _bad(f"row {i}: 'new_items': {e}") from None
            while len(self._embedded) > 64:
                self._embedded.pop(next(iter(self._embedded)))
        return self._embedded[key]

    def _user(self, i: int, row: dict[str, Any]) -> Any:
        history = _strings(i, "history", row.get("history"))
        attrs = row.get("attributes")
        user = row.get("user")
        if isinstance(user, float) and math.isfinite(user) and user.is_integer():
            user = int(user)  # a JSON number in a batch where another row has no user
        if _present(user):
            try:
                user = check_id(user, f"row {i}: 'user'")
            except ExportError as e:
                raise _bad(str(e)) from None
        if _present(user) and str(user) in self.rec.known_users:
            if history or _present(attrs):
                raise _bad(
                    f"row {i}: 'user' {user!r} is a known user; 'history' and 'attributes' "
                    "are for new users"
                )
            return str(user)
        if not history:
            what = f"'user' {user!r} is not a known user" if _present(user) else "no 'user'"
            raise _bad(f"row {i}: {what}; a new user needs a 'history' of item ids")
        parsed: Any = {}
        if _present(attrs):
            parsed = (
                _json(i, "attributes", attrs, '{"age": 30}') if isinstance(attrs, str) else attrs
            )
            if not isinstance(parsed, dict):
                raise _bad(
                    f"row {i}: 'attributes' must be a JSON object such as "
                    f'{{"age": 30}}, got {str(attrs)[:80]!r}'
                )
        try:
            return check_new_user({"attributes": parsed, "history": history})
        except ExportError as e:
            raise _bad(f"row {i}: {e}") from None
