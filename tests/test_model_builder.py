import math

import pytest
import torch

from pytorch_workflow.model_builder import (
    LinearRegressionModel,
    LinearRegressionModelV2,
    build_model,
)
from pytorch_workflow.portable import row_parameters


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


def test_k_features_add_up_feature_by_feature():
    model = build_model("linear_regression", seed=1, in_features=3)
    X = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])

    with torch.inference_mode():
        predicted = model(X)

    w, b = model.weights, model.bias
    assert predicted.shape == (2, 1) and predicted[1].item() == b.item()
    assert predicted[0].item() == ((w[0] * 1.0 + w[1] * 2.0) + w[2] * 3.0 + b).item()


@pytest.mark.parametrize("features", [1, 5])
def test_the_model_with_its_parameters_repeated_per_row_computes_the_same(features):
    model = build_model("linear_regression", seed=3, in_features=features)
    X = torch.randn(64, features)

    with torch.no_grad():
        per_row = torch.func.functional_call(model, row_parameters(model, 64), (X,))

        assert torch.equal(per_row, model(X))
