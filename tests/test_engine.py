"""The course's training loop (engine) on real Parquet chunks, without DVC."""

import sys
import types

import numpy as np
import pytest
import torch

from pytorch_workflow import engine
from pytorch_workflow.data_setup import Features, read_split, split_dataset
from pytorch_workflow.dataloaders import CACHE_ENV, CacheBudget, SplitDataset, create_dataloaders
from pytorch_workflow.errors import UserError
from pytorch_workflow.model_builder import build_model
from pytorch_workflow.tables import ParquetTable
from tests.conftest import COURSE_LOG
from tests.helpers import course_split, data_params, split_params, table_file, train_params

torch.set_num_threads(1)
CPU = torch.device("cpu")


def loaders(train, test, features, batch_size=None, shuffle_seed=None):
    return create_dataloaders(train, test, features, CPU, batch_size, shuffle_seed)


def quiet(_line: str) -> None:
    pass


def test_training_logs_the_course_lines_to_the_digit(tmp_path):
    train, test = loaders(*course_split(tmp_path))
    model = build_model("linear_regression", seed=42)
    lines: list[str] = []

    history = engine.train(model, train, test, train_params(), log=lines.append)

    assert lines == COURSE_LOG
    assert len(history) == 100
    assert model.weights.item() == 0.5784404277801514
    assert model.bias.item() == 0.3513098657131195


def test_the_loop_is_the_course_loop_written_out(tmp_path):
    """The engine's losses are bit for bit those of the course's loop on the same tensors."""
    train, test = loaders(*course_split(tmp_path))
    X_train, y_train = train.dataset.chunk(0)
    X_test, y_test = test.dataset.chunk(0)
    model = build_model("linear_regression", seed=42)
    loss_fn = torch.nn.L1Loss()
    optimizer = torch.optim.SGD(params=model.parameters(), lr=0.01)
    course = []
    for _ in range(20):
        model.train()
        y_pred = model(X_train)
        loss = loss_fn(y_pred, y_train)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        model.eval()
        with torch.inference_mode():
            course.append((loss.item(), loss_fn(model(X_test), y_test).item()))

    history = engine.train(
        build_model("linear_regression", seed=42), train, test, train_params(epochs=20), quiet
    )

    assert [(h.train_loss, h.test_loss) for h in history] == course


