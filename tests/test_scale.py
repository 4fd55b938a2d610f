"""Bigger data: streamed stages with bounded memory, and stages that stay light."""

import json
import subprocess
import sys

import pandas as pd
import pytest

from tests.conftest import imported, run, tool_env
from tests.helpers import split_side
from tests.test_bad_inputs import set_params

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("stage", ["prepare", "split"])
def test_data_stages_never_import_torch_or_matplotlib(fresh_repo, stage):
    code = f"import runpy; runpy.run_module('stages.{stage}', run_name='not_main')"

    assert imported(code, ("torch", "matplotlib"), fresh_repo) == []


def test_the_training_stage_imports_matplotlib_only_where_it_draws(fresh_repo):
    code = "import runpy; runpy.run_module('stages.train', run_name='not_main')"

    assert imported(code, ("matplotlib", "torch"), fresh_repo) == ["torch"]


def test_a_million_rows_in_small_chunks_run_end_to_end_with_small_plot_tables(pipeline_repo):
    set_params(
        pipeline_repo,
        data__step=1e-6,
        data__chunk_rows=100_000,
        train__batch_size=20_000,
        train__lr=0.05,
        train__epochs=5,
        # The L1 loss's steps do not shrink near the optimum: the learning rate does.
        train__scheduler="steplr",
        train__scheduler_options={"step_size": 1, "gamma": 0.3},
        split__shuffle=True,
    )

    run(["dvc", "repro"], pipeline_repo)

    sides = {side: split_side(pipeline_repo, side) for side in ("train", "test")}
    assert (len(sides["train"]), len(sides["test"])) == (800_000, 200_000)
    assert len(pd.read_csv(pipeline_repo / "plots/predictions.csv")) == 2000
    assert len(pd.read_csv(pipeline_repo / "plots/loss.csv")) == 5
    # Mini-batches make many more steps per epoch than the course's single one.
    assert json.loads((pipeline_repo / "metrics/evaluate.json").read_text())["mae"] < 0.01
    assert (pipeline_repo / "models/export/model.pt2").stat().st_size < 100_000


@pytest.fixture(scope="module")
def five_million_rows(reproduced, tmp_path_factory):
    """The course's line at 5 million rows, in 100,000-row chunks and in one chunk; and the
    course's 50 rows (key 50), for what a stage needs with no data to speak of."""
    from tests.conftest import clone_copy

    repos = {50: clone_copy(reproduced[0], tmp_path_factory.mktemp("rows-50") / "repo")}
    for chunk_rows in (100_000, 5_000_000):
        repo = clone_copy(reproduced[0], tmp_path_factory.mktemp(f"rows-{chunk_rows}") / "repo")
        set_params(repo, data__step=2e-7, data__chunk_rows=chunk_rows, train__epochs=2)
        run(["dvc", "repro", "split"], repo)
        repos[chunk_rows] = repo
    return repos


@pytest.mark.parametrize("stage", ["train", "evaluate"])
def test_memory_follows_the_chunk_size_not_the_number_of_rows(five_million_rows, stage):
    # Measured in a child of a fresh interpreter each, so earlier, larger processes don't count.
    measure = (
        "import resource, subprocess, sys\n"
        "subprocess.run([sys.executable, '-m', 'stages."
        + stage
        + "'], check=True, capture_output=True)\n"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
    )
    if stage == "evaluate":
        for repo in five_million_rows.values():
            run(["dvc", "repro", "train"], repo)  # nothing to do for the course's copy
    peaks = {}
    for chunk_rows, repo in five_million_rows.items():
        env = {**tool_env(), "PYTORCH_WORKFLOW_CACHE_MB": "0"}
        shown = subprocess.run(
            [sys.executable, "-c", measure],
            cwd=repo,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        peaks[chunk_rows] = int(shown.stdout) * 1024 / 1e6  # MB
    floor = peaks.pop(50)  # torch and the rest, imported: what the stage needs with no data
    # The whole table in one chunk takes at least 5M rows x 2 columns x 4 bytes = 40 MB, and
    # its temporaries several times that; 100,000-row chunks take a fiftieth.
    assert peaks[100_000] - floor < 0.4 * (peaks[5_000_000] - floor), peaks
