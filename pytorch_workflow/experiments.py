"""A grid of experiments, queued and run a few at a time, then compared by test MAE.

    python -m pytorch_workflow.experiments -j 2 -S train.lr=0.001,0.01,0.1 -S train.epochs=100,300

What `make experiments` runs. Each -S takes DVC's sweep syntax (comma-separated values); the
grid is every combination. The experiments run in DVC's queue, each in its own temporary copy
of the repository, `--jobs` at a time; this waits for all of them, stops the queue's workers,
and prints `dvc exp show` sorted by test MAE. The workspace is left as it was: keep the best
with `dvc exp apply NAME` or `dvc exp branch NAME BRANCH`.

Exits 1 if any experiment failed. Anything already waiting in the queue runs too.
No stage imports this module.
"""

import argparse
import subprocess
import sys

from pytorch_workflow.errors import UserError, exit_on_user_error

SORT_BY = "metrics/evaluate.json:mae"
# Dropped from the table (DVC matches each at the start of a column name): bookkeeping, file
# hashes (any name with a slash), the learned weights, and train.json's copies of the params
# and of the test MAE.
DROP_COLUMNS = "Created|State|Executor|.*/|learned|epochs|test_loss"
# A Markdown table: never cut to the terminal's width, and pastes into a pull request.
SHOW_SORTED = (
    *("exp", "show", "--no-pager", "--only-changed", "--md", "--drop", DROP_COLUMNS),
    *("--sort-by", SORT_BY, "--sort-order", "asc"),
)


def dvc(*args: str, capture: bool = False) -> str:
    """Run dvc, its output on the terminal (or returned); a failure is a one-line error."""
    result = subprocess.run(["dvc", *args], capture_output=capture, text=True)
    if result.returncode != 0:
        detail = (result.stderr or "").strip().splitlines()[-1:] or ["see its output above"]
        raise UserError(f"`dvc {' '.join(args)}` failed: {detail[0]}")
    return result.stdout or ""


def failed_tasks() -> set[str]:
    """Task ids that `dvc queue status` lists as failed."""
    status = dvc("queue", "status", capture=True)
    return {line.split()[0] for line in status.splitlines() if line.split()[-1:] == ["Failed"]}


def run_grid(set_params: list[str], jobs: int) -> int:
    """Queue the grid, run the whole queue `jobs` at a time and wait; returns how many failed."""
    failed_before = failed_tasks()
    dvc("exp", "run", "--queue", *(arg for param in set_params for arg in ("-S", param)))
    finished = False
    try:
        # --run-all starts `jobs` workers and follows every queued experiment to its end.
        dvc("exp", "run", "--run-all", "--jobs", str(jobs))
        finished = True
    finally:
        # The workers outlive --run-all; stop them (and, if interrupted, what they still run).
        stop = ["queue", "stop"] if finished else ["queue", "stop", "--kill"]
        subprocess.run(["dvc", *stop], capture_output=True)
    return len(failed_tasks() - failed_before)


@exit_on_user_error
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "-S",
        "--set-param",
        dest="set_params",
        action="append",
        required=True,
        metavar="PARAM=V1,V2",
        help="a param and its values, DVC's sweep syntax; repeat for a grid",
    )
    parser.add_argument("-j", "--jobs", type=int, default=2, help="experiments at a time")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        raise UserError(f"--jobs must be at least 1, got {args.jobs}")

    failures = run_grid(args.set_params, args.jobs)
    print(f"\nExperiments sorted by test MAE ({SORT_BY}), best first:")
    sys.stdout.flush()
    dvc(*SHOW_SORTED)
    if failures:
        print(f"{failures} experiment(s) failed: see `dvc queue status`", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
