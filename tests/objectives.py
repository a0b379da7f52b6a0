"""Custom objectives for the engine's tests: functions (``objective: tests.objectives:NAME``),
and ``stepped``, a light objective class with rungs and artifacts registered when this module
is imported (``plugins: [tests.objectives]``, ``objective: stepped``)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from moo_search.objective import Evaluation, Objective
from moo_search.registry import OBJECTIVES


def sphere2(params: dict[str, Any], spec: Any) -> dict[str, float]:
    """Two objectives over x, y in [0, 1]: distance to (0, 0) and to (1, 1)."""
    x, y = float(params["x"]), float(params["y"])
    return {"a": x * x + y * y, "b": (1 - x) ** 2 + (1 - y) ** 2}


def recorded(params: dict[str, Any], spec: Any) -> Any:
    """sphere2 with records (one its variant replaces) and one inference-only variant."""
    from types import SimpleNamespace

    m = sphere2(params, spec)
    half = {k: v / 2 for k, v in m.items()}
    return SimpleNamespace(
        metrics={"val": m, "test": dict(m)},
        cost={"seconds": 0.0},
        variants=[
            {
                "knobs": {"y": 0.5},
                "metrics": {"val": half, "test": dict(half)},
                "records": {"note": "the variant's own"},
            }
        ],
        records={"note": f"x={params['x']:.3f}", "fitted": {"name": "toy"}, **EXTRA_RECORDS},
    )


EXTRA_RECORDS: dict[str, Any] = {}
"""Records :func:`recorded` adds (a test sets one that collides with the engine's)."""


def flaky(params: dict[str, Any], spec: Any) -> dict[str, float]:
    """Fails for x > 0.7 with a clear reason."""
    if float(params["x"]) > 0.7:
        raise ValueError(f"x={params['x']:.3f} is out of the supported range")
    return sphere2(params, spec)


def slow(params: dict[str, Any], spec: Any) -> dict[str, float]:
    """Takes a moment, so that workers overlap; a marker file exists while it runs."""
    marker_dir = os.environ.get("MOO_TEST_MARKERS")
    marker = Path(marker_dir, f"{os.getpid()}.running") if marker_dir else None
    if marker is not None:
        marker.write_text(str(params))
    time.sleep(float(os.environ.get("MOO_TEST_SLEEP", "0.3")))
    if marker is not None:
        marker.unlink()
    return sphere2(params, spec)


def interrupt_at(params: dict[str, Any], spec: Any) -> dict[str, float]:
    """Raises KeyboardInterrupt (like Ctrl-C) when the marker file says so."""
    flag = Path(os.environ["MOO_TEST_INTERRUPT"])
    if flag.exists():
        n = int(flag.read_text())
        if n == 0:
            flag.unlink()
            raise KeyboardInterrupt
        flag.write_text(str(n - 1))
    return sphere2(params, spec)


def always_fails(params: dict[str, Any], spec: Any) -> dict[str, float]:
    """Every trial fails, with a clear reason."""
    raise ValueError("this objective always fails (a test)")


def conditional(params: dict[str, Any], spec: Any) -> dict[str, float]:
    """``y`` acts only when ``kind`` is "a" (the spec says so with ``when``); it must be absent
    otherwise."""
    x = float(params["x"])
    if params["kind"] == "a":
        y = float(params["y"])
    else:
        assert "y" not in params, f"y was suggested for kind {params['kind']!r}: {params}"
        y = 0.5
    return {"a": x * x + y * y, "b": (1 - x) ** 2 + (1 - y) ** 2}


class Stepped(Objective):
    """A light objective with rungs and artifacts, for the driver tests (no model, no data):
    its quality is its ``x`` on both objectives, reported at every rung of its 40 steps and
    at the end; each trial writes one artifact file."""

    keeps_artifacts = True
    has_rungs = True

    def steps(self, spec: Any) -> int:
        return 40

    def evaluator(self, spec: Any) -> Any:
        def evaluate(params: dict[str, Any], spec: Any, art: Any, *, on_rung: Any = None) -> Any:
            x = float(params["x"])
            m = {"a": x, "b": x}
            if on_rung is not None:
                for frac in spec.driver.early_stopping.rungs:
                    on_rung(int(frac * 40), {"val": dict(m)}, {"seconds": 0.0})
            if art is not None:
                Path(art).mkdir(parents=True, exist_ok=True)
                (Path(art) / "model.txt").write_text(f"x={x}\n")
            return Evaluation({"val": m, "test": dict(m)}, {"seconds": 0.0})

        return evaluate

    def fused_evaluator(self, spec: Any) -> Any:
        """``driver.fuse`` > 1: the trials of a group evaluated one after another, each
        outcome its own (a trial whose ``x`` is in :data:`FAIL_X` fails); each group's size
        is appended to :data:`GROUPS`."""
        if spec.driver.fuse == 1:
            return None
        evaluate = self.evaluator(spec)

        def group(requests: list[Any]) -> list[Any]:
            GROUPS.append(len(requests))
            if BREAK_GROUP:
                raise RuntimeError("the group broke")
            out: list[Any] = []
            for r in requests:
                try:
                    if float(r.params["x"]) in FAIL_X:
                        raise RuntimeError(f"x = {r.params['x']} fails")
                    out.append(evaluate(r.params, r.spec, r.artifact_dir, on_rung=r.on_rung))
                except Exception as e:
                    out.append(e)
            return out

        return int(spec.driver.fuse), group


GROUPS: list[int] = []  # the sizes of the groups Stepped's fused evaluator was given
FAIL_X: set[float] = set()  # the x values its fused evaluator fails
BREAK_GROUP: list[bool] = []  # non-empty: its fused evaluator raises for the whole group


if "stepped" not in OBJECTIVES:
    OBJECTIVES.register("stepped", Stepped())
