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

from tests.conftest import clone_copy, run, tool_env
from tests.test_bad_inputs import assert_clean_failure, set_params

pytestmark = pytest.mark.slow

# 8,000 train rows in 8 chunks: enough for each process to have chunks of its own.
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


def test_two_processes_write_the_bytes_of_one_and_the_same_bytes_again(chunked, tmp_path):
    repo = clone_copy(chunked, tmp_path / "repo")
    set_params(repo, train__processes=2)

    result = run(["dvc", "repro"], repo)
    first = files(repo)
    run(["dvc", "repro", "--force", "--single-item", "train"], repo)

    assert "Using device: cpu, 2 processes" in result.stdout
    assert first == files(chunked)  # the chunks' gradients are added in chunk order
    assert files(repo) == first
    assert json.loads((repo / "metrics/train.json").read_text())["processes"] == 2


def test_mini_batches_over_two_processes_agree_with_one_within_float_precision(chunked, tmp_path):
    learned = {}
    for processes in (1, 2):
        repo = clone_copy(chunked, tmp_path / f"repo-{processes}")
        set_params(repo, train__processes=processes, train__batch_size=500, train__epochs=5)
        run([sys.executable, "-m", "stages.train"], repo)
        trained = json.loads((repo / "metrics/train.json").read_text())
        assert trained["processes"] == processes
        learned[processes] = trained["learned"]

    # Each process takes a slice of every mini-batch: the sums may be grouped differently.
    assert learned[2] == pytest.approx(learned[1], rel=1e-4)


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
    other = subprocess.Popen(
        [sys.executable, "-m", "stages.train"],
        cwd=second,
        env={**tool_env(), **rendezvous},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    result = run(["dvc", "repro", "train"], first, env={**tool_env(), **rendezvous})
    _, errors = other.communicate(timeout=120)

    assert other.returncode == 0, errors
    assert "Using device: cpu, 2 processes" in result.stdout
    for repo in (first, second):
        assert (repo / "models/model.pt").read_bytes() == (chunked / "models/model.pt").read_bytes()


def test_a_process_that_dies_fails_the_stage_in_one_line_and_writes_nothing(chunked, tmp_path):
    repo = clone_copy(chunked, tmp_path / "repo")
    set_params(repo, train__processes=2, train__epochs=100_000)
    before = files(repo)
    stage = subprocess.Popen(
        [sys.executable, "-m", "stages.train"],
        cwd=repo,
        env=tool_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
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