def test_the_full_batch_step_over_many_chunks_is_the_step_over_one(tmp_path):
    one = loaders(*course_split(tmp_path / "one", data_params(step=1e-4, noise_std=0.1)))
    many = loaders(
        *course_split(tmp_path / "many", data_params(step=1e-4, noise_std=0.1, chunk_rows=997))
    )
    models = [build_model("linear_regression", seed=42) for _ in range(2)]
    params = train_params(epochs=30, loss="mse", lr=0.1)

    histories = [
        engine.train(m, *data, params, log=quiet)
        for m, data in zip(models, (one, many), strict=True)
    ]

    assert many[0].dataset.table.num_chunks == 9
    for a, b in zip(*histories, strict=True):
        assert a.train_loss == pytest.approx(b.train_loss, rel=1e-5)
    for a, b in zip(models[0].parameters(), models[1].parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_a_batch_covering_every_row_is_the_full_batch_loop(tmp_path):
    split = course_split(tmp_path)
    full, batched = (build_model("linear_regression", seed=42) for _ in range(2))

    full_history = engine.train(full, *loaders(*split), train_params(), log=quiet)
    batched_history = engine.train(
        batched, *loaders(*split, batch_size=1000, shuffle_seed=3), train_params(), quiet
    )

    assert batched_history == full_history
    assert torch.equal(batched.weights, full.weights) and torch.equal(batched.bias, full.bias)


def test_shuffled_mini_batches_are_seeded(tmp_path):
    split = course_split(tmp_path)
    params = train_params(epochs=20, batch_size=8)

    def run(seed):
        data = loaders(*split, batch_size=8, shuffle_seed=seed)
        return engine.train(build_model("linear_regression", seed=42), *data, params, quiet)

    assert run(1) == run(1)
    assert run(1) != run(2)
    assert run(None) != run(1)  # in order, not shuffled


def test_a_shuffled_splits_uneven_chunks_give_every_row_once_to_one_of_two_processes(tmp_path):
    rows = np.arange(100, dtype=np.float32)
    table_file(tmp_path / "dataset.parquet", {"x": rows, "y": rows}, chunk_rows=30)
    dataset = ParquetTable(tmp_path / "dataset.parquet")
    split_dataset(dataset, split_params(shuffle=True), "regression", 7, tmp_path / "split.parquet")
    train, _ = read_split(tmp_path / "dataset.parquet", tmp_path / "split.parquet")
    assert len(set(np.diff(train.offsets).tolist())) > 1  # chunks of several sizes

    seen, shares = [], []
    for rank in (0, 1):
        data = SplitDataset(train, Features(("x",), "y"), CPU, CacheBudget())
        data.rank, data.world_size = rank, 2  # as under torchrun with two processes
        pieces = list(data)
        seen += [b.y for b in pieces if b.share]
        shares.append([b.share for b in pieces])

    assert sorted(torch.cat(seen).reshape(-1).tolist()) == sorted(
        np.concatenate([chunk["y"] for chunk in train]).tolist()
    )
    # Both processes step on every piece, each weighing its rows' share of the whole step; over
    # the two processes (whose gradients DistributedDataParallel averages) the shares add up to 2.
    assert len(shares[0]) == len(shares[1]) == train.num_chunks
    assert sum(shares[0]) + sum(shares[1]) == pytest.approx(2.0)


def test_mini_batches_cover_every_row_once_across_chunks(tmp_path):
    rows = np.arange(100, dtype=np.float32)
    table = table_file(tmp_path / "t.parquet", {"x": rows, "y": rows}, chunk_rows=30)
    dataset = SplitDataset(table, Features(("x",), "y"), CPU, CacheBudget(), 16, shuffle_seed=7)

    batches = list(dataset)

    assert [len(b.X) for b in batches] == [16] * 6 + [4]
    assert sorted(torch.cat([b.y for b in batches]).reshape(-1).tolist()) == rows.tolist()
    assert all(b.share == 1.0 for b in batches)


@pytest.mark.parametrize(
    ("optimizer", "options", "lr", "epochs"),
    [
        ("adam", {}, 0.05, 300),
        ("AdamW", {"weight_decay": 0.0}, 0.05, 300),
        ("sgd", {"momentum": 0.9}, 0.05, 300),
        ("rmsprop", {}, 0.01, 300),
        ("lbfgs", {}, 1.0, 5),
    ],
)
def test_torch_optimizers_by_name_fit_a_noisy_line(tmp_path, optimizer, options, lr, epochs):
    data = loaders(*course_split(tmp_path, data_params(step=1e-3, noise_std=0.01)))
    model = build_model("linear_regression", seed=42)
    params = train_params(
        epochs=epochs, loss="mse", lr=lr, optimizer=optimizer, optimizer_options=options
    )

    engine.train(model, *data, params, log=quiet)

    assert model.weights.item() == pytest.approx(0.7, abs=0.02)
    assert model.bias.item() == pytest.approx(0.3, abs=0.02)


def test_a_scheduler_changes_the_learning_rate_each_epoch(tmp_path):
    data = loaders(*course_split(tmp_path))
    model = build_model("linear_regression", seed=42)
    params = train_params(epochs=10, scheduler="StepLR", scheduler_options={"step_size": 1})
    optimizer = engine.make_optimizer(params, model.parameters())
    scheduler = engine.make_scheduler(params, optimizer)

    history = engine.train(model, *data, params, log=quiet)
    plain = engine.train(build_model("linear_regression", seed=42), *data, train_params(), quiet)

    assert isinstance(optimizer, torch.optim.SGD)
    assert isinstance(scheduler, torch.optim.lr_scheduler.StepLR)
    assert history[0].train_loss == plain[0].train_loss
    assert history[5].train_loss != plain[5].train_loss
    # The rate each epoch stepped with, StepLR's 0.1 a step; none recorded without a scheduler.
    assert [h.lr for h in history[:3]] == pytest.approx([0.01, 0.001, 0.0001])
    assert {h.lr for h in plain} == {None}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"optimizer_options": {"momentun": 0.9}},
            "train.optimizer_options: SGD has no option 'momentun'; did you mean momentum?",
        ),
        ({"optimizer": "adamx"}, "train.optimizer: no class 'adamx' in torch.optim; did you mean"),
        ({"optimizer_options": {"lr": 0.1}}, "train.optimizer_options.lr: the pipeline sets lr"),
        ({"optimizer_options": {"momentum": -1}}, "train.optimizer_options: SGD refused"),
        ({"scheduler": "cosine"}, "train.scheduler: no class 'cosine'"),
        (
            {"scheduler": "CosineAnnealingLR"},
            "train.scheduler_options: CosineAnnealingLR failed with no options: ",
        ),
        (  # a number without a default to read it by: its annotation says so
            {"scheduler": "CosineAnnealingLR", "scheduler_options": {"T_max": "abc"}},
            "train.scheduler_options.T_max: CosineAnnealingLR takes a number, got 'abc'",
        ),
        (
            {"scheduler": "StepLR", "scheduler_options": {"step_size": 2.5}},
            "train.scheduler_options.step_size: StepLR takes a whole number, got 2.5",
        ),
        (  # an int or None
            {"scheduler": "OneCycleLR", "scheduler_options": {"max_lr": 1, "total_steps": 2.5}},
            "train.scheduler_options.total_steps: OneCycleLR takes a whole number, got 2.5",
        ),
    ],
)
def test_optimizer_and_scheduler_mistakes_are_one_line(changes, message):
    params = train_params(**changes)
    model = build_model("linear_regression", seed=42)

    with pytest.raises(UserError) as error:
        engine.make_scheduler(params, engine.make_optimizer(params, model.parameters()))

    assert message in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize(
    ("loss", "options", "buffers"),
    [
        ("bce", {"pos_weight": 3}, {"pos_weight": 3.0}),
        ("bce", {"pos_weight": "2.5"}, {"pos_weight": 2.5}),  # as DVC writes some numbers
        ("bce", {"pos_weight": [3]}, {"pos_weight": 3.0}),  # torch's one-per-output form
        ("cross_entropy", {"weight": [1, "2", 4], "label_smoothing": 0.1}, {"weight": [1, 2, 4]}),
        ("huber", {"delta": 0.5}, {}),
    ],
)
def test_loss_options_are_the_torch_nn_losss_own_with_weights_as_float_tensors(
    loss, options, buffers
):
    loss_fn = engine.make_loss(train_params(loss=loss, loss_options=options), CPU)

    assert {name: value.tolist() for name, value in loss_fn.named_buffers()} == buffers
    assert all(value.dtype == torch.float32 for value in loss_fn.buffers())
    assert loss_fn.reduction == "mean"
    for name, value in options.items():
        if name not in buffers:
            assert getattr(loss_fn, name) == value


