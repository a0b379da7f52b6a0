"""What test scores would be if the model saw the validation interactions: EASE on the test
split, its user rows from train only (the project's protocol) or from train + validation.

    python benchmarks/bench_fold_in.py [--spec studies/quickstart.yaml]

Every trial and baseline scores a test user from their train history; validation items are
only excluded from the lists. A model in production would have seen them. This prints, side
by side in one run (seconds), EASE's test precision@10, ndcg@10 and tail/precision@10 with
W fit on train and the user rows x_u from train or from train + validation, and with W refit
on train + validation, at the lambdas of the validation grid.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from moo_search import load_spec
from moo_search.errors import MooSearchError
from moo_search.recommender.evaluate import evaluate_scorer
from moo_search.recommender.model.backbones import EASE_LAMBDAS, ease_weights
from moo_search.recommender.prepare import prepare_data


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spec", default="studies/quickstart.yaml")
    args = ap.parse_args(argv)
    try:
        spec = load_spec(args.spec)
    except MooSearchError as e:
        print(f"bench_fold_in: error: {e}", file=sys.stderr)
        return 2
    data = prepare_data(spec)
    split = data.split
    train = split.matrix("train").astype(np.float32).tocsr()
    both = (train + split.matrix("val").astype(np.float32)).tocsr()
    cols = ("precision@10", "ndcg@10", "tail/precision@10")
    print(f"{'EASE, test split':<40}" + "".join(f"{c:>19}" for c in cols))
    for lam in EASE_LAMBDAS:
        w_train, w_both = ease_weights(train, lam), ease_weights(both, lam)
        for name, x, w in (
            ("W train, x_u train", train, w_train),
            ("W train, x_u train+val", both, w_train),
            ("W train+val, x_u train+val", both, w_both),
        ):
            scores = np.asarray(x @ w)
            res = evaluate_scorer(
                lambda users, s=scores: s[users],
                data.ds,
                split,
                eval_cfg=spec.eval,
                parts=("test",),
                features=data.features,
            )
            row = res["test"]
            label = f"lambda {lam:g}: {name}"
            print(f"{label:<40}" + "".join(f"{row.get(c, 0.0):>19.4f}" for c in cols))
    return 0


if __name__ == "__main__":
    sys.exit(main())
