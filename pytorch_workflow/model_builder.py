"""The course's two linear models, built by name (`params.MODELS`), for one feature or k."""

import math

import torch
from torch import nn

from pytorch_workflow.params import MODELS


class LinearRegressionModel(nn.Module):
    """The course's model: y = weights * x + bias, with the parameters held by hand.

    With k features the weights start as `torch.randn(k) / sqrt(k)`, so the first outputs keep
    the scale of one feature's however many there are (plain `randn` would grow them with
    sqrt(k) and stall a classifier's first epochs). With one feature that is exactly the
    course's `torch.randn(1)`.

    The parameters broadcast over the rows, so the model also takes them repeated once per row
    (`portable.row_parameters`), which is how the training loop sums their gradients in a
    fixed order.
    """

    takes_row_parameters = True

    def __init__(self, in_features: int = 1) -> None:
        super().__init__()
        weights = torch.randn(in_features, dtype=torch.float) / math.sqrt(in_features)
        self.weights = nn.Parameter(weights, requires_grad=True)
        self.bias = nn.Parameter(torch.randn(1, dtype=torch.float), requires_grad=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.weights.shape[-1] == 1:
            return self.weights * x + self.bias  # exactly the course's line
        # Feature by feature, in order: the same rounding on every CPU. A matrix product would
        # sum in the order its BLAS kernel picks for the CPU it runs on.
        output = x[:, :1] * self.weights[..., :1]
        for feature in range(1, self.weights.shape[-1]):
            output = output + x[:, feature : feature + 1] * self.weights[..., feature : feature + 1]
        return output + self.bias


class LinearRegressionModelV2(nn.Module):
    """The same model with PyTorch's own `nn.Linear` layer doing the work.

    `nn.Linear` multiplies through the BLAS kernel torch picks for the CPU, so its last bits
    can differ between kinds of CPU (docs/reproducibility.md).
    """

    def __init__(self, in_features: int = 1) -> None:
        super().__init__()
        self.linear_layer = nn.Linear(in_features=in_features, out_features=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear_layer(x)


_CLASSES = {cls.__name__: cls for cls in (LinearRegressionModel, LinearRegressionModelV2)}


def build_model(name: str, seed: int | None = None, in_features: int = 1) -> nn.Module:
    """A fresh model; with a seed, initialised as in the course: `torch.manual_seed(seed)` first."""
    if seed is not None:
        torch.manual_seed(seed)
    return _CLASSES[MODELS[name]](in_features)
