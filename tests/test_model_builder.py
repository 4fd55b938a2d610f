import math
import textwrap

import pytest
import torch

from pytorch_workflow import model_builder
from pytorch_workflow.errors import UserError
from pytorch_workflow.model_builder import (
    LinearRegressionModel,
    LinearRegressionModelV2,
    build_model,
)


def test_course_model_with_seed_42_starts_at_the_course_values():
    model = build_model("linear_regression", seed=42)

    assert isinstance(model, LinearRegressionModel)
    assert list(model.state_dict()) == ["weights", "bias"]
    assert model.weights.item() == pytest.approx(0.3367, abs=1e-4)
    assert model.bias.item() == pytest.approx(0.1288, abs=1e-4)


def test_v2_model_with_seed_42_starts_at_the_course_values():
    model = build_model("linear_regression_v2", seed=42)

    assert isinstance(model, LinearRegressionModelV2)
    assert list(model.state_dict()) == ["linear_layer.weight", "linear_layer.bias"]
    assert model.linear_layer.weight.item() == pytest.approx(0.7645, abs=1e-4)


@pytest.mark.parametrize("name", ["LinearRegressionModelV2", "linearregressionmodelv2"])
def test_a_model_is_named_by_its_class_in_any_case(name):
    assert isinstance(build_model(name), LinearRegressionModelV2)


def test_forward_is_weights_times_x_plus_bias():
    model = build_model("linear_regression", seed=0)
    X = torch.tensor([[0.0], [1.0], [2.0]])

    with torch.inference_mode():
        assert torch.equal(model(X), model.weights * X + model.bias)


def test_k_features_start_at_the_scale_of_one_and_keep_the_course_keys():
    model = build_model("linear_regression", seed=42, in_features=30)
    torch.manual_seed(42)
    draws = torch.randn(30)

    assert list(model.state_dict()) == ["weights", "bias"]
    assert torch.equal(model.weights.detach(), draws / math.sqrt(30))


def test_k_features_give_one_output_per_row():
    model = build_model("linear_regression", seed=1, in_features=3)
    X = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])

    with torch.inference_mode():
        predicted = model(X)

    assert predicted.shape == (2, 1) and predicted[1].item() == model.bias.item()
    expected = (model.weights * X[0]).sum() + model.bias
    assert predicted[0].item() == pytest.approx(expected.item(), rel=1e-6)


# The course's chapter 02 model, as a user pastes it into model_builder.py (with `hidden` as an
# option): a class is all it takes.
CIRCLE_MODEL = textwrap.dedent(
    """
    class CircleModelV2(nn.Module):
        def __init__(self, in_features: int = 2, hidden: int = 10):
            super().__init__()
            self.layer_1 = nn.Linear(in_features=in_features, out_features=hidden)
            self.layer_2 = nn.Linear(in_features=hidden, out_features=hidden)
            self.layer_3 = nn.Linear(in_features=hidden, out_features=1)
            self.relu = nn.ReLU()

        def forward(self, x):
            return self.layer_3(self.relu(self.layer_2(self.relu(self.layer_1(x)))))
    """
)


@pytest.fixture
def circle_model(monkeypatch):
    namespace = vars(model_builder)
    # The test's own source, run in the module as if it were written in the file.
    exec(CIRCLE_MODEL, namespace)
    yield namespace["CircleModelV2"]
    del namespace["CircleModelV2"]


def test_a_class_written_in_model_builder_is_built_by_name_with_options(circle_model):
    model = build_model("CircleModelV2", seed=42, in_features=2, options={"hidden": 6})

    assert isinstance(model, circle_model)
    assert model.layer_1.out_features == 6
    assert model(torch.zeros(4, 2)).shape == (4, 1)


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("circle_model_v2", {}, "model.name: no class 'circle_model_v2' in"),
        (
            "CircleModelV2",
            {"hiden": 6},
            "CircleModelV2 has no option 'hiden'; did you mean hidden?",
        ),
        ("CircleModelV2", {"in_features": 3}, "model.options.in_features: the pipeline sets"),
        ("CircleModelV2", {"hidden": -1}, "model.options: CircleModelV2 refused {'hidden': -1}"),
    ],
)
def test_model_mistakes_are_one_line(circle_model, name, options, message):
    with pytest.raises(UserError) as error:
        build_model(name, in_features=2, options=options)

    assert message in str(error.value) and "\n" not in str(error.value)
