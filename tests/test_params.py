from pathlib import Path

import pytest
import yaml

from pytorch_workflow.errors import UserError
from pytorch_workflow.params import load_params

DEFAULTS = yaml.safe_load((Path(__file__).resolve().parents[1] / "params.yaml").read_text())


def write_params(tmp_path: Path, changes: dict) -> Path:
    params = {section: (dict(v) if isinstance(v, dict) else v) for section, v in DEFAULTS.items()}
    for dotted, value in changes.items():
        section, _, key = dotted.partition(".")
        if key:
            params[section][key] = value
        else:
            params[section] = value
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def test_the_committed_params_are_the_course_defaults():
    params = load_params(Path(__file__).resolve().parents[1] / "params.yaml")

    assert params.seed == 42 and params.device == "auto"
    assert (params.data.weight, params.data.bias, params.data.step) == (0.7, 0.3, 0.02)
    assert params.split.train_fraction == 0.8 and params.split.shuffle is False
    assert params.model.name == "linear_regression"
    assert (params.train.epochs, params.train.lr, params.train.loss) == (100, 0.01, "l1")


def test_numbers_written_as_strings_by_dvc_exp_run_are_accepted(tmp_path):
    params = load_params(write_params(tmp_path, {"train.lr": "1e-06", "train.epochs": "300"}))

    assert params.train.lr == 1e-6
    assert params.train.epochs == 300


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"train.lr": "abc"}, "train.lr must be a number > 0, got 'abc'"),
        ({"train.lr": 0}, "train.lr must be a number > 0"),
        ({"train.epochs": 2.5}, "train.epochs must be a whole number >= 1"),
        ({"split.train_fraction": 1.0}, "split.train_fraction must be a number > 0 and < 1"),
        ({"data.end": -1.0}, "data.end must be greater than data.start"),
        ({"model.name": "mlp"}, "model.name must be one of linear_regression"),
        ({"device": "tpu"}, "device must be auto, cpu, cuda, cuda:N or mps"),
        ({"train.lrr": 0.1}, "unknown key 'train.lrr'; did you mean train.lr?"),
    ],
)
def test_bad_params_name_the_key_and_value(tmp_path, changes, message):
    with pytest.raises(UserError) as error:
        load_params(write_params(tmp_path, changes))

    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_a_missing_key_is_named(tmp_path):
    path = write_params(tmp_path, {})
    text = path.read_text().replace("  momentum: 0.0\n", "")
    path.write_text(text)

    with pytest.raises(UserError, match=r"missing key 'train\.momentum'"):
        load_params(path)


def test_yaml_syntax_errors_give_the_line(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("seed: 42\ntrain: [unclosed\n")

    with pytest.raises(UserError, match=r"params.yaml: line \d+: YAML syntax error"):
        load_params(path)
