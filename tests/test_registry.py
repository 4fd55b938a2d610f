"""The model registry in temporary git repos: release, promote, fetch, predict, refuse."""

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import (
    CORRUPTED_BYTES,
    REPO_ROOT,
    clone_copy,
    git_clone,
    make,
    predict,
    remote_object,
    run,
)
from tests.helpers import documented_commands
from tests.test_bad_inputs import assert_clean_failure, set_params

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def released(reproduced, tmp_path_factory) -> Path:
    """A copy of the reproduced repository with v1.0.0 released and promoted to prod."""
    repo = clone_copy(reproduced[0], tmp_path_factory.mktemp("registry") / "repo")
    result = make(["release", "VERSION=v1.0.0"], repo)
    # The committed default remote is this clone's own folder: the release says so.
    assert "note: the DVC remote is .dvc/storage, inside this clone" in result.stderr
    run(["gto", "assign", "linear-regression", "--version", "v1.0.0", "--stage", "prod"], repo)
    return repo


def test_a_release_is_a_gto_version_and_a_promotion_a_stage(released):
    tags = run(["git", "tag"], released).stdout.split()
    shown = run(["gto", "show"], released).stdout

    again = make(["release", "VERSION=v1.0.0"], released, check=False)

    assert tags == ["linear-regression#prod#1", "linear-regression@v1.0.0"]
    assert again.returncode != 0 and "pushed" not in again.stdout
    assert "error: linear-regression@v1.0.0 is already released; give a new VERSION" in (
        again.stderr
    )
    assert "linear-regression" in shown and "v1.0.0" in shown
    assert "prod" in run(["gto", "show", "linear-regression"], released).stdout


def test_a_released_bundle_is_fetched_into_an_empty_folder_from_the_remote(released, tmp_path):
    released = clone_copy(released, tmp_path / "released")
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


def test_an_unknown_version_is_one_line(released, tmp_path):
    inputs = tmp_path / "x.csv"
    inputs.write_text("x\n0.5\n")

    result = predict(released, inputs, tmp_path / "out.csv", "--version", "v9.9.9")

    assert_clean_failure(
        result, "--version v9.9.9: cannot fetch it from .: no such release here (`gto show`"
    )


def test_a_release_in_another_clones_own_remote_is_named_as_such(released, tmp_path):
    clone = git_clone(released, tmp_path / "clone")  # the tags, not the releaser's .dvc/storage
    inputs = tmp_path / "x.csv"
    inputs.write_text("x\n0.5\n")

    result = predict(clone, inputs, tmp_path / "out.csv", "--version", "v1.0.0")

    assert_clean_failure(
        result,
        "error: --version v1.0.0: cannot fetch it from .: ",
        "(the release went to the DVC remote inside the clone that made it: share releases "
        "through a shared remote, docs/remotes.md)",
    )


def test_a_stage_is_fetched_as_the_version_it_holds_and_predict_says_which(released, tmp_path):
    inputs = tmp_path / "x.csv"
    inputs.write_text("x\n0.5\n")

    staged = predict(released, inputs, tmp_path / "out.csv", "--stage", "prod", check=True)
    unknown = predict(released, inputs, tmp_path / "dev.csv", "--stage", "dev")
    nowhere = tmp_path / "nowhere"
    unreadable = predict(
        released, inputs, tmp_path / "x2.csv", "--stage", "prod", "--registry", nowhere
    )

    assert "Fetched linear-regression@v1.0.0, the prod stage, from .\n" in staged.stdout
    assert_clean_failure(
        unknown, "--stage dev: cannot fetch it from .: no such release here (`gto show`"
    )
    assert_clean_failure(
        unreadable, f"--stage prod: cannot read {nowhere}'s tags: ", f"repo '{nowhere}' to '"
    )
    assert "gto/issues" not in unreadable.stderr  # GTO's error, not its bug-report footer


def test_a_version_on_a_released_commit_or_on_the_teams_server_is_refused_before_a_push(
    released, tmp_path
):
    repo = clone_copy(released, tmp_path / "repo")
    same_commit = make(["release", "VERSION=v1.0.1"], repo, check=False)
    # The team's server has v1.1.0, released from another clone; this clone lacks the tag.
    server = tmp_path / "server.git"
    run(["git", "clone", "-q", "--bare", str(repo), str(server)], tmp_path)
    run(["git", "tag", "linear-regression@v1.1.0", "main"], server)
    run(["git", "remote", "add", "origin", str(server)], repo)
    (repo / "NOTES.md").write_text("A commit of its own\n")
    run(["git", "add", "NOTES.md"], repo)
    run(["git", "commit", "-qm", "Notes"], repo)
    on_server = make(["release", "VERSION=v1.1.0"], repo, check=False)
    # ... and v1.2.0 of this very commit, an annotated tag as GTO makes them.
    run(["git", "push", "-q", "origin", "main"], repo)
    run(["git", "tag", "-a", "-m", "Registered", "linear-regression@v1.2.0", "main"], server)
    this_commit_on_server = make(["release", "VERSION=v1.3.0"], repo, check=False)

    assert_clean_failure(
        same_commit,
        "error: this commit is already released as linear-regression@v1.0.0: GTO registers one",
    )
    assert_clean_failure(
        on_server,
        "error: linear-regression@v1.1.0 is already released on origin (this clone lacks its "
        "tag): `git fetch --tags`, then give a new VERSION",
    )
    assert_clean_failure(
        this_commit_on_server,
        "error: this commit is already released as linear-regression@v1.2.0: GTO registers one",
    )
    for refused in (same_commit, on_server, this_commit_on_server):
        assert "pushed" not in refused.stdout
    assert run(["git", "tag"], repo).stdout.split() == [
        "linear-regression#prod#1",
        "linear-regression@v1.0.0",
    ]


