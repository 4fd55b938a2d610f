"""Time evaluate's linear baselines on tables of many feature columns.

    python -m benchmarks.baselines_width     # 1,000 and 5,000 features
    python -m benchmarks.baselines_width --features 10000 --rows 25000 --only regression

Random standard-normal float32 features (as standardised ones look), 80 % of the rows to train
and 20 % to test, in chunks of 10,000 rows; a linear target with noise for the closed form, a
logistic one for the classifier, and the closed form again with its last column a copy of the
first (the rank-deficient case). Prints the seconds each baseline takes, fit and test metrics.
"""

import argparse
import time
from collections.abc import Callable

import numpy as np

from pytorch_workflow.baselines import Chunks, closed_form_metrics, logistic_metrics

CHUNK_ROWS = 10_000


def chunks_of(X: np.ndarray, y: np.ndarray) -> Chunks:
    return lambda: (
        (X[i : i + CHUNK_ROWS], y[i : i + CHUNK_ROWS]) for i in range(0, len(y), CHUNK_ROWS)
    )


def timed(name: str, baseline: Callable, X: np.ndarray, y: np.ndarray) -> None:
    train = len(y) * 4 // 5
    start = time.perf_counter()
    metrics = baseline(chunks_of(X[:train], y[:train]), chunks_of(X[train:], y[train:]), X.shape[1])
    print(f"{X.shape[1]} features, {len(y)} rows, {name}: {time.perf_counter() - start:.1f} s")
    print(f"  {metrics}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--features", type=int, nargs="+", default=[1000, 5000])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--only", choices=["regression", "rank-deficient", "classification"])
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    for features in args.features:
        X = rng.normal(size=(args.rows, features)).astype(np.float32)
        signal = X @ (rng.normal(size=features) / np.sqrt(features))
        regression = (signal + rng.normal(0, 0.5, args.rows)).astype(np.float32)
        if args.only in (None, "regression"):
            timed("closed form", closed_form_metrics, X, regression)
        if args.only in (None, "rank-deficient"):
            dependent = X.copy()
            dependent[:, -1] = dependent[:, 0]
            timed("closed form, rank-deficient", closed_form_metrics, dependent, regression)
        if args.only in (None, "classification"):
            labels = (3 * signal + rng.logistic(size=args.rows) > 0).astype(np.float32)
            timed("logistic", logistic_metrics, X, labels)


if __name__ == "__main__":
    main()
