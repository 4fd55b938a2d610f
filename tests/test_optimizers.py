"""The optimizers round alike everywhere; SGD keeps torch's own bits where torch fuses (AVX2)."""

import numpy as np
import pytest
import torch

from pytorch_workflow.model_builder import build_model
from pytorch_workflow.optimizers import LBFGS, SGD, Adam, fused_multiply_add
from tests.conftest import imported

torch.set_num_threads(1)
fused_cpu = pytest.mark.skipif(
    torch.backends.cpu.get_cpu_capability() not in ("AVX2", "AVX512"),
    reason="torch fuses the update only on x86-64 with AVX2 or AVX-512",
)


@fused_cpu
def test_fused_multiply_add_is_torchs_fused_update():
    rng = np.random.default_rng(5)
    for scale in (1e-30, 1e-3, 1.0, 1e3, 1e30):
        param = torch.from_numpy((rng.standard_normal(5000) * scale).astype(np.float32))
        grad = torch.from_numpy(
            (rng.standard_normal(5000) * rng.choice([1e-3, 1, 1e3], 5000)).astype(np.float32)
        )
        expected = param.clone().add_(grad, alpha=-0.01)

        ours = fused_multiply_add(grad, torch.tensor(-0.01), param)

        assert torch.equal(ours, expected)


def test_fused_multiply_add_rounds_once_even_where_float64_would_round_first():
    # 3 * (1 + 2**-23) lies exactly halfway between two float32 values; a tiny negative addend
    # puts the exact sum just below that: rounded once it goes down, rounded through float64
    # (which loses the 2**-60) it would be a tie and go to the even neighbour, up.
    a, b, c = (torch.tensor([v], dtype=torch.float32) for v in (3.0, 1 + 2**-23, -(2**-60)))

    assert fused_multiply_add(a, b, c).item() == 3 + 2**-22
    assert (a.double() * b.double() + c.double()).float().item() == 3 + 2**-21


@fused_cpu
@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_sgd_steps_are_torchs_own(momentum):
    ours, native = build_model("linear_regression", 1, 20), build_model("linear_regression", 1, 20)
    sgd, torch_sgd = (
        SGD(ours.parameters(), 0.05, momentum),
        torch.optim.SGD(native.parameters(), lr=0.05, momentum=momentum),
    )
    X, y = torch.randn(100, 20), torch.randn(100, 1)

    for _ in range(20):
        for model, optimizer in ((ours, sgd), (native, torch_sgd)):
            optimizer.zero_grad()
            torch.nn.MSELoss()(model(X), y).backward()
            optimizer.step()

    assert all(
        torch.equal(a, b) for a, b in zip(ours.parameters(), native.parameters(), strict=True)
    )


def test_adam_follows_torchs_adam_to_float_precision():
    ours, native = build_model("linear_regression", 1, 5), build_model("linear_regression", 1, 5)
    adam, torch_adam = Adam(ours.parameters(), 0.01), torch.optim.Adam(native.parameters(), lr=0.01)
    X, y = torch.randn(200, 5), torch.randn(200, 1)

    for _ in range(50):
        for model, optimizer in ((ours, adam), (native, torch_adam)):
            optimizer.zero_grad()
            torch.nn.MSELoss()(model(X), y).backward()
            optimizer.step()

    for a, b in zip(ours.parameters(), native.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_lbfgs_reaches_the_least_squares_solution_of_an_ill_conditioned_problem():
    rng = np.random.default_rng(0)
    base = rng.standard_normal((500, 1))
    X = np.hstack([base + 0.01 * rng.standard_normal((500, 1)) for _ in range(6)]).astype(
        np.float32
    )
    y = (X @ np.arange(1, 7) + rng.standard_normal(500)).astype(np.float32).reshape(-1, 1)
    model = build_model("linear_regression", 1, 6)
    optimizer = LBFGS(model.parameters(), lr=1.0)
    X_t, y_t = torch.from_numpy(X), torch.from_numpy(y)

    def closure():
        optimizer.zero_grad()
        loss = torch.nn.MSELoss()(model(X_t), y_t)
        loss.backward()
        return loss

    for _ in range(100):
        optimizer.step(closure)

    design = np.hstack([X, np.ones((500, 1))]).astype(np.float64)
    optimum = np.mean((design @ np.linalg.lstsq(design, y[:, 0], rcond=None)[0] - y[:, 0]) ** 2)
    assert closure().item() <= optimum * (1 + 1e-4)


def test_making_an_optimizer_does_not_import_torchs_compiler():
    # torch.optim.Optimizer's constructor imports torch._dynamo: two seconds of every train stage.
    code = (
        "import torch\n"
        "from pytorch_workflow.optimizers import OPTIMIZER_CLASSES\n"
        "for optimizer in OPTIMIZER_CLASSES.values():\n"
        "    optimizer([torch.zeros(1, requires_grad=True)], lr=0.1)"
    )

    assert imported(code, ("torch._dynamo",)) == []