def test_a_release_damaged_in_the_remote_is_named_by_its_version(released, tmp_path):
    repo = clone_copy(released, tmp_path / "repo")
    shutil.rmtree(repo / ".dvc/cache", ignore_errors=True)  # fetched from the remote
    storage = repo / ".dvc/storage"
    manifest = json.loads((storage / remote_object(repo, "models/export")).read_text())
    md5 = next(entry["md5"] for entry in manifest if entry["relpath"] == "model.pt")
    (storage / "files/md5" / md5[:2] / md5[2:]).write_bytes(CORRUPTED_BYTES)
    inputs = tmp_path / "x.csv"
    inputs.write_text("x\n0.5\n")

    result = predict(repo, inputs, tmp_path / "out.csv", "--version", "v1.0.0")

    assert_clean_failure(
        result, "error: the release v1.0.0: model.pt: its sha256 is not the one model_card.json"
    )
    assert "predict-" not in result.stderr  # not the temporary folder, gone by now
    assert not (tmp_path / "out.csv").exists()


def test_the_registry_page_releases_shares_and_fetches_through_a_git_server(
    pipeline_repo, tmp_path
):
    """docs/registry.md's commands in order, with a bare repository as the team's git server and
    a folder as the team's DVC remote (committed, as a team would)."""
    repo = pipeline_repo
    server = tmp_path / "server.git"
    run(["git", "init", "-q", "--bare", "-b", "main", str(server)], tmp_path)
    run(["dvc", "remote", "modify", "local", "url", str(tmp_path / "dvc-remote")], repo)
    run(["git", "commit", "-qm", "The team's DVC remote", ".dvc/config"], repo)
    run(["git", "remote", "add", "origin", str(server)], repo)
    run(["git", "push", "-q", "origin", "main"], repo)
    (repo / "new_x.csv").write_text("x\n0.5\n")
    released = shutil.copytree(repo / "models/export", tmp_path / "released")

    for command in documented_commands(REPO_ROOT / "docs/registry.md"):
        typed = command.replace("make ", "make -o setup ").replace(
            "https://github.com/ORG/REPO", str(server)
        )
        if "pytorch_workflow.predict" in typed:
            shutil.rmtree(repo / "models/export", ignore_errors=True)  # use what it fetches
        result = run(["sh", "-c", typed], repo, check=False)
        assert result.returncode == 0, f"{typed}\n{result.stdout}{result.stderr}"
        assert "note: the DVC remote" not in result.stderr  # the team's, outside the clone

    run(["git", "clone", "-q", str(server), "another"], tmp_path)
    assert "prod" in run(["gto", "show", "linear-regression"], tmp_path / "another").stdout
    for folder in ("released", "production"):
        for name in ("model.pt", "model.pt2", "model_card.json"):
            assert (repo / folder / name).read_bytes() == (released / name).read_bytes()
    predicted = pd.read_csv(repo / "predictions.csv")["prediction"][0]
    assert predicted == pytest.approx(0.5784404 * 0.5 + 0.3513099, abs=1e-6)


def test_a_dirty_or_stale_commit_is_not_released(pipeline_repo):
    repo = pipeline_repo
    (repo / "README.md").write_text("changed\n")

    dirty = make(["release", "VERSION=v1.0.1"], repo, check=False)
    run(["git", "checkout", "README.md"], repo)
    set_params(repo, train__epochs=7)
    run(["git", "commit", "-qam", "More epochs, no repro"], repo)
    stale = make(["release", "VERSION=v1.0.1"], repo, check=False)
    wrong = make(["release", "VERSION=1.0"], repo, check=False)
    leading_zero = make(["release", "VERSION=v01.0.0"], repo, check=False)

    assert (
        dirty.returncode != 0
        and "uncommitted changes (README.md): commit them first" in dirty.stderr
    )
    assert (
        stale.returncode != 0
        and "the commit is not what `dvc repro` makes (stage 'train': " in stale.stderr
        and "params.yaml (modified train.epochs)" in stale.stderr
    )
    for refused in (wrong, leading_zero):  # before anything is pushed
        assert "VERSION must be a semantic version after a v" in refused.stderr
        assert "pushed" not in refused.stdout
    assert run(["git", "tag"], repo).stdout == ""
