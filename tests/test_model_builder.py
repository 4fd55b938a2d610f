import hashlib
import inspect
import math
import textwrap

import pytest
import torch

from pytorch_workflow import model_builder
from pytorch_workflow.errors import UserError
from pytorch_workflow.model_builder import (
    MLP,
    LinearRegressionModel,
    LinearRegressionModelV2,
    build_model,
    constructor_options,
    takes_out_features,
)
from pytorch_workflow.params import ModelParams, construct


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
    model = build_model(ModelParams("CircleModelV2", {"hidden": 6}), seed=42, in_features=2)

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
        build_model(ModelParams(name, options), in_features=2)

    assert message in str(error.value) and "\n" not in str(error.value)


class MisspeltLayer(torch.nn.Module):
    """A user's model whose constructor has a typo."""

    def __init__(self, in_features: int, hidden: int = 4) -> None:
        super().__init__()
        self.layer = torch.nn.Linaer(in_features, hidden)


class NegativeLayer(torch.nn.Module):
    """A user's model that torch refuses to build with the options given."""

    def __init__(self, hidden: int = 4) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(1, hidden)


def test_a_mistake_in_a_users_constructor_names_its_line_not_the_options():
    misspelt = MisspeltLayer.__init__.__code__.co_firstlineno + 2
    negative = NegativeLayer.__init__.__code__.co_firstlineno + 2

    with pytest.raises(UserError) as bug:
        construct("model.options", MisspeltLayer, {"hidden": 3}, {"in_features": 2})
    with pytest.raises(UserError) as refused:
        construct("model.options", NegativeLayer, {"hidden": -1}, {})

    assert str(bug.value) == (
        "MisspeltLayer failed with model.options {'hidden': 3}: AttributeError: module "
        f"'torch.nn' has no attribute 'Linaer' (tests/test_model_builder.py, line {misspelt})"
    )
    assert str(refused.value).startswith("model.options: NegativeLayer refused {'hidden': -1}: ")
    assert str(refused.value).endswith(f" (tests/test_model_builder.py, line {negative})")


def test_the_mlps_options_are_checked_like_its_params():
    with pytest.raises(UserError) as unknown:
        build_model(ModelParams("mlp", {"hidden": 16}, (64, 64), "relu"), in_features=2)
    with pytest.raises(UserError) as refused:
        build_model(ModelParams("mlp", {"activation": "relux"}, (64, 64), "relu"), in_features=2)

    assert str(unknown.value) == (
        "model.options: MLP has no option 'hidden'; did you mean hidden_units? (where one is "
        "left from another run, -S model.options=null empties model.options)"
    )
    assert str(refused.value).startswith(
        "model.options: MLP refused {'activation': 'relux'}: activation 'relux' is none of "
        "relu, tanh, sigmoid, none (pytorch_workflow/model_builder.py, line "
    )
    assert str(refused.value).endswith(
        "(it also got model.hidden_units (64, 64), as its constructor takes them; "
        "model.options.hidden_units gives it another value)"
    )


# The course's chapter 02 classes, as its notebook writes them (02_pytorch_classification).
COURSE_CLASSES = textwrap.dedent(
    """
    class CircleModelV0(nn.Module):
        def __init__(self):
            super().__init__()
            self.layer_1 = nn.Linear(in_features=2, out_features=5)
            self.layer_2 = nn.Linear(in_features=5, out_features=1)

        def forward(self, x):
            return self.layer_2(self.layer_1(x))

    class CircleModelV1(nn.Module):
        def __init__(self):
            super().__init__()
            self.layer_1 = nn.Linear(in_features=2, out_features=10)
            self.layer_2 = nn.Linear(in_features=10, out_features=10)
            self.layer_3 = nn.Linear(in_features=10, out_features=1)

        def forward(self, x):
            return self.layer_3(self.layer_2(self.layer_1(x)))

    class CircleModelV2(nn.Module):
        def __init__(self):
            super().__init__()
            self.layer_1 = nn.Linear(in_features=2, out_features=10)
            self.layer_2 = nn.Linear(in_features=10, out_features=10)
            self.layer_3 = nn.Linear(in_features=10, out_features=1)
            self.relu = nn.ReLU()

        def forward(self, x):
            return self.layer_3(self.relu(self.layer_2(self.relu(self.layer_1(x)))))

    class BlobModel(nn.Module):
        def __init__(self, input_features, output_features, hidden_units=8):
            super().__init__()
            self.linear_layer_stack = nn.Sequential(
                nn.Linear(in_features=input_features, out_features=hidden_units),
                nn.Linear(in_features=hidden_units, out_features=hidden_units),
                nn.Linear(in_features=hidden_units, out_features=output_features),
            )

        def forward(self, x):
            return self.linear_layer_stack(x)
    """
)


