"""Training with torchrun: several processes, two "machines" on 127.0.0.1, a process that dies."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests.conftest import clone_copy, run, start_stage, tool_env
from tests.test_bad_inputs import assert_clean_failure, set_params
from tools.tolerance import largest_difference, load_tolerance, numbers_of

pytestmark = pytest.mark.slow

# 8,000 train rows in 8 chunks.
CHUNKED = {
    "data__step": 1e-4,
    "data__chunk_rows": 1000,
    "data__noise_std": 0.05,
    "train__epochs": 10,
}
OUTPUTS = (
    "models/model.pt",
    "plots/loss.csv",
    "metrics/evaluate.json",
    "data/test_predictions.parquet",
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def chunked(reproduced, tmp_path_factory) -> Path:
    """The noisy line in 8-chunk splits, trained by one process."""
    repo = clone_copy(reproduced[0], tmp_path_factory.mktemp("chunked") / "repo")
    set_params(repo, **CHUNKED)
    run(["dvc", "repro"], repo)
    return repo


def files(repo: Path) -> dict[str, bytes]:
    return {name: (repo / name).read_bytes() for name in OUTPUTS}


def recorded(repo: Path) -> dict[str, float]:
    """The numbers `make lock-check` compares: metrics and plot tables."""
    numbers = {}
    for name in ("metrics/train.json", "metrics/evaluate.json", "plots/loss.csv"):
        numbers.update(numbers_of(name, (repo / name).read_text()))
    return numbers


def test_two_processes_agree_with_one_and_write_the_same_bytes_again(chunked, tmp_path):
    repo = clone_copy(chunked, tmp_path / "repo")
    set_params(repo, train__processes=2)

    result = run(["dvc", "repro"], repo)
    first = files(repo)
    run(["dvc", "repro", "--force", "--single-item", "train"], repo)

    assert "Using device: cpu (1 thread), 2 processes" in result.stdout
    assert files(repo) == first
    assert json.loads((repo / "metrics/train.json").read_text())["processes"] == 2
    # DistributedDataParallel averages the processes' gradients: the sums are grouped
    # differently from one process's, within the declared tolerance.
    _, _, outside = largest_difference(recorded(chunked), recorded(repo), load_tolerance())
    assert outside == []


@pytest.mark.parametrize(("data", "batch_size"), [("chunked", 500), ("course", 3)])
def test_mini_batches_over_two_processes_agree_with_one(
    chunked, reproduced, tmp_path, data, batch_size
):
    # The course's 40 train rows in batches of 3: one process takes 1 row of each, the other 2,
    # and in the last batch of 1 row one process has none: it still steps, on a row that
    # weighs nothing.
    numbers = {}
    for processes in (1, 2):
        source = chunked if data == "chunked" else reproduced[0]
        repo = clone_copy(source, tmp_path / f"repo-{processes}")
        set_params(repo, train__processes=processes, train__batch_size=batch_size, train__epochs=5)
        run([sys.executable, "-m", "stages.train"], repo)
        trained = json.loads((repo / "metrics/train.json").read_text())
        assert trained["processes"] == processes
        numbers[processes] = trained["learned"]

    assert numbers[2] == pytest.approx(numbers[1], rel=load_tolerance().relative)


def test_the_course_on_two_processes_splits_its_one_chunk(reproduced, tmp_path):
    repo = clone_copy(reproduced[0], tmp_path / "repo")
    set_params(repo, train__processes=2)

    result = run(["dvc", "repro"], repo)

    _, _, outside = largest_difference(recorded(reproduced[0]), recorded(repo), load_tolerance())
    assert "Using device: cpu (1 thread), 2 processes" in result.stdout
    assert outside == []


def test_two_machines_on_loopback_train_together_and_each_writes_the_model(chunked, tmp_path):
    first, second = (
        clone_copy(chunked, tmp_path / "first"),
        clone_copy(chunked, tmp_path / "second"),
    )
    rendezvous = {
        "PET_NNODES": "2",
        "PET_RDZV_BACKEND": "c10d",
        "PET_RDZV_ENDPOINT": f"127.0.0.1:{free_port()}",
    }
    for repo in (first, second):
        (repo / "models/model.pt").unlink()
    # The second machine runs the stage itself; the first runs it through dvc repro.
    other = start_stage("train", second, env={**tool_env(), **rendezvous})
    result = run(["dvc", "repro", "train"], first, env={**tool_env(), **rendezvous})
    _, errors = other.communicate(timeout=120)

    assert other.returncode == 0, errors
    assert "Using device: cpu (2 threads), 2 processes" in result.stdout
    two_processes = clone_copy(chunked, tmp_path / "two")
    set_params(two_processes, train__processes=2)
    run([sys.executable, "-m", "stages.train"], two_processes)
    # One process on each of two machines: the same model as two processes on one.
    for repo in (first, second):
        model = (repo / "models/model.pt").read_bytes()
        assert model == (two_processes / "models/model.pt").read_bytes()


def test_a_process_that_dies_fails_the_stage_in_one_line_and_writes_nothing(chunked, tmp_path):
    repo = clone_copy(chunked, tmp_path / "repo")
    set_params(repo, train__processes=2, train__epochs=100_000)
    before = files(repo)
    stage = start_stage("train", repo)
    deadline = time.monotonic() + 120
    victim = None
    while victim is None:
        assert time.monotonic() < deadline and stage.poll() is None
        for process in psutil.Process(stage.pid).children(recursive=True):
            try:
                if process.environ().get("RANK") == "1" and process.cpu_times().user > 1:
                    victim = process
            except psutil.Error:
                pass
        time.sleep(0.2)
    os.kill(victim.pid, signal.SIGKILL)
    stdout, stderr = stage.communicate(timeout=120)

    assert_clean_failure(
        subprocess.CompletedProcess(stage.args, stage.returncode, stdout, stderr),
        "train: training process 1 was killed by SIGKILL; the stage wrote nothing",
    )
    assert files(repo) == before
    assert list(repo.rglob("*.tmp")) == []
