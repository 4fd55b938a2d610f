"""The training arithmetic that rounds alike on every machine (pytorch_workflow.portable)."""

import math
import platform

import numpy as np
import pytest
import torch

from pytorch_workflow.model_builder import build_model
from pytorch_workflow.portable import (
    exp_nonpositive,
    log1p_unit,
    ordered_mean,
    ordered_sum,
    per_row_loss,
    row_parameters,
    sigmoid,
    softplus,
)

# ordered_sum follows torch's x86-64 kernel; elsewhere torch's own sum rounds differently.
x86_64 = pytest.mark.skipif(
    platform.machine().lower() not in ("x86_64", "amd64"), reason="torch.sum is x86-64's here"
)
# One thread, as in the stages: torch splits a large sum across its threads.
torch.set_num_threads(1)
SIZES = [*range(1, 70), 127, 128, 129, 1000, 4095, 4096, 4097, 65537, 100_003, (1 << 19) + 33]


@x86_64
@pytest.mark.parametrize("rows", SIZES)
def test_ordered_sum_gives_torchs_x86_bits(rows):
    generator = np.random.default_rng(rows)
    values = generator.standard_normal((rows, 3)) * generator.choice([1e-3, 1.0, 1e3], (rows, 3))
    tensor = torch.from_numpy(values.astype(np.float32))

    native = torch.stack([tensor[:, j].contiguous().sum() for j in range(3)])

    assert torch.equal(ordered_sum(tensor), native)


@x86_64
@pytest.mark.parametrize("loss", ["L1Loss", "MSELoss", "HuberLoss"])
def test_ordered_mean_of_per_row_losses_is_torchs_mean_loss(loss):
    generator = np.random.default_rng(1)
    predicted, target = (
        torch.from_numpy(generator.standard_normal((1001, 1)).astype(np.float32)) for _ in range(2)
    )

    ours = ordered_mean(per_row_loss(loss)(predicted, target))

    assert torch.equal(ours, getattr(torch.nn, loss)()(predicted, target))


@x86_64
@pytest.mark.parametrize("features", [1, 4])
def test_gradients_through_row_parameters_are_torchs_own(features):
    generator = np.random.default_rng(features)
    X = torch.from_numpy(generator.standard_normal((4000, features)).astype(np.float32))
    y = torch.from_numpy(generator.standard_normal((4000, 1)).astype(np.float32))
    native = build_model("linear_regression", 42, features)
    ours = build_model("linear_regression", 42, features)

    torch.nn.L1Loss()(native(X), y).backward()
    rows = torch.func.functional_call(ours, row_parameters(ours, X.shape[0]), (X,))
    ordered_mean(per_row_loss("L1Loss")(rows, y)).backward()

    for a, b in zip(native.parameters(), ours.parameters(), strict=True):
        assert torch.equal(a.grad, b.grad)


def test_a_mean_over_one_row_is_that_row_and_its_gradient_is_one():
    value = torch.tensor([[2.5]], requires_grad=True)

    mean = ordered_mean(value)
    mean.backward()

    assert mean.item() == 2.5 and value.grad.item() == 1.0


def test_exp_and_log1p_are_accurate_to_the_last_bits():
    x = -np.linspace(0, 708, 100_001)
    t = np.linspace(0, 1, 100_001)

    exp = exp_nonpositive(torch.from_numpy(x)).numpy()
    log1p = log1p_unit(torch.from_numpy(t)).numpy()

    assert np.max(np.abs(exp - np.exp(x)) / np.exp(x)) < 1e-15
    assert np.max(np.abs(log1p - np.log1p(t)) / np.maximum(np.log1p(t), 1e-300)) < 1e-15
    assert exp_nonpositive(torch.tensor([-746.0, -800.0])).tolist() == [0.0, 0.0]


def test_sigmoid_and_softplus_never_overflow():
    z = torch.tensor([-1e4, -40.0, 0.0, 40.0, 1e4], dtype=torch.float64)

    assert sigmoid(z).tolist() == pytest.approx([0.0, math.exp(-40), 0.5, 1.0, 1.0], rel=1e-15)
    expected = [0.0, math.exp(-40), math.log(2), 40.0, 1e4]
    assert softplus(z).tolist() == pytest.approx(expected, rel=1e-15)


def test_the_logistic_loss_is_bce_with_logits_and_its_gradient_the_sigmoid():
    logits = torch.tensor([[-3.0], [0.0], [0.5], [8.0]], requires_grad=True)
    target = torch.tensor([[0.0], [1.0], [0.0], [1.0]])

    ours = per_row_loss("BCEWithLogitsLoss")(logits, target)
    ours.sum().backward()

    expected = torch.nn.BCEWithLogitsLoss(reduction="none")(logits.detach(), target)
    torch.testing.assert_close(ours, expected)
    torch.testing.assert_close(logits.grad, torch.sigmoid(logits.detach()) - target)
