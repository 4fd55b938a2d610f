"""The course's training loop (engine) on real Parquet chunks, without DVC."""

import numpy as np
import pytest
import torch

from pytorch_workflow import engine
from pytorch_workflow.data_setup import Features
from pytorch_workflow.errors import UserError
from pytorch_workflow.model_builder import build_model
from tests.conftest import COURSE_LOG
from tests.helpers import course_split, data_params, table_file, train_params

torch.set_num_threads(1)
CPU = torch.device("cpu")


def tensors(train, test, features):
    return engine.SplitTensors(train, features, CPU), engine.SplitTensors(test, features, CPU)


def test_training_logs_the_course_lines_to_the_digit(tmp_path):
    train, test = tensors(*course_split(tmp_path))
    model = build_model("linear_regression", seed=42)
    lines: list[str] = []

    history = engine.train(model, train, test, train_params(), log=lines.append)

    assert lines == COURSE_LOG
    assert len(history) == 100
    assert model.weights.item() == pytest.approx(0.5784, abs=1e-4)
    assert model.bias.item() == pytest.approx(0.3513, abs=1e-4)


def test_the_full_batch_step_over_many_chunks_is_the_step_over_one(tmp_path):
    noisy = data_params(step=1e-4, noise_std=0.1)
    one = tensors(*course_split(tmp_path / "one", noisy))
    many = tensors(
        *course_split(tmp_path / "many", data_params(step=1e-4, noise_std=0.1, chunk_rows=997))
    )
    models = [build_model("linear_regression", seed=42) for _ in range(2)]
    params = train_params(epochs=30, loss="mse", lr=0.1)

    histories = [
        engine.train(m, *data, params, log=lambda _: None)
        for m, data in zip(models, (one, many), strict=True)
    ]

    assert many[0].num_chunks == 9
    for a, b in zip(*histories, strict=True):
        assert a.train_loss == pytest.approx(b.train_loss, rel=1e-5)
    for a, b in zip(models[0].parameters(), models[1].parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_mini_batches_covering_every_row_match_the_full_batch_loop(tmp_path):
    data = tensors(*course_split(tmp_path))
    full, batched = (
        build_model("linear_regression", seed=42),
        build_model("linear_regression", seed=42),
    )

    full_history = engine.train(full, *data, train_params(), log=lambda line: None)
    batched_history = engine.train(
        batched, *data, train_params(batch_size=1000), lambda line: None, 3
    )

    assert batched_history == full_history
    assert torch.equal(batched.weights, full.weights) and torch.equal(batched.bias, full.bias)


def test_shuffled_mini_batches_are_seeded(tmp_path):
    data = tensors(*course_split(tmp_path))
    params = train_params(epochs=20, batch_size=8)

    def run(seed):
        return engine.train(
            build_model("linear_regression", seed=42), *data, params, lambda _: None, seed
        )

    assert run(1) == run(1)
    assert run(1) != run(2)
    assert run(None) != run(1)  # in order, not shuffled


@pytest.mark.parametrize("optimizer", ["adam", "lbfgs"])
def test_other_optimizers_fit_a_noisy_line(tmp_path, optimizer):
    data = tensors(*course_split(tmp_path, data_params(step=1e-3, noise_std=0.01)))
    model = build_model("linear_regression", seed=42)
    params = train_params(
        epochs=300 if optimizer == "adam" else 20,
        loss="mse",
        lr=0.05 if optimizer == "adam" else 1.0,
        optimizer=optimizer,
    )

    engine.train(model, *data, params, log=lambda _: None)

    assert model.weights.item() == pytest.approx(0.7, abs=0.02)
    assert model.bias.item() == pytest.approx(0.3, abs=0.02)


def test_diverging_training_stops_with_the_epoch_and_a_hint(tmp_path):
    data = tensors(*course_split(tmp_path))
    params = train_params(epochs=500, lr=1e6, loss="mse")

    with pytest.raises(UserError, match=r"at epoch \d+ .*try a smaller train.lr"):
        engine.train(build_model("linear_regression", 42), *data, params, print)


@pytest.mark.parametrize("budget", ["nan", "inf", "lots"])
def test_a_cache_budget_that_is_not_a_number_is_one_line(monkeypatch, budget):
    monkeypatch.setenv(engine.CACHE_ENV, budget)

    with pytest.raises(UserError, match=f"{engine.CACHE_ENV}='{budget}': expected a number"):
        engine.CacheBudget()


def test_splits_larger_than_the_cache_are_read_again_each_epoch(tmp_path, monkeypatch):
    monkeypatch.setenv(engine.CACHE_ENV, "0.00025")  # 262 bytes: one chunk of 30 rows (240)
    rows = np.arange(100, dtype=np.float32)
    table = table_file(tmp_path / "t.parquet", {"x": rows, "y": rows}, chunk_rows=30)
    data = engine.SplitTensors(table, Features(("x",), "y"), CPU)

    first, second = data.chunk(0), data.chunk(1)

    assert data.chunk(0)[0] is first[0]  # kept
    assert data.chunk(1)[0] is not second[0] and torch.equal(data.chunk(1)[0], second[0])
    assert [index for index, _, _ in data.mine()] == [0, 1, 2, 3]
