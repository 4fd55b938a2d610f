"""Experiments in DVC's queue, in temporary git copies: a sweep, run two at a time.

Queue workers are background processes that stop by themselves about 10 s after the queue
drains. Every fixture waits for them, kills by process id whatever is left, and the tests fail
if anything had to be killed.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests.conftest import clone_copy, run, tool_env

pytestmark = pytest.mark.slow

# 2 learning rates x 1 length: two experiments, one for each of DVC's two workers (how DVC
# crosses longer lists is DVC's own behaviour).
GRID = ["-S", "train.lr=0.001,0.1", "-S", "train.epochs=50"]
COMBINATIONS = {(0.001, 50), (0.1, 50)}
ALONE = {"train.lr": 0.001, "train.epochs": 50}
# Experiments that fail at once (the params check): the queue's workers are what is tested.
FAILING = ["-S", "train.lr=-1,-2"]


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


def make_experiments(repo: Path, grid: list[str], jobs: int = 2) -> subprocess.CompletedProcess:
    """What `make experiments` runs, with a time limit: a stranded queue would wait forever."""
    command = [sys.executable, "-m", "tools.experiments", "--jobs", str(jobs), *grid]
    return subprocess.run(
        command, cwd=repo, env=tool_env(), capture_output=True, text=True, timeout=300
    )


@pytest.fixture(scope="module")
def swept(reproduced, tmp_path_factory):
    """The grid in a copy: the command's output, the queue's status, and what outlived it."""
    repo = clone_copy(reproduced[0], tmp_path_factory.mktemp("swept") / "repo")
    try:
        result = make_experiments(repo, GRID)
        statuses = run(["dvc", "queue", "status"], repo).stdout
        # The workers stop by themselves once the queue is empty.
        outlived = wait_for_exit(repo, timeout=30)
    finally:
        killed = wait_for_exit(repo, timeout=1)
    assert killed == [], f"queue processes had to be killed: {killed}"
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    return repo, result, outlived, statuses


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
    assert statuses.count("Success") == 2 and "Failed" not in statuses


def test_the_comparison_lists_the_experiments_best_test_mae_first(swept):
    _, result, _, _ = swept

    table = result.stdout.split("Experiments sorted by test mae")[1].splitlines()
    header = [cell.strip() for cell in table[1].strip("|").split("|")]
    rows = [line for line in table if line.startswith("| ├──") or line.startswith("| └──")]
    maes = [float(row.strip("|").split("|")[header.index("mae")]) for row in rows]
    assert len(maes) == 2
    assert maes == sorted(maes)
    assert {"train.lr", "train.epochs", "mae", "r2"} <= set(header)
    assert not any("/" in column for column in header)  # file hashes are dropped


def test_the_queues_workers_stop_by_themselves(swept):
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


def test_a_stray_stop_request_strands_dvcs_queue_but_not_make_experiments(swept):
    # treeverse/dvc#10562: after `dvc queue stop` with no worker running, a worker quits after
    # one experiment and the rest of the queue waits forever; `make experiments` clears the
    # request first. Workers are named after the repository's path, so this runs in the swept
    # repository itself, whose workers have come and gone, after the tests above.
    repo = swept[0]
    assert wait_for_exit(repo, timeout=30) == []
    run(["dvc", "queue", "stop"], repo)
    run(["dvc", "exp", "run", "--queue", *FAILING], repo)
    stuck = False
    try:
        subprocess.run(
            ["dvc", "exp", "run", "--run-all", "--jobs", "1"],
            cwd=repo,
            env=tool_env(),
            capture_output=True,
            timeout=30,
        )
    except subprocess.TimeoutExpired:
        stuck = True
    left = run(["dvc", "queue", "status"], repo).stdout.count("Queued")
    assert wait_for_exit(repo, timeout=1) == [] or stuck  # a stranded worker is killed here
    run(["dvc", "queue", "remove", "--queued"], repo)

    # When this fails, DVC fixed the bug: drop tools.experiments.clear_stale_stop_requests.
    assert stuck and left == 1

    run(["dvc", "queue", "stop"], repo)  # another stray request, then the command
    started = time.monotonic()
    result = make_experiments(repo, FAILING, jobs=1)
    statuses = run(["dvc", "queue", "status"], repo).stdout
    killed = wait_for_exit(repo, timeout=30)

    assert result.returncode == 1 and "2 experiment(s) failed" in result.stderr
    assert statuses.count("Failed") >= 3 and "Queued" not in statuses
    assert time.monotonic() - started < 120
    assert killed == []
