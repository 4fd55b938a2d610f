"""The model registry in temporary git repos: release, promote, fetch, predict, refuse."""

import shutil
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import clone_copy, run
from tests.test_bad_inputs import assert_clean_failure, set_params

pytestmark = pytest.mark.slow


def make(target: list[str], repo: Path, check: bool = True):
    return run(["make", "-o", "setup", *target], repo, check=check)


@pytest.fixture(scope="module")
def released(reproduced, tmp_path_factory) -> Path:
    """A copy of the reproduced repository with v1.0.0 released and promoted to prod."""
    repo = clone_copy(reproduced[0], tmp_path_factory.mktemp("registry") / "repo")
    make(["release", "VERSION=v1.0.0"], repo)
    run(["gto", "assign", "linear-regression", "--version", "v1.0.0", "--stage", "prod"], repo)
    return repo


def test_a_release_is_a_gto_version_and_a_promotion_a_stage(released):
    tags = run(["git", "tag"], released).stdout.split()
    shown = run(["gto", "show"], released).stdout

    assert tags == ["linear-regression#prod#1", "linear-regression@v1.0.0"]
    assert "linear-regression" in shown and "v1.0.0" in shown
    assert "prod" in run(["gto", "show", "linear-regression"], released).stdout


def test_a_released_bundle_is_fetched_into_an_empty_folder_from_the_remote(released, tmp_path):
    shutil.rmtree(released / ".dvc/cache")  # what was pushed, not what is cached here
    target = tmp_path / "empty"
    target.mkdir()

    run(
        [
            "dvc",
            "artifacts",
            "get",
            str(released),
            "linear-regression",
            "--stage",
            "prod",
            "-o",
            "bundle",
        ],
        target,
    )

    for name in ("model.pt", "model.pt2", "model_card.json"):
        assert (target / "bundle" / name).read_bytes() == (
            released / "models/export" / name
        ).read_bytes()


@pytest.mark.parametrize("which", [["--version", "v1.0.0"], ["--stage", "prod"]])
def test_predict_uses_a_released_version_or_stage(released, tmp_path, which):
    inputs = tmp_path / "x.csv"
    inputs.write_text("x\n0.5\n")
    # The workspace's model changes; the released one does not.
    (released / "models/export").rename(tmp_path / "moved")
    try:
        run(
            [
                sys.executable,
                "-m",
                "pytorch_workflow.predict",
                str(inputs),
                str(tmp_path / "out.csv"),
                *which,
            ],
            released,
        )
    finally:
        (tmp_path / "moved").rename(released / "models/export")

    predicted = pd.read_csv(tmp_path / "out.csv")["prediction"][0]
    assert predicted == pytest.approx(0.5784404 * 0.5 + 0.3513099, abs=1e-6)


def test_an_unknown_version_is_one_line(released, tmp_path):
    inputs = tmp_path / "x.csv"
    inputs.write_text("x\n0.5\n")

    result = run(
        [
            sys.executable,
            "-m",
            "pytorch_workflow.predict",
            str(inputs),
            str(tmp_path / "out.csv"),
            "--version",
            "v9.9.9",
        ],
        released,
        check=False,
    )

    assert_clean_failure(result, "rev v9.9.9: cannot fetch it from .")


def test_a_dirty_or_stale_commit_is_not_released(reproduced, tmp_path):
    repo = clone_copy(reproduced[0], tmp_path / "repo")
    (repo / "README.md").write_text("changed\n")

    dirty = make(["release", "VERSION=v1.0.1"], repo, check=False)
    run(["git", "checkout", "README.md"], repo)
    set_params(repo, train__epochs=7)
    run(["git", "commit", "-qam", "More epochs, no repro"], repo)
    stale = make(["release", "VERSION=v1.0.1"], repo, check=False)
    wrong = make(["release", "VERSION=1.0"], repo, check=False)

    assert (
        dirty.returncode != 0
        and "uncommitted changes (README.md): commit them first" in dirty.stderr
    )
    assert (
        stale.returncode != 0
        and "the commit is not what `dvc repro` makes (train, export)" in stale.stderr
    )
    assert "VERSION must look like v1.2.3, got '1.0'" in wrong.stderr
    assert run(["git", "tag"], repo).stdout == ""