def test_torch_still_trains_with_a_negative_label_smoothing_as_with_none():
    """The upstream bug that `refuse_negative_label_smoothing` works around
    (pytorch/pytorch#134767): once torch refuses -0.1 itself, that function can go."""
    logits, classes = torch.tensor([[2.0, 0.5, -1.0]]), torch.tensor([0])
    negative = torch.nn.CrossEntropyLoss(label_smoothing=-0.1)(logits, classes)

    assert negative == torch.nn.CrossEntropyLoss()(logits, classes)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"loss": "cross_entropy", "loss_options": {"label_smothing": 0.1}},
            "train.loss_options: CrossEntropyLoss has no option 'label_smothing'; "
            "did you mean label_smoothing?",
        ),
        ({"loss_options": {"reduction": "sum"}}, "train.loss_options.reduction: the pipeline"),
        (
            {"loss": "bce", "loss_options": {"pos_weight": "many"}},
            "train.loss_options.pos_weight must be one finite number > 0, class 1's weight",
        ),
        ({"loss": "bce", "loss_options": {"pos_weight": True}}, "pos_weight must be one finite"),
        (
            {"loss": "bce", "loss_options": {"pos_weight": [1, 2]}},
            "train.loss_options.pos_weight must be one finite number > 0, class 1's weight (the "
            "model has one output), got [1, 2]",
        ),
        (
            {"loss": "cross_entropy", "loss_options": {"weight": 2}},
            "train.loss_options.weight must be a list of finite numbers > 0, one per class, got 2",
        ),
        ({"loss": "bce", "loss_options": {"pos_weight": "1_000"}}, "pos_weight must be one finite"),
        ({"loss": "bce", "loss_options": {"pos_weight": 10**400}}, "pos_weight must be one finite"),
        (
            {"loss": "cross_entropy", "loss_options": {"weight": [1, 0, 2]}},
            "train.loss_options.weight must be a list of finite numbers > 0, one per class, got",
        ),
        (
            {"loss": "bce", "loss_options": {"weight": 2}},
            "train.loss_options.weight: BCEWithLogitsLoss takes one weight per row of a batch",
        ),
        (
            {"loss": "cross_entropy", "loss_options": {"label_smoothing": -0.1}},
            "train.loss_options.label_smoothing must be between 0 and 1, got -0.1",
        ),
        (
            {"loss": "cross_entropy", "loss_options": {"ignore_index": 0}},
            "train.loss_options.ignore_index: the pipeline sets ignore_index itself",
        ),
    ],
)
def test_loss_option_mistakes_are_one_line(changes, message):
    with pytest.raises(UserError) as error:
        engine.make_loss(train_params(**changes), CPU)

    assert message in str(error.value) and "\n" not in str(error.value)


