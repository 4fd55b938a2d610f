"""A grid of experiments, queued and run a few at a time, then compared by test MAE.

    python -m pytorch_workflow.experiments -j 2 -S train.lr=0.001,0.01,0.1 -S train.epochs=100,300

What `make experiments` runs. Each -S takes DVC's sweep syntax (comma-separated values); the
grid is every combination. The experiments run in DVC's queue, each in its own temporary copy
of the repository, `--jobs` at a time; this waits for all of them, stops the queue's workers,
and prints `dvc exp show` sorted by test MAE. The workspace is left as it was: keep the best
with `dvc exp apply NAME` or `dvc exp branch NAME BRANCH`.

Exits 1 if any experiment failed. Anything already waiting in the queue runs too; without -S,
only that runs.
No stage imports this module.
"""

import argparse
import base64
import contextlib
import json
import subprocess
import sys
from pathlib import Path

import psutil

from pytorch_workflow.errors import UserError, exit_on_user_error

SORT_BY = "metrics/evaluate.json:mae"
# DVC's queue: a celery app whose broker keeps its messages as files here.
CELERY_DIR = Path(".dvc/tmp/exps/celery")
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


def queue_workers() -> list[psutil.Process]:
    """This repository's queue workers: `dvc exp queue-worker` processes working here."""
    root = str(Path.cwd().resolve())
    workers = []
    for process in psutil.process_iter(["cmdline", "cwd"]):
        if "queue-worker" in (process.info["cmdline"] or []) and process.info["cwd"] == root:
            workers.append(process)
    return workers


def stop_workers(workers: list[psutil.Process], timeout: float = 15) -> None:
    """End idle workers by process id (SIGTERM: celery's warm shutdown), killing any that hang."""
    for worker in workers:
        with contextlib.suppress(psutil.NoSuchProcess):
            worker.terminate()
    _, alive = psutil.wait_procs(workers, timeout=timeout)
    for worker in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            worker.kill()


def drop_stale_stop_requests() -> int:
    """Delete the stop requests in DVC's queue that no running worker received.

    `dvc queue stop` broadcasts a shutdown to every worker name the queue has used. A worker that
    is no longer running never reads it, and the next worker with the same name (they are
    numbered, `dvc-exp-HASH-1`, ...) obeys it after its first experiment: the rest of the queue
    then waits forever for a worker. Call this only while none of the workers runs. The requests
    are files of kombu's filesystem transport; a file this cannot read is left alone.
    """
    dropped = 0
    for message in (CELERY_DIR / "broker" / "in").glob("*.pidbox.msg"):
        try:
            envelope = json.loads(message.read_text(encoding="utf-8"))
            body = envelope["body"]
            if envelope.get("properties", {}).get("body_encoding") == "base64":
                body = base64.b64decode(body)
            method = json.loads(body).get("method")
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            continue
        if method == "shutdown":
            message.unlink(missing_ok=True)
            dropped += 1
    return dropped


def run_grid(set_params: list[str], jobs: int) -> int:
    """Queue the grid, run the whole queue `jobs` at a time and wait; returns how many failed."""
    if not queue_workers():
        dropped = drop_stale_stop_requests()
        if dropped:
            print(f"Dropped {dropped} stop request(s) left in the queue for workers that had ended")
    failed_before = failed_tasks()
    if set_params:
        dvc("exp", "run", "--queue", *(arg for param in set_params for arg in ("-S", param)))
    try:
        # --run-all starts `jobs` workers and follows every queued experiment to its end.
        dvc("exp", "run", "--run-all", "--jobs", str(jobs))
    except BaseException:
        # Interrupted or failed: stop what the workers still run. Only while they run: a stop
        # request that no worker reads would stop the next ones (see drop_stale_stop_requests).
        if queue_workers():
            subprocess.run(["dvc", "queue", "stop", "--kill"], capture_output=True)
        stop_workers(queue_workers())
        raise
    # The workers idle for a while before they exit; they have nothing left to do.
    stop_workers(queue_workers())
    return len(failed_tasks() - failed_before)


@exit_on_user_error
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "-S",
        "--set-param",
        dest="set_params",
        action="append",
        default=[],
        metavar="PARAM=V1,V2",
        help="a param and its values, DVC's sweep syntax; repeat for a grid; "
        "none: run only what is already queued",
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
