"""A grid of experiments in DVC's queue, run a few at a time, then compared by the task's test
metric (MAE for a regression, accuracy for a classifier).

    python -m tools.experiments -j 2 -S 'train.lr=0.001,0.01,0.1' -S 'train.epochs=100,300'

What `make experiments` runs: `dvc exp run --queue` with the grid (DVC's sweep syntax, every
combination), `dvc exp run --run-all -j N`, which waits for the queue (its workers stop by
themselves about 10 s after it drains), and `dvc exp show` sorted by that metric. Exits 1 if an
experiment failed (`--run-all` itself exits 0 then). Keep the best with `dvc exp apply NAME`.
"""

import argparse
import sys

from pytorch_workflow.errors import UserError, exit_on_user_error
from pytorch_workflow.params import HEADLINE_METRIC, load_params
from tools.commands import output_of, streamed

METRICS_FILE = "metrics/evaluate.json"


def show_sorted(task: str) -> tuple[str, ...]:
    """`dvc exp show` as a Markdown table of the columns that differ, without bookkeeping, file
    hashes and failed experiments (which show their parent's metrics), best first by the
    task's headline metric."""
    metric, higher_is_better = HEADLINE_METRIC[task]
    return (
        *("dvc", "exp", "show", "--no-pager", "--only-changed", "--md", "--hide-failed"),
        *("--drop", "Created|State|Executor|.*/|learned"),
        *("--sort-by", f"{METRICS_FILE}:{metric}"),
        *("--sort-order", "desc" if higher_is_better else "asc"),
    )


def clear_stale_stop_requests() -> None:
    """Workaround for treeverse/dvc#10562 (and #10427): a `dvc queue stop` given while no worker
    runs stays in the queue, and the next workers obey it after one experiment each, leaving the
    rest queued forever. `dvc exp clean` drops such leftover messages; it is run only while no
    worker is alive. tests/test_experiments.py fails when DVC no longer needs this.
    """
    status = output_of("dvc", "queue", "status")
    if "Worker status: 0 active, 0 idle" in status:
        output_of("dvc", "exp", "clean")


def failed_tasks() -> set[str]:
    status = output_of("dvc", "queue", "status")
    return {line.split()[0] for line in status.splitlines() if line.split()[-1:] == ["Failed"]}


@exit_on_user_error
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "-S",
        "--set-param",
        dest="grid",
        action="append",
        default=[],
        metavar="PARAM=V1,V2",
        help="DVC's sweep syntax; repeat for a grid",
    )
    parser.add_argument("-j", "--jobs", type=int, default=2, help="experiments at a time")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        raise UserError(f"--jobs must be at least 1, got {args.jobs}")

    task = load_params().task
    clear_stale_stop_requests()
    failed_before = failed_tasks()
    if args.grid:
        streamed("dvc", "exp", "run", "--queue", *(a for p in args.grid for a in ("-S", p)))
    streamed("dvc", "exp", "run", "--run-all", "--jobs", str(args.jobs))
    failures = failed_tasks() - failed_before
    metric = HEADLINE_METRIC[task][0]
    print(f"\nExperiments sorted by test {metric} ({METRICS_FILE}), best first:", flush=True)
    streamed(*show_sorted(task))
    if failures:
        print(f"{len(failures)} experiment(s) failed: see `dvc queue status`", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