def three_classes(folder, chunk_rows=1_000_000):
    labels = np.arange(30, dtype=np.float32) % 3
    table = table_file(folder / "t.parquet", {"x": labels, "y": labels}, chunk_rows)
    return table, table, Features(("x",), "y", classes=(0.0, 1.0, 2.0))


def test_a_class_weight_for_other_classes_fails_on_the_first_batch_in_one_line(tmp_path):
    params = train_params(loss="cross_entropy", loss_options={"weight": [1, 2]}, epochs=1)

    with pytest.raises(UserError) as error:
        engine.train(
            build_model("mlp", 42, 1, 3), *loaders(*three_classes(tmp_path)), params, quiet
        )

    assert str(error.value).startswith("train.loss: CrossEntropyLoss failed: weight tensor")
    assert "3 classes" in str(error.value) and "\n" not in str(error.value)


def test_a_class_weight_is_refused_where_a_step_comes_in_pieces(tmp_path, monkeypatch):
    """CrossEntropyLoss's weighted mean is over the rows of one call: the pieces of a step,
    each weighed by its rows, would give another loss for every data.chunk_rows and process
    count. One piece a step (one chunk, or mini-batches, in one process) trains."""
    params = train_params(loss="cross_entropy", loss_options={"weight": [1, 2, 3]}, epochs=2)
    in_chunks = loaders(*three_classes(tmp_path, chunk_rows=10))

    with pytest.raises(UserError, match=r"weight: .* comes in 3 chunks of data.chunk_rows"):
        engine.train(build_model("mlp", 42, 1, 3), *in_chunks, params, quiet)
    engine.train(build_model("mlp", 42, 1, 3), *loaders(*three_classes(tmp_path)), params, quiet)
    monkeypatch.setattr(engine, "process_rank", lambda: (0, 2))  # as under torchrun
    with pytest.raises(UserError, match=r"weight: .* comes in 2 processes"):
        engine.train(build_model("mlp", 42, 1, 3), *in_chunks, params, quiet)


def test_options_written_as_text_by_dvc_are_read_as_numbers_and_tuples():
    params = train_params(
        optimizer="adam", optimizer_options={"weight_decay": "1e-06", "betas": [0.8, 0.9]}
    )
    optimizer = engine.make_optimizer(params, build_model("linear_regression").parameters())

    assert optimizer.defaults["weight_decay"] == 1e-6
    assert optimizer.defaults["betas"] == (0.8, 0.9)


def test_options_without_a_default_and_whole_numbers_are_read_as_torch_expects():
    params = train_params(
        epochs=3,
        scheduler="OneCycleLR",
        scheduler_options={"max_lr": "1e-02", "total_steps": "3", "pct_start": 0.5},
    )
    optimizer = engine.make_optimizer(params, build_model("linear_regression").parameters())
    scheduler = engine.make_scheduler(params, optimizer)

    assert scheduler.total_steps == 3 and isinstance(scheduler.total_steps, int)
    assert optimizer.param_groups[0]["max_lr"] == 0.01
    for name, key, options in (
        ("StepLR", "step_size", {"step_size": 3.0}),
        ("OneCycleLR", "total_steps", {"max_lr": 0.1, "total_steps": 3.0}),  # an int or None
    ):
        params = train_params(epochs=3, scheduler=name, scheduler_options=options)
        model = build_model("linear_regression")
        optimizer = engine.make_optimizer(params, model.parameters())
        made = vars(engine.make_scheduler(params, optimizer))
        assert made[key] == 3 and isinstance(made[key], int)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"scheduler": "StepLR", "scheduler_options": {"step_size": 0}},
            "train.scheduler: StepLR failed with train.scheduler_options {'step_size': 0}: ",
        ),
        ({"optimizer": "SparseAdam"}, "train.optimizer: SparseAdam failed: "),
    ],
)
def test_an_optimizer_or_scheduler_failing_as_it_steps_is_one_line(tmp_path, changes, message):
    data = loaders(*course_split(tmp_path))

    with pytest.raises(UserError) as error:
        engine.train(build_model("linear_regression", 42), *data, train_params(**changes), quiet)

    assert message in str(error.value) and "\n" not in str(error.value)
    assert ".py, line" not in str(error.value)  # torch's own files are not the user's code


