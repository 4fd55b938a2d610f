import pytest
import torch

from pytorch_workflow import engine
from pytorch_workflow.data import features_and_target, fit_features, make_line_data, split_data
from pytorch_workflow.device import to_device_tensors
from pytorch_workflow.errors import UserError
from pytorch_workflow.model_builder import build_model
from pytorch_workflow.params import DataParams, SplitParams, TrainParams
from tests.conftest import COURSE_LOG

COURSE_TRAIN = TrainParams(
    epochs=100, lr=0.01, loss="l1", optimizer="sgd", momentum=0.0, log_every=10
)


def course_tensors():
    dataset = make_line_data(DataParams(0.7, 0.3, 0.0, 1.0, 0.02, 0.0), seed=42)
    train, test = split_data(dataset, SplitParams(0.8, False), seed=42)
    features = fit_features(train, standardize=False)
    cpu = torch.device("cpu")
    return (
        to_device_tensors(*features_and_target(train, features), cpu),
        to_device_tensors(*features_and_target(test, features), cpu),
    )


def test_one_train_step_moves_the_parameters_down_the_l1_gradient():
    (X, y), _ = course_tensors()
    model = build_model("linear_regression", seed=42)
    weights, bias = model.weights.item(), model.bias.item()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)

    loss = engine.train_step(model, X, y, torch.nn.L1Loss(), optimizer)

    # Every initial prediction is below its target, so d(L1)/dw = -mean(x), d(L1)/db = -1.
    assert loss.item() == pytest.approx(0.31288138031959534, abs=0)
    assert model.weights.item() == pytest.approx(weights + 0.01 * X.mean().item(), abs=1e-7)
    assert model.bias.item() == pytest.approx(bias + 0.01, abs=1e-7)


def test_training_logs_the_course_lines_to_the_digit():
    train_data, test_data = course_tensors()
    model = build_model("linear_regression", seed=42)
    lines: list[str] = []

    history = engine.train(model, train_data, test_data, COURSE_TRAIN, log=lines.append)

    assert lines == COURSE_LOG
    assert len(history) == 100
    assert model.weights.item() == pytest.approx(0.5784, abs=1e-4)
    assert model.bias.item() == pytest.approx(0.3513, abs=1e-4)


@pytest.mark.parametrize(("loss", "label"), [("mse", "MSE"), ("huber", "Huber")])
def test_log_line_names_the_loss(loss, label):
    train_data, test_data = course_tensors()
    params = TrainParams(epochs=1, lr=0.01, loss=loss, optimizer="adam", momentum=0.0, log_every=1)
    lines: list[str] = []

    engine.train(build_model("linear_regression", 42), train_data, test_data, params, lines.append)

    assert lines[0].startswith(f"Epoch: 0 | {label} Train Loss: ")


def test_diverging_training_stops_with_the_epoch_and_a_hint():
    train_data, test_data = course_tensors()
    params = TrainParams(
        epochs=500, lr=1e6, loss="mse", optimizer="sgd", momentum=0.0, log_every=10
    )

    with pytest.raises(UserError, match=r"at epoch \d+ .*try a smaller train.lr"):
        engine.train(build_model("linear_regression", 42), train_data, test_data, params, print)


def test_mini_batches_covering_every_row_match_the_full_batch_loop():
    train_data, test_data = course_tensors()
    full = build_model("linear_regression", seed=42)
    batched = build_model("linear_regression", seed=42)
    params = TrainParams(100, 0.01, "l1", "sgd", 0.0, 10)
    one_big_batch = TrainParams(100, 0.01, "l1", "sgd", 0.0, 10, batch_size=1000)

    full_history = engine.train(full, train_data, test_data, params, log=lambda line: None)
    batched_history = engine.train(
        batched, train_data, test_data, one_big_batch, lambda line: None, shuffle_seed=3
    )

    assert batched_history == full_history
    assert torch.equal(batched.weights, full.weights) and torch.equal(batched.bias, full.bias)


def test_shuffled_mini_batches_are_seeded():
    train_data, test_data = course_tensors()
    params = TrainParams(20, 0.01, "l1", "sgd", 0.0, 10, batch_size=8)

    def run(seed):
        model = build_model("linear_regression", seed=42)
        return engine.train(model, train_data, test_data, params, lambda line: None, seed)

    assert run(1) == run(1)
    assert run(1) != run(2)
    assert run(None) != run(1)  # in order, not shuffled
