"""The default remote: a git-ignored folder in .dvc/, so push and pull work with no set-up."""

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import (
    CORRUPTED_BYTES,
    assert_pull_refused_the_corrupted_model,
    clone_copy,
    git_clone,
    remote_object,
    run,
    workspace_files,
)
from tests.test_workflow import PULL_COMMAND

pytestmark = pytest.mark.slow

STORAGE = ".dvc/storage"


@pytest.fixture(scope="module")
def pushed(reproduced, tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """A reproduced copy after a bare `dvc push`, and what the push printed. Do not modify."""
    repo = clone_copy(reproduced[0], tmp_path_factory.mktemp("pushed") / "repo")
    return repo, run(["dvc", "push"], repo)


def share_storage_of(source: Path, clone: Path) -> None:
    """Point a clone's default remote at another clone's folder, as the README says."""
    run(["dvc", "remote", "modify", "--local", "local", "url", str(source / STORAGE)], clone)


def test_push_with_no_setup_fills_an_ignored_folder_that_pull_restores_from(pushed, tmp_path):
    source, push = pushed
    repo = clone_copy(source, tmp_path / "repo")
    before = workspace_files(repo)

    assert "files pushed" in push.stdout
    assert any((repo / STORAGE / "files/md5").rglob("*"))
    assert run(["git", "status", "--porcelain", "--untracked-files=all"], repo).stdout == ""

    # Every file DVC tracks (git ignores them) and the cache: what a fresh clone lacks.
    tracked_by_dvc = run(
        ["git", "ls-files", "--others", "--ignored", "--exclude-standard", "data", "models"], repo
    ).stdout.split()
    for name in tracked_by_dvc:
        (repo / name).unlink()
    shutil.rmtree(repo / ".dvc/cache")
    run(["dvc", "pull"], repo)

    assert "models/model.pt" in tracked_by_dvc
    assert workspace_files(repo) == before
    assert "up to date" in run(["dvc", "status"], repo).stdout


def test_fresh_clone_pulls_byte_identical_outputs_from_a_shared_folder(pushed, tmp_path):
    source, _ = pushed
    clone = git_clone(source, tmp_path / "clone")
    share_storage_of(source, clone)

    run(["dvc", "pull"], clone)

    assert workspace_files(clone) == workspace_files(source)
    assert "up to date" in run(["dvc", "status"], clone).stdout
    repro = run(["dvc", "repro"], clone)
    assert "Running stage" not in repro.stdout
    assert "Data and pipelines are up to date" in repro.stdout
    assert run(["git", "status", "--porcelain"], clone).stdout == ""


def test_object_corrupted_in_the_local_remote_never_reaches_the_workspace(pushed, tmp_path):
    source = clone_copy(pushed[0], tmp_path / "source")
    damaged = source / STORAGE / remote_object(source, "models/model.pt")
    damaged.chmod(0o644)  # DVC stores objects read-only
    damaged.write_bytes(CORRUPTED_BYTES)
    clone = git_clone(source, tmp_path / "clone")
    share_storage_of(source, clone)

    pull = run(["dvc", "pull"], clone, check=False)

    assert_pull_refused_the_corrupted_model(pull, clone, source)


def test_the_ci_pull_brings_the_raw_data_and_no_output_the_stages_make(pushed, tmp_path):
    source = clone_copy(pushed[0], tmp_path / "source")
    (source / "data/raw/my.csv").write_text("x,y\n0,1\n")
    run(["dvc", "add", "data/raw/my.csv"], source)
    run(["git", "add", "data/raw/my.csv.dvc", "data/raw/.gitignore"], source)
    run(["git", "commit", "-q", "-m", "A CSV of my own"], source)
    run(["dvc", "push"], source)
    clone = git_clone(source, tmp_path / "clone")
    share_storage_of(source, clone)

    run(["sh", "-c", PULL_COMMAND], clone)

    assert (clone / "data/raw/my.csv").read_text() == "x,y\n0,1\n"
    assert not (clone / "models/model.pt").exists()
    assert not (clone / "data/dataset.parquet").exists()
