"""The workspace's outputs and DVC's cache: editing an output never reaches the committed bytes.

On a file system without reflinks (ext4) a hard link makes the workspace file and its cache
object one file, and root writes through the read-only bit DVC sets on it, so the cache loses the
committed bytes. The committed cache.type copies there instead; hard links are an
opt-in (docs/remotes.md), safe with `dvc unprotect` before an edit.
"""

import hashlib
import json
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from tests.conftest import remote_object, run

pytestmark = pytest.mark.slow

# One output of each kind the stages cache: a model, a table, a file in a directory output.
MODEL, TABLE, EXPORTED = "models/model.pt", "data/dataset.parquet", "models/export/model_card.json"


def md5_of(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def committed_md5s(repo: Path) -> dict[str, str]:
    """The md5 that dvc.lock records for each edited file (for a file in a directory output,
    the one its cached listing records)."""
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    outs = {out["path"]: out["md5"] for stage in lock["stages"].values() for out in stage["outs"]}
    listing = repo / ".dvc/cache" / remote_object(repo, "models/export")
    in_export = {entry["relpath"]: entry["md5"] for entry in json.loads(listing.read_text())}
    return {MODEL: outs[MODEL], TABLE: outs[TABLE], EXPORTED: in_export[Path(EXPORTED).name]}


def overwrite_in_place(repo: Path) -> None:
    """Save over each file as a user's script or editor does: the same file, new bytes."""
    inodes = {name: (repo / name).stat().st_ino for name in (MODEL, TABLE, EXPORTED)}
    torch.save({"weights": torch.tensor([9.0]), "bias": torch.tensor([9.0])}, repo / MODEL)
    pd.DataFrame({"x": [9.0], "y": [9.0]}, dtype="float32").to_parquet(repo / TABLE)
    (repo / EXPORTED).write_text("{}\n")
    # Not a new file renamed into place: then no cache type could be at fault.
    assert {name: (repo / name).stat().st_ino for name in inodes} == inodes


def test_outputs_overwritten_in_place_after_repro_and_checkout_are_reported_and_restored(
    pipeline_repo,
):
    repo = pipeline_repo
    # Copying a repository copies its files: check the outputs out again with the committed
    # cache.type, as `dvc pull` or a checkout of another commit does (with hard links, repro
    # leaves a directory output's files as copies, a checkout links them too).
    run(["dvc", "checkout", "--relink"], repo)
    committed = committed_md5s(repo)
    assert {name: md5_of(repo / name) for name in committed} == committed

    overwrite_in_place(repo)
    status = run(["dvc", "status"], repo).stdout
    run(["dvc", "checkout", "--force"], repo)

    assert all(output in status for output in (MODEL, TABLE, "models/export")), status
    assert {name: md5_of(repo / name) for name in committed} == committed
    assert "up to date" in run(["dvc", "status"], repo).stdout


def test_with_the_hard_link_opt_in_unprotect_before_an_edit_keeps_the_committed_bytes(
    pipeline_repo,
):
    repo = pipeline_repo
    run(["dvc", "config", "--local", "cache.type", "hardlink"], repo)
    run(["dvc", "checkout", "--relink"], repo)
    assert (repo / MODEL).stat().st_nlink > 1  # the workspace file is its cache object
    committed = committed_md5s(repo)

    run(["dvc", "unprotect", MODEL, TABLE, "models/export"], repo)
    overwrite_in_place(repo)
    run(["dvc", "checkout", "--force"], repo)

    assert {name: md5_of(repo / name) for name in committed} == committed
