"""Bigger data: a million rows through the real pipeline, and stages that stay light."""

import json
import sys

import pandas as pd
import pytest

from tests.conftest import run
from tests.test_bad_inputs import set_params

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("stage", ["prepare", "split"])
def test_data_stages_never_import_torch_or_matplotlib(fresh_repo, stage):
    probe = (
        f"import sys, runpy; runpy.run_module('stages.{stage}', run_name='not_main')\n"
        "print(' '.join(sorted(m for m in ('torch', 'matplotlib') if m in sys.modules)))"
    )

    imported = run([sys.executable, "-c", probe], fresh_repo).stdout.split()

    assert imported == []


def test_training_stage_imports_matplotlib_only_where_it_draws(fresh_repo):
    probe = (
        "import sys, runpy; runpy.run_module('stages.train', run_name='not_main')\n"
        "print('matplotlib' in sys.modules, 'torch' in sys.modules)"
    )

    assert run([sys.executable, "-c", probe], fresh_repo).stdout.split() == ["False", "True"]


def test_a_million_rows_run_end_to_end_with_small_plot_tables(pipeline_repo):
    set_params(pipeline_repo, data__step=1e-6, train__batch_size=100_000, split__shuffle=True)

    run(["dvc", "repro"], pipeline_repo)

    assert len(pd.read_parquet(pipeline_repo / "data/dataset.parquet")) == 1_000_000
    assert len(pd.read_parquet(pipeline_repo / "data/test_predictions.parquet")) == 200_000
    predictions = pd.read_csv(pipeline_repo / "plots/predictions.csv")
    assert len(predictions) == 2000
    losses = pd.read_csv(pipeline_repo / "plots/loss.csv")
    assert len(losses) == 100
    metrics = json.loads((pipeline_repo / "metrics/evaluate.json").read_text())
    # Mini-batches make many more steps per epoch than the course's single one.
    assert metrics["mae"] < 0.01
    card = json.loads((pipeline_repo / "models/export/model_card.json").read_text())
    assert (pipeline_repo / "models/export/model.pt2").stat().st_size < 100_000
    assert card["params"]["data"]["step"] == 1e-6
