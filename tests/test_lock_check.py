"""What lock-check, report and release tell a user to run, from what `dvc status` says."""

import subprocess
from pathlib import Path

import pytest
import yaml

from tools.lock_check import CHECKOUT, Change, changed_params, remedy

# `dvc status` after a `git checkout` without `dvc checkout`, in a project whose CSV `dvc add`
# tracks in the folder the prepare stage depends on.
OWN_DATA_CHECKED_OUT = {
    "prepare": [
        Change("changed deps", "data/raw/mine.csv", "modified"),
        Change("changed deps", "data/raw", "modified"),
    ],
    "data/raw/mine.csv.dvc": [Change("changed outs", "data/raw/mine.csv", "modified")],
}


@pytest.fixture
def project(tmp_path, monkeypatch) -> Path:
    """A git repository with data/raw/ holding a committed CSV and one that git ignores."""
    monkeypatch.chdir(tmp_path)
    raw = tmp_path / "data/raw"
    raw.mkdir(parents=True)
    (raw / "houses.csv").write_text("x,y\n1,2\n")
    (raw / ".gitignore").write_text("/mine.csv\n/my data.csv\n")
    (raw / "mine.csv").write_text("x,y\n3,4\n")
    for command in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "data"]):
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *command], check=True)
    return tmp_path


def test_a_folder_that_differs_only_by_its_tracked_csv_is_a_checkout_away(project):
    assert remedy(OWN_DATA_CHECKED_OUT) == CHECKOUT


def test_a_tracked_csv_whose_name_git_quotes_is_a_checkout_away_too(project):
    (project / "data/raw/mine.csv").rename(project / "data/raw/my data.csv")  # git quotes it
    stale = {
        "prepare": [Change("changed deps", "data/raw", "modified")],
        "data/raw/my data.csv.dvc": [Change("changed outs", "data/raw/my data.csv", "modified")],
    }

    assert remedy(stale) == CHECKOUT


@pytest.mark.parametrize("beside", ["extra.csv", "notes.log"])
def test_another_file_in_the_folder_makes_it_a_rerun(project, beside):
    (project / "data/raw" / beside).write_text("a\n")
    if beside.endswith(".log"):  # one that git ignores, but DVC hashes
        (project / ".gitignore").write_text("*.log\n")

    assert remedy(OWN_DATA_CHECKED_OUT) == "`dvc repro`"


def test_a_changed_command_beside_an_edited_output_is_a_rerun(project):
    stale = {
        "train": [Change("changed outs", "models/model.pt", "modified"), Change("changed command")]
    }

    assert remedy(stale) == "`dvc repro`"


def test_a_param_a_stage_reads_alone_is_named_to_its_key(tmp_path, monkeypatch):
    """dvc.lock records a key that a stage reads out of a section by itself (`split` reads
    `data.standardize`), where `dvc status` names only the section."""
    monkeypatch.chdir(tmp_path)
    recorded = {"data.standardize": False, "data.chunk_rows": 10, "seed": 42, "split": {"a": 1}}
    lock = {"schema": "2.0", "stages": {"split": {"params": {"params.yaml": recorded}}}}
    Path("dvc.lock").write_text(yaml.safe_dump(lock))
    now = {"seed": 42, "data": {"standardize": True, "path": "a.csv"}, "split": {"a": 2}}
    Path("params.yaml").write_text(yaml.safe_dump(now))

    # As `dvc status --json` names them: each changed key once, a deleted one as removed.
    assert changed_params("split", ["data.chunk_rows", "data.standardize", "split"]) == [
        "removed data.chunk_rows",
        "modified data.standardize",
        "modified split.a",
    ]
