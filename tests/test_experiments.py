"""Experiments in DVC's queue, in temporary git copies: a sweep, run two at a time.

Queue workers are background processes. Every fixture that starts them stops them, kills by
process id whatever is left, and the tests fail if anything had to be killed.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from tests.conftest import clone_copy, run, tool_env

pytestmark = pytest.mark.slow

# 2 learning rates x 2 lengths: four experiments, the smallest grid that is still a grid.
GRID = ["-S", "train.lr=0.001,0.1", "-S", "train.epochs=50,100"]
COMBINATIONS = {(0.001, 50), (0.001, 100), (0.1, 50), (0.1, 100)}
ALONE = {"train.lr": 0.001, "train.epochs": 100}
SECOND_GRID_LRS = (0.02, 0.03)


def processes_in(repo: Path) -> list[psutil.Process]:
    """Processes other than this one working in `repo` or in its temporary experiment copies."""
    root = str(repo.resolve())
    found = []
    for process in psutil.process_iter(["cwd"]):
        cwd = process.info.get("cwd") or ""
        if process.pid != os.getpid() and (cwd == root or cwd.startswith(root + os.sep)):
            found.append(process)
    return found


def wait_for_exit(repo: Path, timeout: float) -> list[str]:
    """Wait for the processes in `repo` to end; kill the rest and return what they were."""
    _, alive = psutil.wait_procs(processes_in(repo), timeout=timeout)
    survivors = []
    for process in alive:
        try:
            survivors.append(f"{process.pid}: {' '.join(process.cmdline())}")
            process.kill()
        except psutil.NoSuchProcess:
            pass
    return survivors


def stop_queue(repo: Path) -> list[str]:
    run(["dvc", "queue", "stop", "--kill"], repo, check=False)
    return wait_for_exit(repo, timeout=30)


def experiments(repo: Path) -> list[dict]:
    """Every experiment of the current commit, as `dvc exp show --json` describes it."""
    shown = json.loads(run(["dvc", "exp", "show", "--json"], repo).stdout)
    return [
        rev["data"]
        for commit in shown
        for experiment in commit.get("experiments") or []
        for rev in experiment["revs"]
    ]


def train_params(data: dict) -> tuple[float, int]:
    train = data["params"]["params.yaml"]["data"]["train"]
    return float(train["lr"]), int(train["epochs"])


def run_grid(repo: Path, grid: list[str], jobs: int = 2) -> subprocess.CompletedProcess:
    """What `make experiments` runs, with a time limit: a stranded queue would wait forever."""
    command = [sys.executable, "-m", "pytorch_workflow.experiments", "--jobs", str(jobs), *grid]
    result = subprocess.run(
        command, cwd=repo, env=tool_env(), capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    return result


@pytest.fixture(scope="module")
def swept(reproduced, tmp_path_factory):
    """The grid in a copy: the command's output, the queue's status, and what outlived it."""
    repo = clone_copy(reproduced[0], tmp_path_factory.mktemp("swept") / "repo")
    try:
        result = run_grid(repo, GRID)
        # The command stops the workers itself; give them a moment to finish exiting.
        outlived = wait_for_exit(repo, timeout=30)
        statuses = run(["dvc", "queue", "status"], repo).stdout
    finally:
        killed = stop_queue(repo)
    assert killed == [], f"queue processes had to be killed: {killed}"
    return repo, result, outlived, statuses


@pytest.fixture(scope="module")
def after_a_stray_stop(swept):
    """The same repo, after `dvc queue stop` with no worker running, then another grid.

    One worker and two experiments: obeying the stop request, the worker would end after the
    first, and the second would wait forever (run_grid's time limit would fail the test).
    """
    repo = swept[0]
    try:
        run(["dvc", "queue", "stop"], repo)
        lrs = ",".join(map(str, SECOND_GRID_LRS))
        result = run_grid(repo, ["-S", f"train.lr={lrs}"], jobs=1)
    finally:
        killed = stop_queue(repo)
    assert killed == [], f"queue processes had to be killed: {killed}"
    return repo, result


@pytest.fixture(scope="module")
def alone(reproduced, tmp_path_factory) -> Path:
    """Another copy that ran one of the grid's param sets by itself, in its workspace."""
    repo = clone_copy(reproduced[0], tmp_path_factory.mktemp("alone") / "repo")
    sets = [arg for name, value in ALONE.items() for arg in ("-S", f"{name}={value}")]
    run(["dvc", "exp", "run", *sets], repo)
    return repo


def test_a_sweep_runs_one_experiment_per_combination(swept):
    repo, _, _, statuses = swept

    ran = [data for data in experiments(repo) if train_params(data)[0] in (0.001, 0.1)]

    assert sorted(train_params(data) for data in ran) == sorted(COMBINATIONS)
    assert all(data["metrics"]["metrics/evaluate.json"]["data"]["mae"] > 0 for data in ran)
    assert statuses.count("Success") == 4 and "Failed" not in statuses


def test_the_comparison_lists_the_experiments_best_test_mae_first(swept):
    _, result, _, _ = swept

    table = result.stdout.split("Experiments sorted by test MAE")[1].splitlines()
    header = [cell.strip() for cell in table[1].strip("|").split("|")]
    rows = [line for line in table if line.startswith("| ├──") or line.startswith("| └──")]
    maes = [float(row.strip("|").split("|")[header.index("mae")]) for row in rows]
    assert len(maes) == 4
    assert maes == sorted(maes)
    assert {"train.lr", "train.epochs", "mae", "r2"} <= set(header)
    assert not any("/" in column for column in header)  # file hashes are dropped


def test_no_queue_process_outlives_the_grid(swept):
    _, _, outlived, _ = swept

    assert outlived == []


def test_a_queued_experiment_writes_the_same_bytes_as_the_same_params_run_alone(swept, alone):
    repo, _, _, _ = swept
    (queued,) = [
        data
        for data in experiments(repo)
        if train_params(data) == (ALONE["train.lr"], ALONE["train.epochs"])
    ]
    (by_itself,) = experiments(alone)

    assert queued["metrics"] == by_itself["metrics"]
    # Every output's hash: the model, the predictions, the figures and the exported bundle.
    queued_outs = {path: out["hash"] for path, out in queued["outs"].items()}
    alone_outs = {path: out["hash"] for path, out in by_itself["outs"].items()}
    assert queued_outs == alone_outs
    assert {"models/model.pt", "plots/loss.png", "models/export"} <= set(queued_outs)


def test_a_stop_request_left_for_ended_workers_does_not_strand_the_next_grid(after_a_stray_stop):
    repo, result = after_a_stray_stop

    assert re.match(r"Dropped [1-9]\d* stop request\(s\) left in the queue", result.stdout)
    learning_rates = sorted(train_params(data)[0] for data in experiments(repo))
    assert [lr for lr in learning_rates if lr in SECOND_GRID_LRS] == list(SECOND_GRID_LRS)
