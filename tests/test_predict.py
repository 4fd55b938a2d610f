"""`python -m pytorch_workflow.predict`: careless inputs get one line and lose nothing."""

import json
import shutil

import pytest

from tests.conftest import predict
from tests.test_bad_inputs import assert_clean_failure

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("x\n0.5\nabc\n", "row 2, column 'x': 'abc' is not a finite float32 number"),
        ("x\n0.5\n1e39\n", "row 2, column 'x': '1e39' is not a finite float32 number"),
        ("a,b\n1,2\n", "expected column(s) x; missing x"),
        ("x\n", "has no rows"),
        ("", "not a readable CSV"),
    ],
)
def test_predict_names_the_problem_in_the_input_csv(reproduced, tmp_path, text, message):
    repo, _ = reproduced
    inputs = tmp_path / "x.csv"
    inputs.write_text(text)

    result = predict(repo, inputs, tmp_path / "out.csv")

    assert_clean_failure(result, "x.csv", message)
    assert not (tmp_path / "out.csv").exists()


@pytest.mark.parametrize("through_a_link", [False, True])
def test_predict_refuses_to_overwrite_its_input(reproduced, tmp_path, through_a_link):
    repo, _ = reproduced
    inputs = tmp_path / "x.csv"
    inputs.write_text("id,x\na,0.5\n")
    output = inputs
    if through_a_link:
        output = tmp_path / "link.csv"
        output.symlink_to(inputs)

    result = predict(repo, inputs, output)

    assert_clean_failure(result, "is the input file; predictions would overwrite it")
    assert inputs.read_text() == "id,x\na,0.5\n"


def test_predict_refuses_folders_where_files_belong(reproduced, tmp_path):
    repo, _ = reproduced
    inputs = tmp_path / "x.csv"
    inputs.write_text("x\n0.5\n")
    (tmp_path / "a-file").write_text("")

    assert_clean_failure(
        predict(repo, inputs, tmp_path), "is a folder; give the output CSV's file name"
    )
    assert_clean_failure(predict(repo, tmp_path, tmp_path / "out.csv"), "not a regular file")
    assert_clean_failure(predict(repo, inputs, tmp_path / "a-file" / "out.csv"), "its folder")


@pytest.mark.parametrize(
    ("card", "message"),
    [
        ({}, "model must be a class of model_builder: LinearRegressionModel"),
        ("edit:model=[]", "model must be a class of model_builder"),
        ("edit:model_options=[]", "model_options must be a mapping"),
        ([1, 2], "expected a JSON object, got list"),
        ("edit:input.columns=[]", "input.columns must be a list of column names"),
        (
            "edit:standardization={'mean': [0], 'std': [0]}",
            "standardization needs finite means and stds > 0",
        ),
    ],
)
def test_a_broken_model_card_is_named(reproduced, tmp_path, card, message):
    repo, _ = reproduced
    bundle = tmp_path / "bundle"
    shutil.copytree(repo / "models/export", bundle)
    if isinstance(card, str):
        payload = json.loads((bundle / "model_card.json").read_text())
        key, _, value = card.removeprefix("edit:").partition("=")
        section, _, name = key.partition(".")
        value = eval(value)  # the test's own literal
        if name:
            payload[section][name] = value
        else:
            payload[section] = value
        card = payload
    (bundle / "model_card.json").write_text(json.dumps(card))
    inputs = tmp_path / "x.csv"
    inputs.write_text("x\n0.5\n")

    result = predict(repo, inputs, tmp_path / "out.csv", "--bundle", bundle)

    assert_clean_failure(result, "model_card.json: not a model card of this pipeline", message)


def test_a_card_that_names_another_device_still_predicts_on_the_cpu(reproduced, tmp_path):
    repo, _ = reproduced
    bundle = tmp_path / "bundle"
    shutil.copytree(repo / "models/export", bundle)
    card = json.loads((bundle / "model_card.json").read_text())
    card["device"] = "cuda:0"
    (bundle / "model_card.json").write_text(json.dumps(card))
    inputs = tmp_path / "x.csv"
    inputs.write_text("x\n0.5\n")

    result = predict(repo, inputs, tmp_path / "out.csv", "--bundle", bundle)

    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out.csv").read_text().startswith("x,prediction\n")