def test_a_model_for_other_features_fails_on_its_first_batch_in_one_line(tmp_path):
    data = loaders(*course_split(tmp_path))
    model = build_model("linear_regression_v2", seed=42, in_features=3)

    with pytest.raises(UserError, match=r"model\.name: LinearRegressionModelV2 failed: mat1"):
        engine.train(model, *data, train_params(epochs=1), quiet)


class MisspeltModel(torch.nn.Module):
    """A user's model whose forward has a typo."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layr(x)


def test_a_mistake_in_a_users_forward_is_one_line_naming_where(tmp_path):
    data = loaders(*course_split(tmp_path))
    line = MisspeltModel.forward.__code__.co_firstlineno + 1

    with pytest.raises(UserError) as error:
        engine.train(MisspeltModel(), *data, train_params(epochs=1), quiet)

    assert str(error.value) == (
        "model.name: MisspeltModel failed: AttributeError: 'MisspeltModel' object has no "
        "attribute 'layr' "
        f"(tests/test_engine.py, line {line})"
    )


def test_an_error_from_outside_the_classs_own_code_keeps_its_traceback():
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)])

    with pytest.raises(KeyError), engine.failing_as("train.optimizer", optimizer):
        {}["a bug of the pipeline's"]


def test_a_model_written_in_a_notebook_fails_in_one_line_too(monkeypatch):
    notebook = types.ModuleType("__main__")  # no file, as in Jupyter or a REPL
    monkeypatch.setitem(sys.modules, "__main__", notebook)
    model = type("NotebookModel", (torch.nn.Module,), {"__module__": "__main__"})()

    with pytest.raises(UserError) as error, engine.failing_as("model.name", model):
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")

    assert str(error.value) == (
        "model.name: NotebookModel failed: mat1 and mat2 shapes cannot be multiplied"
    )


def test_diverging_training_stops_with_the_epoch_and_a_hint(tmp_path):
    data = loaders(*course_split(tmp_path))
    params = train_params(epochs=500, lr=1e6, loss="mse")

    with pytest.raises(UserError, match=r"at epoch \d+ .*try a smaller train.lr"):
        engine.train(build_model("linear_regression", 42), *data, params, quiet)


@pytest.mark.parametrize("budget", ["nan", "inf", "lots"])
def test_a_cache_budget_that_is_not_a_number_is_one_line(monkeypatch, budget):
    monkeypatch.setenv(CACHE_ENV, budget)

    with pytest.raises(UserError, match=f"{CACHE_ENV}='{budget}': expected a number"):
        CacheBudget()


def test_splits_larger_than_the_cache_are_read_again_each_epoch(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, "0.00025")  # 262 bytes: one chunk of 30 rows (240)
    rows = np.arange(100, dtype=np.float32)
    table = table_file(tmp_path / "t.parquet", {"x": rows, "y": rows}, chunk_rows=30)
    data = SplitDataset(table, Features(("x",), "y"), CPU, CacheBudget())

    first, second = data.chunk(0), data.chunk(1)

    assert data.chunk(0)[0] is first[0]  # kept
    assert data.chunk(1)[0] is not second[0] and torch.equal(data.chunk(1)[0], second[0])
    assert [len(batch.X) for batch in data] == [30, 30, 30, 10]


def test_a_cache_budget_beyond_any_memory_means_no_limit(monkeypatch):
    monkeypatch.setenv(CACHE_ENV, "1e308")

    assert CacheBudget().take(10**12)
