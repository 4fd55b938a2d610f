"""The models: the course's chapter 01 models, its chapter 02 layers (`mlp`), and any
`nn.Module` you write here.

`model.name` in params.yaml picks a class of this module, by its class name or the short name
it declares (`short_name`), and `model.options` are its constructor's keyword arguments. A
constructor that takes `in_features` or `out_features` (or the course's chapter 02 names,
`input_features` and `output_features`) gets them from the data, and one that takes
`hidden_units` or `activation` gets `model.hidden_units` and `model.activation`. Adding a model
is writing its class below, nothing else.
"""

import inspect
import itertools
import math
import sys

import torch
from torch import nn

from pytorch_workflow.errors import UserError
from pytorch_workflow.params import (
    ACTIVATIONS,
    ConstructorError,
    ModelParams,
    Options,
    construct,
    find_class,
)

# The constructor arguments the data fills in, as torch's `nn.Linear` and the course's
# BlobModel name them: the features of a row, and the outputs (one per class of a multi-class
# target).
IN_FEATURES = ("in_features", "input_features")
OUT_FEATURES = ("out_features", "output_features")


class LinearRegressionModel(nn.Module):
    """The course's model: y = weights * x + bias, with the parameters held by hand.

    With k features the weights start as `torch.randn(k) / sqrt(k)`, so the first outputs keep
    the scale of one feature's however many there are (plain `randn` would grow them with
    sqrt(k) and stall a classifier's first epochs). With one feature that is exactly the
    course's `torch.randn(1)`.
    """

    short_name = "linear_regression"

    def __init__(self, in_features: int = 1) -> None:
        super().__init__()
        weights = torch.randn(in_features, dtype=torch.float) / math.sqrt(in_features)
        self.weights = nn.Parameter(weights, requires_grad=True)
        self.bias = nn.Parameter(torch.randn(1, dtype=torch.float), requires_grad=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.weights.shape[0] == 1:
            return self.weights * x + self.bias  # the course's line
        return x @ self.weights.unsqueeze(dim=1) + self.bias


class LinearRegressionModelV2(nn.Module):
    """The same model with PyTorch's own `nn.Linear` layer doing the work."""

    short_name = "linear_regression_v2"

    def __init__(self, in_features: int = 1) -> None:
        super().__init__()
        self.linear_layer = nn.Linear(in_features=in_features, out_features=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear_layer(x)


class MLP(nn.Module):
    """The course's chapter 02 models from params: `nn.Linear` layers of `hidden_units` widths
    with `activation` between them.

    The layers are made in the order of the course's classes, so after `torch.manual_seed` the
    initial weights are theirs: `[5]` with `none` is CircleModelV0, `[10, 10]` with `none`
    CircleModelV1, `[10, 10]` with `relu` CircleModelV2, and `[8, 8]` with `none` and four
    classes BlobModel.
    """

    short_name = "mlp"

    def __init__(
        self,
        in_features: int,
        out_features: int = 1,
        hidden_units: tuple[int, ...] = (10, 10),
        activation: str = "relu",
    ) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:  # `model.options.activation` skips params' check
            raise ValueError(f"activation {activation!r} is none of {', '.join(ACTIVATIONS)}")
        widths = [in_features, *hidden_units, out_features]
        layers: list[nn.Module] = []
        for width_in, width_out in itertools.pairwise(widths):
            if layers and ACTIVATIONS[activation] is not None:
                layers.append(getattr(nn, ACTIVATIONS[activation])())
            layers.append(nn.Linear(width_in, width_out))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


def model_classes() -> dict[str, type[nn.Module]]:
    """Every `nn.Module` class written in this module, by class name and by short name."""
    classes = {}
    for name, value in vars(sys.modules[__name__]).items():
        if (
            isinstance(value, type)
            and issubclass(value, nn.Module)
            and value.__module__ == __name__
        ):
            classes[name] = value
            if isinstance(getattr(value, "short_name", None), str):
                classes[value.short_name] = value
    return classes


def model_class(name: str) -> type[nn.Module]:
    """The class that `model.name` names."""
    return find_class("model.name", name, model_classes(), "pytorch_workflow/model_builder.py")


def build_model(
    model: ModelParams | str, seed: int | None = None, in_features: int = 1, out_features: int = 1
) -> nn.Module:
    """A fresh model; with a seed, initialised as in the course: `torch.manual_seed(seed)` first.

    `model` is the `model` section of params (or just a name, with no options).
    """
    if isinstance(model, str):
        model = ModelParams(model, {})
    cls = model_class(model.name)
    accepted = inspect.signature(cls).parameters
    # The layout keys as params give them, unless the options do (a model card's options).
    layout = {k: v for k, v in _layout(cls, model).items() if k not in model.options}
    from_data = {
        **dict.fromkeys(IN_FEATURES, in_features),
        **dict.fromkeys(OUT_FEATURES, out_features),
    }
    given = {key: value for key, value in from_data.items() if key in accepted}
    if seed is not None:
        torch.manual_seed(seed)
    try:
        return construct("model.options", cls, model.options, given, layout)
    except ConstructorError as error:
        if not layout:
            raise
        named = ", ".join(f"model.{key} {value!r}" for key, value in layout.items())
        raise UserError(
            f"{error} (it also got {named}, as its constructor takes them; "
            f"model.options.{next(iter(layout))} gives it another value)"
        ) from None


def takes_out_features(model: nn.Module) -> bool:
    """Whether the model's class gets `out_features` from the data: one output per class."""
    return any(name in inspect.signature(type(model)).parameters for name in OUT_FEATURES)


def constructor_options(model: ModelParams) -> Options:
    """What the model's constructor gets from params (besides the data's `in_features` and
    `out_features`): what the model card records to build it again."""
    return {**_layout(model_class(model.name), model), **model.options}


def _layout(cls: type[nn.Module], model: ModelParams) -> Options:
    """The layout keys of params (`model.hidden_units`, `model.activation`) that the class's
    constructor takes."""
    accepted = inspect.signature(cls).parameters
    return {key: value for key, value in model.architecture().items() if key in accepted}
