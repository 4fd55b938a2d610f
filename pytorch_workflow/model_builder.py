"""The course's two linear models, built by name, for one feature or k of them."""

import torch
from torch import nn

from pytorch_workflow.errors import UserError


class LinearRegressionModel(nn.Module):
    """The course's model: y = weights * x + bias, with the parameters held by hand."""

    def __init__(self, in_features: int = 1) -> None:
        super().__init__()
        self.weights = nn.Parameter(torch.randn(in_features, dtype=torch.float), requires_grad=True)
        self.bias = nn.Parameter(torch.randn(1, dtype=torch.float), requires_grad=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.weights.shape[0] == 1:
            return self.weights * x + self.bias  # exactly the course's line
        return x @ self.weights.unsqueeze(dim=1) + self.bias


class LinearRegressionModelV2(nn.Module):
    """The same model with PyTorch's own `nn.Linear` layer doing the work."""

    def __init__(self, in_features: int = 1) -> None:
        super().__init__()
        self.linear_layer = nn.Linear(in_features=in_features, out_features=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear_layer(x)


MODELS: dict[str, type[nn.Module]] = {
    "linear_regression": LinearRegressionModel,
    "linear_regression_v2": LinearRegressionModelV2,
}


def build_model(name: str, seed: int | None = None, in_features: int = 1) -> nn.Module:
    """A fresh model; with a seed, initialised as in the course: `torch.manual_seed(seed)` first."""
    if name not in MODELS:
        raise UserError(f"model.name must be one of {', '.join(MODELS)}, got {name!r}")
    if seed is not None:
        torch.manual_seed(seed)
    return MODELS[name](in_features)
