"""Training arithmetic with the same bits on every CPU (and GPU): sums and exp in a fixed order.

torch adds up a float32 tensor with SIMD vectors, and the order of the additions, and so the
last bits of a loss or a gradient, follows the width of the vectors: 8 floats on x86-64 (at any
SIMD level) and on 256-bit SVE, 4 on 128-bit NEON (Apple silicon, Graviton 2 and 4), which
makes the course's epoch-0 loss 0.31288135... there instead of 0.31288138.... Its `exp` (and so
the sigmoid in the logistic loss) also differs between CPUs with and without AVX2. So the
training loop takes its means, its parameters' gradients and the logistic loss from here:

- `ordered_sum` adds float32 values in exactly the order torch's x86-64 kernel does
  (aten/src/ATen/native/cpu/SumKernel.cpp: 8 lanes, 4 accumulators, a 4-level cascade), with
  element-wise tensor additions only, which every device rounds alike. On x86-64 it gives
  torch's own bits, so the course's numbers stay the course's to the digit, and it gives the
  same bits on every other machine. `tests/test_portable.py` compares it with `torch.sum`.
- `row_parameters` gives the model each parameter repeated once per row, so autograd's
  gradient for a row never needs a sum; `ordered_sum` then adds the rows' gradients up.
- `exp`, `log1p` and the sigmoid come from their series in float64, with + - * / only.
"""

import math

import torch
from torch import nn

_LANES = 8  # float32 values in one AVX2 vector
_ACCUMULATORS = 4  # torch's row_sum interleaves four vectors
_LEVELS = 4  # and cascades their partial sums over four levels


def running_sum(items: torch.Tensor, start: torch.Tensor) -> torch.Tensor:
    """start + items[0] + items[1] + ..., one addition at a time along the first dimension."""
    total = start.clone()
    for item in items:
        total.add_(item)
    return total


