"""`python -m pytorch_workflow.predict`: careless inputs get one line and lose nothing."""

import gzip
import json
import os
import shutil

import pytest

from pytorch_workflow.errors import UserError
from pytorch_workflow.export import CARD_FILE, read_card
from tests.conftest import REPO_ROOT, predict
from tests.test_bad_inputs import assert_clean_failure

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("x\n0.5\nabc\n", "row 2, column 'x': 'abc' is not a finite float32 number"),
        ("x\n0.5\n1e39\n", "row 2, column 'x': '1e39' is not a finite float32 number"),
        ("a,b\n1,2\n", "expected column(s) 'x'; missing 'x'"),
        ("X\n0.5\n", "expected column(s) 'x'; missing 'x'; did you mean 'X'?"),  # another name
        ("x;n\n0.5;1\n", "the header has ';' between names and no comma"),
        (
            gzip.compress(b"x\n0.5\n", mtime=0),
            "the file is compressed; name it x.csv.gz, which is read",
        ),
        ("x,n\n0.1,a\n\n0.2,b,c\n", "row 2 has 3 fields; the header has 2"),  # blank: no row
        (
            b"x,n\n0.1,a\n0.2,\xff\xfe\n\n",
            "column 'n': CSV conversion error to string: invalid UTF8 data; save the file as UTF-8",
        ),
        ("x\n", "has no rows"),
        ("", "not a readable CSV"),
        ("x\n1\n" + "2," * 2_500_000 + "3\n", "row 2 is longer than 4 MiB"),
        (
            b"x,city\n0.5,Z\xfcrich\n",  # Windows-1252
            "column 'city': CSV conversion error to string: invalid UTF8 data; save the file as "
            "UTF-8",
        ),
    ],
)
def test_predict_names_the_problem_in_the_input_csv(reproduced, tmp_path, text, message):
    repo, _ = reproduced
    inputs = tmp_path / "x.csv"
    inputs.write_bytes(text if isinstance(text, bytes) else text.encode())

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
    assert_clean_failure(
        predict(repo, inputs, tmp_path / "no-such-folder" / "out.csv"),
        "no-such-folder/out.csv: its folder ",
        "no-such-folder does not exist; create it first",
    )
    assert not (tmp_path / "no-such-folder").exists()


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
            "standardization needs finite float32 means and stds > 0",
        ),
        # A 401-digit integer: JSON allows it, float() refuses it.
        (
            "edit:standardization={'mean': [10**400], 'std': [1]}",
            "standardization needs finite float32 means and stds > 0",
        ),
        (
            "edit:standardization={'mean': [0], 'std': [1e-50]}",  # 0 as float32
            "standardization needs finite float32 means and stds > 0",
        ),
        ("edit:task='clustering'", "task must be one of regression, binary_classification"),
        ("edit:task=['regression']", "task must be one of regression"),
        ("edit:output='logit'", "output must be 'value' for task regression"),
        ("edit:model_source=1", "model_source must be the sha256 of the model's code"),
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


def test_a_card_whose_model_class_is_gone_says_so_and_what_to_do(reproduced, tmp_path):
    repo, _ = reproduced
    bundle = tmp_path / "bundle"
    shutil.copytree(repo / "models/export", bundle)
    card = json.loads((bundle / "model_card.json").read_text())
    (bundle / "model_card.json").write_text(json.dumps({**card, "model": "CircleModel"}))
    inputs = tmp_path / "x.csv"
    inputs.write_text("x\n0.5\n")

    result = predict(repo, inputs, tmp_path / "out.csv", "--bundle", bundle)
    trusted = predict(repo, inputs, tmp_path / "out.csv", "--bundle", bundle, "--trust-program")

    assert_clean_failure(
        result,
        "model_card.json: its model 'CircleModel' is no class of pytorch_workflow/model_builder.py "
        "here (",
        "check out the commit that exported it, or run the bundle's program with --trust-program",
    )
    assert trusted.returncode == 0, trusted.stderr
    assert (tmp_path / "out.csv").read_text().startswith("x,prediction\n0.5,")


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


