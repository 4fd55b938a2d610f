import pytest
import torch

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
    assert all(parameter.requires_grad for parameter in model.parameters())


def test_v2_model_with_seed_42_starts_at_the_course_values():
    model = build_model("linear_regression_v2", seed=42)

    assert isinstance(model, LinearRegressionModelV2)
    assert list(model.state_dict()) == ["linear_layer.weight", "linear_layer.bias"]
    assert model.linear_layer.weight.item() == pytest.approx(0.7645, abs=1e-4)
    assert model.linear_layer.bias.item() == pytest.approx(0.8300, abs=1e-4)


def test_forward_is_weights_times_x_plus_bias():
    model = build_model("linear_regression", seed=0)
    X = torch.tensor([[0.0], [1.0], [2.0]])

    with torch.inference_mode():
        predicted = model(X)

    assert torch.equal(predicted, model.weights * X + model.bias)
    assert predicted.shape == (3, 1)


def test_unknown_model_name_is_a_user_error():
    with pytest.raises(UserError, match="linear_regression, linear_regression_v2"):
        build_model("resnet", seed=0)
