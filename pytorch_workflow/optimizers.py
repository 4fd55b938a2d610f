"""The optimizers of `train.optimizer` (params.OPTIMIZERS), rounding alike on every CPU.

torch's CPU kernels fuse the multiply and the add of an update like `param - lr * grad` into one
FMA instruction, rounded once, where the kernel was built for it (x86-64 with AVX2 or AVX-512,
arm64) and round twice where it was not (x86-64 without AVX2), so one step can differ in its last
bit between machines, and the runs that follow drift apart. These keep `torch.optim`'s formulas
and the part of its interface the course uses (`zero_grad()`, `step()`) but do the arithmetic
here.
"""

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch


def fused_multiply_add(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """a * b + c for float32 tensors, rounded once to float32, as an FMA instruction does.

    The product of two float32 values is exact in float64. The sum is rounded to float64
    "to odd" (an inexact result keeps an odd last bit, found with TwoSum's exact error), which
    makes the final rounding to float32 the correct one (Boldo and Melquiond).
    """
    product = a.double() * b.double()
    addend = c.double()
    total = product + addend
    back = total - product
    error = (product - (total - back)) + (addend - back)
    inexact_even = (error != 0) & ((total.view(torch.int64) & 1) == 0)
    toward = torch.where(error > 0, math.inf, -math.inf).to(total.dtype)
    return torch.where(inexact_even, torch.nextafter(total, toward), total).float()


class Optimizer:
    """An optimizer's parameters and learning rate, `zero_grad()`, and `step()`: `_update` of
    each parameter that has a gradient (L-BFGS, which needs the loss, has its own `step`).

    Not a subclass of `torch.optim.Optimizer`: making one of torch's optimizers imports torch's
    compiler (about two seconds of every train stage, and of every process under torchrun),
    which nothing here uses.
    """

    def __init__(self, params: Iterable[torch.Tensor], lr: float) -> None:
        self.params = list(params)
        self.lr = lr
        # Each parameter's state: SGD's momentum buffer; Adam's steps and moving averages.
        self.state: dict[torch.Tensor, Any] = {}

    def zero_grad(self) -> None:
        for param in self.params:
            param.grad = None

    @torch.no_grad()
    def step(self) -> None:
        for param in self.params:
            if param.grad is not None:
                self._update(param, param.grad)

    def _update(self, param: torch.Tensor, grad: torch.Tensor) -> None:
        raise NotImplementedError


class SGD(Optimizer):
    """`torch.optim.SGD` (optionally with momentum) with every update rounded once, as an FMA
    (`fused_multiply_add`, exact on any device): torch's own bits on x86-64, and so the course's
    numbers, on every machine."""

    def __init__(self, params, lr: float, momentum: float = 0.0) -> None:
        super().__init__(params, lr)
        self.momentum = momentum

    def _update(self, param: torch.Tensor, grad: torch.Tensor) -> None:
        direction = grad
        if self.momentum:
            buffer = self.state.get(param)
            if buffer is None:
                buffer = self.state[param] = grad.clone()
            else:
                # torch: buf.mul_(momentum).add_(grad): two roundings on every CPU
                buffer.mul_(self.momentum).add_(grad)
            direction = buffer
        scale = torch.tensor(-self.lr, dtype=torch.float32, device=param.device)
        param.copy_(fused_multiply_add(direction, scale, param))


class Adam(Optimizer):
    """`torch.optim.Adam`'s update and defaults, every operation rounded on its own."""

    BETAS = (0.9, 0.999)
    EPS = 1e-8

    def _update(self, param: torch.Tensor, grad: torch.Tensor) -> None:
        beta1, beta2 = self.BETAS
        if param not in self.state:
            self.state[param] = (0, torch.zeros_like(param), torch.zeros_like(param))
        step, exp_avg, squares = self.state[param]
        step += 1
        exp_avg = exp_avg * beta1 + grad * (1 - beta1)
        squares = squares * beta2 + (grad * grad) * (1 - beta2)
        self.state[param] = (step, exp_avg, squares)
        step_size = self.lr / (1 - beta1**step)
        denominator = squares.sqrt() / math.sqrt(1 - beta2**step) + self.EPS
        param.sub_((exp_avg / denominator) * step_size)


class LBFGS(Optimizer):
    """`torch.optim.LBFGS`'s method, one iteration per `step(closure)`, in float64 Python floats.

    Built for the few parameters of a linear model: the search direction comes from the last
    `HISTORY` steps by the two-loop recursion, the first step is scaled as torch scales it, and
    the step length is halved until the loss falls enough (Armijo's condition). No BLAS dot
    products, whose order of summation depends on the CPU.
    """

    HISTORY = 10  # torch's history_size
    MAX_HALVINGS = 30

    def __init__(self, params, lr: float = 1.0) -> None:
        super().__init__(params, lr)
        self._steps: list[tuple[list[float], list[float], float]] = []  # (s, y, 1 / y.s)
        self._previous: tuple[list[float], list[float]] | None = None

    def _set(self, values: list[float]) -> None:
        parts = torch.tensor(values, dtype=torch.float64).split([p.numel() for p in self.params])
        for param, part in zip(self.params, parts, strict=True):
            param.copy_(part.reshape(param.shape).to(param.dtype))

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor]):
        evaluate = torch.enable_grad()(closure)
        loss = evaluate()
        f = float(loss)
        x = _flat(self.params)
        g = _flat([p.grad for p in self.params])
        if max(map(abs, g), default=0.0) <= 1e-7:
            return loss  # at a stationary point: torch stops here too
        if self._previous is not None:
            s = [a - b for a, b in zip(x, self._previous[0], strict=True)]
            y = [a - b for a, b in zip(g, self._previous[1], strict=True)]
            ys = _dot(y, s)
            if ys > 1e-10:
                self._steps = [*self._steps, (s, y, 1.0 / ys)][-self.HISTORY :]
        self._previous = (x, g)
        direction = self._direction(g)
        slope = _dot(g, direction)
        if slope > -1e-12:
            return loss
        length = self.lr * min(1.0, 1.0 / sum(map(abs, g))) if not self._steps else self.lr
        for _ in range(self.MAX_HALVINGS):
            self._set([a + length * d for a, d in zip(x, direction, strict=True)])
            if float(evaluate()) <= f + 1e-4 * length * slope:
                return loss
            length /= 2
        self._set(x)  # no step lowered the loss enough: stay
        return loss

    def _direction(self, g: list[float]) -> list[float]:
        """-H g by the two-loop recursion over the remembered steps (Nocedal and Wright, 7.4)."""
        q = list(g)
        alphas = []
        for s, y, rho in reversed(self._steps):
            alpha = rho * _dot(s, q)
            q = [a - alpha * b for a, b in zip(q, y, strict=True)]
            alphas.append(alpha)
        if self._steps:
            s, y, rho = self._steps[-1]
            gamma = 1.0 / (rho * _dot(y, y))
            q = [gamma * a for a in q]
        for (s, y, rho), alpha in zip(self._steps, reversed(alphas), strict=True):
            beta = rho * _dot(y, q)
            q = [a + (alpha - beta) * b for a, b in zip(q, s, strict=True)]
        return [-a for a in q]


def _flat(tensors: list[torch.Tensor]) -> list[float]:
    return [value for tensor in tensors for value in tensor.detach().reshape(-1).tolist()]


def _dot(left: list[float], right: list[float]) -> float:
    """A dot product added up in order, in float64."""
    total = 0.0
    for a, b in zip(left, right, strict=True):
        total += a * b
    return total


OPTIMIZER_CLASSES = {"SGD": SGD, "Adam": Adam, "LBFGS": LBFGS}