@pytest.mark.parametrize(
    ("course", "hidden_units", "activation", "classes"),
    [
        ("CircleModelV0()", (5,), "none", 1),
        ("CircleModelV1()", (10, 10), "none", 1),
        ("CircleModelV2()", (10, 10), "relu", 1),
        ("BlobModel(2, 4)", (8, 8), "none", 4),
    ],
)
def test_the_mlp_from_params_is_the_course_model_weight_for_weight(
    course, hidden_units, activation, classes
):
    namespace: dict = {"nn": torch.nn}
    exec(COURSE_CLASSES, namespace)
    torch.manual_seed(42)
    theirs = eval(course, namespace)
    ours = build_model(ModelParams("mlp", {}, hidden_units, activation), 42, 2, classes)
    X = torch.randn(16, 2)

    assert isinstance(ours, MLP)
    expected = list(theirs.state_dict().values())
    assert all(map(torch.equal, ours.state_dict().values(), expected))
    assert len(ours.state_dict()) == len(expected)
    with torch.inference_mode():
        assert torch.equal(ours(X), theirs(X))


def test_the_course_blob_model_gets_the_datas_sizes_by_its_own_names():
    namespace = vars(model_builder)
    before = set(namespace)
    exec(COURSE_CLASSES, namespace)  # as if pasted into model_builder.py
    try:
        model = build_model(
            ModelParams("BlobModel", {"hidden_units": 8}), seed=42, in_features=2, out_features=4
        )
    finally:
        for name in set(namespace) - before:
            del namespace[name]

    assert takes_out_features(model)
    assert model(torch.zeros(3, 2)).shape == (3, 4)


def test_the_card_records_the_layout_only_for_a_model_that_takes_it():
    layout = ModelParams("mlp", {}, (32, 32), "tanh")
    linear = ModelParams("linear_regression", {}, (32, 32), "tanh")

    assert constructor_options(layout) == {"hidden_units": (32, 32), "activation": "tanh"}
    assert constructor_options(linear) == {}
    rebuilt = build_model(ModelParams("mlp", constructor_options(layout)), in_features=3)
    assert [layer.out_features for layer in rebuilt.layers if hasattr(layer, "out_features")] == [
        32,
        32,
        1,
    ]


class _ReturnsATuple(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x, x


class _BranchesOnTheData(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x if x.sum() > 0 else -x


def test_a_forward_that_returns_no_tensor_is_one_line():
    from pytorch_workflow.dataloaders import Batch
    from pytorch_workflow.engine import forward_pass

    batch = Batch(torch.zeros(2, 1), torch.zeros(2, 1), 1.0, 2)

    with pytest.raises(UserError) as error:
        forward_pass(_ReturnsATuple(), batch)

    assert str(error.value) == (
        "model.name: _ReturnsATuple.forward returns a tuple; expected a tensor, one output per row"
    )


def test_a_one_output_model_for_several_classes_names_what_gives_one_per_class():
    from pytorch_workflow.dataloaders import Batch
    from pytorch_workflow.engine import forward_pass

    batch = Batch(torch.zeros(2, 1), torch.zeros(2, dtype=torch.int64), 1.0, 2)
    model = build_model("LinearRegressionModel", seed=0)

    with pytest.raises(UserError) as error:
        forward_pass(model, batch, classes=4)

    assert str(error.value) == (
        "model.name: the model returns shape (2, 1) for a batch of (2, 1); expected (2, 4), one "
        "output per class (4) per row: LinearRegressionModel takes no out_features; a model that "
        "does gets one per class from the data (model.name=mlp, for one)"
    )


def test_a_model_that_torch_export_cannot_trace_is_one_line():
    from pytorch_workflow.export import program_bytes

    with pytest.raises(UserError) as error:
        program_bytes(_BranchesOnTheData(), in_features=1)

    assert str(error.value).startswith("model.name: torch.export cannot trace _BranchesOnTheData")
    assert str(error.value).endswith(
        "a forward that branches on the data's values needs torch.cond"
    )
    assert "\n" not in str(error.value)


def test_a_saved_batch_norm_model_loads_with_its_integer_count(tmp_path):
    from pytorch_workflow.utils import load_model, save_model

    model = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.BatchNorm1d(3))
    model(torch.randn(4, 2))  # one training step's statistics
    save_model(model, tmp_path / "model.pt")

    loaded = load_model(
        torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.BatchNorm1d(3)), tmp_path / "model.pt"
    )

    assert loaded.state_dict()["1.num_batches_tracked"].item() == 1


