"""Where does the text tower's tail accuracy come from, and what does it cost? One table.

    python benchmarks/bench_tail.py [--spec studies/quickstart.yaml]
        [--grid 0.1:1 0.1:3 0.1:5] [--set train.max_steps=90 ...]

EASE (lambda tuned on validation) and one quickstart fine-tune per ``alpha:tail_weight`` point
(``fusion.alpha``, ``fusion.tail_weight``; every other value from the spec, plus ``--set``),
side by side in one run: precision@10 and tail/precision@10 on validation and test, and the
same as *hit counts* (relevant items in the top 10, all of them and tail ones), because on
ML-100K a tail hit is rare: EASE makes about two on test, over the few hundred users who
have a relevant tail item at all. A difference of one or two hits is noise, not a finding.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from moo_search import load_spec, run_trial
from moo_search.errors import MooSearchError
from moo_search.recommender.baselines.ranking import BaselineContext, evaluate_baselines
from moo_search.recommender.metrics import EvalContext
from moo_search.recommender.prepare import prepare_data

PARTS = ("val", "test")


def _users(data: Any, spec: Any) -> dict[str, tuple[int, int]]:
    """Per part: (evaluated users, of them those with a relevant tail item)."""
    out = {}
    for part in PARTS:
        ctx = EvalContext.from_split(
            data.split,
            part,
            data.features,
            cold_user_max=spec.eval.cold_user_max,
            head_share=spec.eval.head_share,
        )
        has_tail = ctx.has_tail(ctx.users)
        out[part] = (len(ctx.users), int(has_tail.sum()))
    return out


def _row(
    name: str, metrics: dict[str, dict[str, float]], users: dict[str, tuple[int, int]], k: int
) -> str:
    cells = []
    for part in PARTS:
        n, n_tail = users[part]
        p, tp = metrics[part]["precision@10"], metrics[part].get("tail/precision@10", 0.0)
        cells.append(f"{p:8.4f} {round(p * k * n):5d} {tp:8.4f} {round(tp * k * n_tail):4d}")
    return f"{name:<26}" + "   ".join(cells)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spec", default="studies/quickstart.yaml")
    ap.add_argument("--grid", nargs="+", default=["0.1:1", "0.1:3", "0.1:5"])
    ap.add_argument("--set", action="append", default=[], metavar="PATH=VALUE")
    args = ap.parse_args(argv)
    try:
        spec = load_spec(args.spec, args.set)  # (--set as in the CLI)
    except MooSearchError as e:
        print(f"bench_tail: error: {e}", file=sys.stderr)
        return 2
    k = spec.eval.k
    data = prepare_data(spec)
    users = _users(data, spec)
    print(
        f"{spec.name}: {', '.join(f'{p} {n} users ({t} with a relevant tail item)' for p, (n, t) in users.items())}"
    )
    if args.set:
        print(f"every trial with {', '.join(args.set)}")
    head = f"{'P@10':>8} {'hits':>5} {'tail P':>8} {'hits':>4}"
    print(f"{'':<26}{'validation':^28}   {'test':^28}\n{'':<26}{head}   {head}")
    ease = evaluate_baselines(BaselineContext.of(spec, data), names=("EASE",), ctr=False)
    print(_row("EASE", ease["EASE"], users, k), flush=True)
    for point in args.grid:
        alpha, _, weight = point.partition(":")
        params = {"fusion.alpha": float(alpha), "fusion.tail_weight": float(weight or 1.0)}
        result = run_trial(spec.with_params(params))
        name = f"alpha {float(alpha):g}, tail_weight {float(weight or 1.0):g}"
        print(
            _row(name, result.metrics, users, k), f"  ({result.cost['seconds']:.0f} s)", flush=True
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