def _cascade(items: torch.Tensor) -> torch.Tensor:
    """torch's multi_row_sum: items (size, ...) added in blocks, blocks of blocks, ... (4 levels).

    Level 0 adds `step` items at a time, level 1 `step` such sums, level 2 `step` of those, and
    level 3 all the rest; at the end, what each level holds is added, lowest level first.
    """
    ceil_log2 = (items.shape[0] - 1).bit_length()  # torch takes 1 for size <= 2: the same step
    step = 1 << max(4, ceil_log2 // _LEVELS)
    zero = torch.zeros_like(items[0])
    held = []
    for _ in range(_LEVELS - 1):
        complete = items.shape[0] // step
        held.append(running_sum(items[complete * step :], zero))
        grouped = items[: complete * step].reshape(complete, step, *items.shape[1:])
        items = running_sum(grouped.transpose(0, 1), torch.zeros_like(grouped[:, 0]))
    return ((held[0] + held[1]) + held[2]) + running_sum(items, zero)


def _interleaved_sum(items: torch.Tensor) -> torch.Tensor:
    """torch's row_sum: items (size, ...) in 4 interleaved accumulators, then added together."""
    rows = items.shape[0] // _ACCUMULATORS
    if rows:
        rest = items.shape[1:]
        partial = _cascade(items[: rows * _ACCUMULATORS].reshape(rows, _ACCUMULATORS, *rest))
    else:
        partial = items.new_zeros(_ACCUMULATORS, *items.shape[1:])
    # What is left over goes into the first accumulator, then the others are added to it.
    return running_sum(torch.cat([items[rows * _ACCUMULATORS :], partial[1:]]), partial[0])


def ordered_sum(values: torch.Tensor) -> torch.Tensor:
    """The sum over the first dimension of a float32 tensor (rows, ...), in x86-64 torch's order."""
    rest = values.shape[1:]
    zero = torch.zeros(rest, dtype=values.dtype, device=values.device)
    if values.shape[0] < _LANES:  # too short for a vector: one value at a time
        return zero + _interleaved_sum(values)
    vectors = values.shape[0] // _LANES
    lanes = _interleaved_sum(values[: vectors * _LANES].reshape(vectors, _LANES, *rest))
    total = running_sum(torch.cat([values[vectors * _LANES :], lanes]), zero)
    return zero + total  # torch adds the result to an output it filled with zeros


class _OrderedMean(torch.autograd.Function):
    """The mean of all values, summed by `ordered_sum`; its gradient is torch's own."""

    @staticmethod
    def forward(ctx, values: torch.Tensor) -> torch.Tensor:
        ctx.shape = values.shape
        return ordered_sum(values.reshape(-1)) / values.numel()

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return grad.expand(ctx.shape) / math.prod(ctx.shape)


def ordered_mean(values: torch.Tensor) -> torch.Tensor:
    return _OrderedMean.apply(values)


class _RowParameter(torch.autograd.Function):
    """A parameter repeated for each of `rows` rows; the rows' gradients added by `ordered_sum`."""

    @staticmethod
    def forward(ctx, parameter: torch.Tensor, rows: int) -> torch.Tensor:
        return parameter.expand(rows, *parameter.shape)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return ordered_sum(grad), None


def row_parameters(model: nn.Module, rows: int) -> dict[str, torch.Tensor]:
    """The model's parameters, each repeated for `rows` rows (for `torch.func.functional_call`)."""
    return {name: _RowParameter.apply(p, rows) for name, p in model.named_parameters()}


_LN2_HI = 6.93147180369123816490e-01  # ln 2 in two parts: k * _LN2_HI is exact for |k| < 2**20
_LN2_LO = 1.90821492927058770002e-10


def exp_nonpositive(x: torch.Tensor) -> torch.Tensor:
    """e**x for x <= 0, in float64, from + - * / and exact powers of two."""
    x = torch.clamp(x.double(), min=-746.0)  # e**-746 rounds to 0
    k = torch.round(x / math.log(2.0))
    r = (x - k * _LN2_HI) - k * _LN2_LO  # |r| <= 0.35
    series = torch.ones_like(r)
    for n in range(17, 0, -1):  # Horner's rule for the sum of r**n / n!
        series = series * (r / n) + 1.0
    # 2**k, built from its bits: exact, where pow would depend on the math library. Below
    # 2**-1022 the result is subnormal: it is scaled in two exact steps.
    low = k < -1022
    series = torch.where(low, series * 2.0**-60, series)
    exponent = k.to(torch.int64) + torch.where(low, 60, 0) + 1023
    return series * (exponent.clamp(min=1) << 52).view(torch.float64)


def log1p_unit(t: torch.Tensor) -> torch.Tensor:
    """log(1 + t) for 0 <= t <= 1, in float64: 2 atanh(s) with s = t / (2 + t) <= 1/3."""
    t = t.double()
    s = t / (2.0 + t)
    s2 = s * s
    series = torch.zeros_like(s)
    for n in range(35, 0, -2):  # s + s**3/3 + s**5/5 + ..., by Horner's rule
        series = series * s2 + 1.0 / n
    return 2.0 * s * series


def softplus(z: torch.Tensor) -> torch.Tensor:
    """log(1 + e**z) in float64, without overflow: max(z, 0) + log1p(e**-|z|)."""
    z = z.double()
    return torch.clamp(z, min=0.0) + log1p_unit(exp_nonpositive(-z.abs()))


def sigmoid(z: torch.Tensor) -> torch.Tensor:
    """1 / (1 + e**-z) in float64, without overflow."""
    z = z.double()
    small = exp_nonpositive(-z.abs())  # e**-|z| <= 1
    return torch.where(z >= 0, 1.0 / (1.0 + small), small / (1.0 + small))


class _LogisticLoss(torch.autograd.Function):
    """Per-row binary cross-entropy of logits: softplus(z) - y z; gradient sigmoid(z) - y."""

    @staticmethod
    def forward(ctx, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(logits, target)
        loss = softplus(logits) - target.double() * logits.double()
        return loss.to(logits.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        logits, target = ctx.saved_tensors
        return ((sigmoid(logits) - target.double()).to(logits.dtype)) * grad, None


class BCEWithLogitsPerRow(nn.Module):
    """`nn.BCEWithLogitsLoss(reduction="none")`, computed with the portable sigmoid."""

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return _LogisticLoss.apply(logits, target)


def per_row_loss(module: str) -> nn.Module:
    """The loss of `torch.nn.<module>` for each row (reduction "none"), on every CPU alike."""
    if module == "BCEWithLogitsLoss":
        return BCEWithLogitsPerRow()
    return getattr(nn, module)(reduction="none")