def test_a_course_model_keeps_the_code_hash_that_its_older_bundles_record():
    from pytorch_workflow.model_code import model_source

    # What bundles exported before helpers were followed record: the class's own source.
    for name in ("linear_regression", "linear_regression_v2", "mlp"):
        source = inspect.getsource(model_builder.model_class(name))
        assert model_source(name) == hashlib.sha256(source.encode()).hexdigest()


# A model file with helpers, a local name that is also a top-level one, a helper defined
# under a condition, a class reached through a table, and a method replaced after the class.
MODEL_FILE = textwrap.dedent(
    """
    import torch
    from torch import nn

    SCALE = 2.0

    def weights(module):
        return module.weight

    if torch.__version__:
        def squash(x):
            return torch.tanh(x) * SCALE

    class Squash(nn.Module):
        def forward(self, x):
            return decorated(squash(x))

    ACTIVATIONS = {"squash": Squash}

    def unused(x):
        return x

    @torch.no_grad()
    def decorated(x):
        return x

    class Model(nn.Module):
        def __init__(self, activation: str = "squash"):
            super().__init__()
            weights = nn.Linear(1, 1)  # a local name, not the function above
            self.layers = nn.Sequential(weights, ACTIVATIONS[activation]())

    def forward(self, x):
        return self.layers(x)

    Model.forward = forward
    """
)


def statements(code: list[str]) -> list[str]:
    return [text.split("\n")[0] for text in code]


def test_the_code_a_model_uses_is_followed_through_the_file_and_only_that():
    from pytorch_workflow.model_code import code_used_by

    used = code_used_by(MODEL_FILE, {"Model"})

    assert statements(used) == [
        "@torch.no_grad()",
        'ACTIVATIONS = {"squash": Squash}',
        "Model.forward = forward",
        "SCALE = 2.0",
        "class Squash(nn.Module):",
        "def forward(self, x):",
        "if torch.__version__:",
    ]
    # Moving a statement in the file changes nothing.
    moved = MODEL_FILE.replace("SCALE = 2.0\n", "").replace(
        "\nclass Model", "SCALE = 2.0\n\nclass Model"
    )
    assert moved != MODEL_FILE and code_used_by(moved, {"Model"}) == used


@pytest.mark.parametrize(
    ("old", "new", "followed"),
    [
        # Each changes what the model runs: the changed code is among what it uses.
        ("torch.tanh(x)", "torch.sigmoid(x)", "torch.sigmoid(x)"),
        (
            "Model.forward = forward",
            "try:\n    Model.forward = torch.compile(forward)\nexcept RuntimeError:\n    pass",
            "torch.compile(forward)",
        ),
        (
            "SCALE = 2.0\n",
            "SCALE = 2.0\n\ndef rescale():\n    global SCALE\n    SCALE = 3.0\n",
            "global SCALE",
        ),
        # Each leaves it alone: another model or helper, a comprehension's variable named as a
        # helper (the module's own name since Python 3.12), a page break, two statements on a line.
        ("class Model(", "class Another(nn.Module):\n    pass\n\nclass Model(", None),
        ("def unused(x):", "def weights_too(x):", None),
        ("SCALE = 2.0\n", "SCALE = 2.0\nSQUARES = [squash for squash in range(3)]\n", None),
        ("SCALE = 2.0\n", "# the helpers \x0c\nSCALE = 2.0\n", None),
        ("SCALE = 2.0\n", "SCALE = 2.0\nWIDTH = (1,\n    2); DEPTH = 3\n", None),
    ],
)
def test_a_change_is_followed_where_the_model_runs_it_and_only_there(old, new, followed):
    from pytorch_workflow.model_code import code_used_by

    changed = MODEL_FILE.replace(old, new, 1)
    used = code_used_by(changed, {"Model"})

    assert changed != MODEL_FILE
    if followed:
        assert any(followed in text for text in used)
    else:
        assert used == code_used_by(MODEL_FILE, {"Model"})