def bundle_with_card(repo, tmp_path, **fields):
    """A copy of the course's bundle, its model card's top-level fields changed."""
    bundle = tmp_path / "bundle"
    shutil.copytree(repo / "models/export", bundle)
    card = json.loads((bundle / "model_card.json").read_text())
    (bundle / "model_card.json").write_text(json.dumps(card | fields))
    return bundle


def test_a_card_nested_too_deep_to_parse_is_named(reproduced, tmp_path):
    repo, _ = reproduced
    bundle = bundle_with_card(repo, tmp_path)
    (bundle / "model_card.json").write_text("[" * 100_000 + "]" * 100_000)  # under 1 MiB
    inputs = tmp_path / "x.csv"
    inputs.write_text("x\n0.5\n")

    result = predict(repo, inputs, tmp_path / "out.csv", "--bundle", bundle)

    assert_clean_failure(result, "model_card.json: not a readable model card")
    assert not (tmp_path / "out.csv").exists()


def test_predictions_of_inf_or_nan_are_refused_not_written(reproduced, tmp_path):
    repo, _ = reproduced
    # A std that float32 holds but that is all but 0: any x but the mean standardises to inf.
    bundle = bundle_with_card(repo, tmp_path, standardization={"mean": [0], "std": [1e-45]})
    inputs = tmp_path / "x.csv"
    inputs.write_text("x\n0\n0.5\n1\n")

    result = predict(repo, inputs, tmp_path / "out.csv", "--bundle", bundle)

    assert_clean_failure(result, "the model gives inf or NaN for 2 of 3 rows, first row 2")
    assert not (tmp_path / "out.csv").exists()


@pytest.mark.parametrize(
    ("card", "text", "column"),
    [
        ({}, "x,prediction\n0.5,1\n", "prediction"),
        (
            {"task": "binary_classification", "output": "logit"},
            "x,probability\n1,1\n",
            "probability",
        ),
        (
            {"task": "multiclass_classification", "output": "logits", "classes": [0, 1, 2]},
            "x,predicted,probability_2\n1,1,1\n",
            "predicted",
        ),
        (
            {"task": "multiclass_classification", "output": "logits", "classes": [0, 1, 2]},
            "x,probability_2\n1,1\n",
            "probability_2",
        ),
    ],
)
def test_an_input_column_that_predict_would_add_is_refused(
    reproduced, tmp_path, card, text, column
):
    repo, _ = reproduced
    # Refused before the model is loaded: the card alone says which columns predict adds.
    bundle = bundle_with_card(repo, tmp_path, **card)
    inputs = tmp_path / "x.csv"
    inputs.write_text(text)

    result = predict(repo, inputs, tmp_path / "out.csv", "--bundle", bundle)

    assert_clean_failure(result, f"already has a column {column!r}, which predict adds", "rename")
    assert not (tmp_path / "out.csv").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--version", ""], "--version: empty"),
        (["--stage", ""], "--stage: empty"),
        (["--version", "  "], "--version: empty"),
        (["--version=--help"], "--version '--help': not a version or stage name"),
        (["--stage=-prod"], "--stage '-prod': not a version or stage name"),
    ],
)
def test_an_empty_or_option_like_release_name_is_refused(tmp_path, args, message):
    inputs = tmp_path / "x.csv"
    inputs.write_text("x\n0.5\n")

    result = predict(REPO_ROOT, inputs, tmp_path / "out.csv", *args)

    assert_clean_failure(result, message)
    assert not (tmp_path / "out.csv").exists()


def test_a_pipe_in_place_of_the_model_card_is_refused_without_reading_it(tmp_path):
    os.mkfifo(tmp_path / CARD_FILE)

    with pytest.raises(UserError, match="not a regular file"):
        read_card(tmp_path)
