from pathlib import Path

import pytest

from pytorch_workflow.errors import UserError
from tools.gate import Allowance, judge, load_allowances, parse_allowances
from tools.tolerance import numbers_of

REPO_ROOT = Path(__file__).resolve().parents[1]
MAE = Allowance("metrics/evaluate.json", "mae", "max_increase", 0.001)
R2 = Allowance("metrics/evaluate.json", "r2", "max_decrease", 0.05)


def diff(metric: str, old: float | None, new: float | None) -> dict:
    return {"metrics/evaluate.json": {metric: {"old": old, "new": new}}}


def test_the_committed_gate_guards_test_mae():
    allowances = load_allowances(REPO_ROOT / "regression_gate.yaml")

    by_name = {allowance.name: allowance for allowance in allowances}
    assert by_name["metrics/evaluate.json:mae"].direction == "max_increase"
    assert by_name["metrics/evaluate.json:r2"].direction == "max_decrease"


@pytest.mark.parametrize("new", [0.0568, 0.0578, 0.01])
def test_a_rise_within_the_allowance_or_a_fall_passes(new):
    (verdict,) = judge([MAE], diff("mae", 0.0568, new))

    assert verdict.passed


def test_a_rise_beyond_the_allowance_fails_and_says_by_how_much():
    (verdict,) = judge([MAE], diff("mae", 0.05, 0.075))

    assert not verdict.passed
    assert verdict.describe() == (
        "metrics/evaluate.json:mae rose by 0.025 (0.05 -> 0.075), more than the allowed 0.001"
    )


def test_a_higher_is_better_metric_fails_when_it_falls_too_far():
    fell, rose = judge([R2], diff("r2", 0.9, 0.8)) + judge([R2], diff("r2", 0.9, 0.99))

    assert not fell.passed and "r2 fell by 0.1" in fell.describe()
    assert rose.passed


def test_a_metric_lost_by_the_workspace_fails_a_new_one_passes_and_another_tasks_is_skipped():
    (lost,) = judge([MAE], diff("mae", 0.05, None))
    (new,) = judge([MAE], diff("mae", None, 0.05))
    (nowhere,) = judge([MAE], diff("accuracy", 0.9, 0.95))

    assert not lost.passed and "missing from the workspace" in lost.describe()
    assert new.passed
    assert nowhere.passed and not nowhere.recorded


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("metrics/evaluate.json:\n  mae: {max_rise: 0.1}\n", "must be {max_increase: N}"),
        ("metrics/evaluate.json:\n  mae: {max_increase: -1}\n", "must be a number >= 0"),
        ("metrics/evaluate.json:\n  mae: {max_increase: lots}\n", "must be a number >= 0"),
        ("metrics/evaluate.json: [mae]\n", "must map metric names"),
        ("[]\n", "expected metrics files"),
        ("metrics/evaluate.json:\n  mae: {max_increase: 1}\n  mae: {max_increase: 2}\n", "line 3:"),
        ("metrics/evaluate.json:\n  mae: {max_increase: [\n", "YAML syntax error"),
    ],
)
def test_a_mistake_in_the_gate_file_is_a_one_line_error(tmp_path, text, message):
    gate = tmp_path / "gate.yaml"
    gate.write_text(text)

    with pytest.raises(UserError) as error:
        load_allowances(gate)

    assert message in str(error.value) and "\n" not in str(error.value)


def test_the_gate_reads_yaml_as_dvc_does():
    # YAML 1.2, as DVC reads params: PyYAML's YAML 1.1 would read 1e-3 as text.
    (allowance,) = parse_allowances("metrics/evaluate.json:\n  mae: {max_increase: 1e-3}\n", "g")

    assert allowance.amount == 0.001


@pytest.mark.parametrize(
    ("text", "message"), [("{", "not valid JSON"), ("[1]", "not a JSON object")]
)
def test_a_results_file_that_is_not_a_json_object_is_a_one_line_error(text, message):
    with pytest.raises(UserError) as error:
        numbers_of("metrics/split.json", text)

    assert str(error.value).startswith(f"metrics/split.json: {message}")
    assert "\n" not in str(error.value)
