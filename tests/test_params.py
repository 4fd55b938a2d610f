"""params.yaml: every key checked against one schema, one line naming the key for each mistake."""

import copy
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from pytorch_workflow.errors import UserError
from pytorch_workflow.params import (
    KNOWN_KEYS,
    LOSSES,
    TASKS,
    load_params,
    parse_device,
    undo_hint_after_failed_experiment,
)
from tests.conftest import DEFAULTS, REPO_ROOT, clone_copy, run
from tests.helpers import COURSE_DATA, COURSE_PARAMS, COURSE_SPLIT, COURSE_TRAIN


def write_params(tmp_path: Path, changes: dict) -> Path:
    """The course's params with `changes`: which checks apply depends on the rest (a CSV's data
    has no line to check), so not on what a fork commits."""
    params = copy.deepcopy(COURSE_PARAMS)
    for dotted, value in changes.items():
        section, _, key = dotted.partition(".")
        if key:
            params[section][key] = value
        else:
            params[section] = value
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def test_the_committed_params_are_the_course_defaults_on_the_cpu():
    """This repository's defaults are the course's. A fork that commits defaults of its own
    fails here, and only here: every other test builds the course's params itself, or checks
    the committed results against the committed params."""
    params = load_params(REPO_ROOT / "params.yaml")

    assert params.seed == 42 and params.device == "cpu"
    assert (params.data.weight, params.data.bias, params.data.step) == (0.7, 0.3, 0.02)
    assert params.split.train_fraction == 0.8 and params.split.shuffle is False
    assert params.model.name == "linear_regression" and params.model.options == {}
    assert (params.train.epochs, params.train.lr, params.train.loss) == (100, 0.01, "l1")
    assert params.train.optimizer == "sgd" and params.train.processes == 1
    # All of them, so that the tests' course run is the committed run, made once.
    assert DEFAULTS == COURSE_PARAMS


def test_the_tests_course_params_are_a_complete_valid_params_file(tmp_path):
    params = load_params(write_params(tmp_path, {}))

    assert (params.data, params.split, params.train) == (COURSE_DATA, COURSE_SPLIT, COURSE_TRAIN)


def test_every_key_of_the_committed_file_is_known_and_documented():
    documented = (REPO_ROOT / "docs/params.md").read_text()
    flat = [
        f"{section}.{key}" if isinstance(values, dict) else section
        for section, values in DEFAULTS.items()
        for key in (values if isinstance(values, dict) else [""])
    ]
    assert sorted(flat) == sorted(KNOWN_KEYS)
    for key in KNOWN_KEYS:
        assert f"`{key}`" in documented, key
    for name in (*TASKS, *LOSSES):
        assert f"`{name}`" in documented, name


def test_numbers_written_as_strings_by_dvc_exp_run_are_accepted(tmp_path):
    params = load_params(write_params(tmp_path, {"train.lr": "1e-06", "train.epochs": "300"}))

    assert params.train.lr == 1e-6
    assert params.train.epochs == 300


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"train.lr": "abc"}, "train.lr must be a number > 0 and <= 1e+06, got 'abc'"),
        ({"train.lr": 0}, "train.lr must be a number > 0"),
        ({"train.epochs": 2.5}, "train.epochs must be a whole number >= 1"),
        ({"train.epochs": 1e12}, "train.epochs must be a whole number >= 1 and <= 1,000,000"),
        ({"split.train_fraction": 1.0}, "split.train_fraction must be a number > 0 and < 1"),
        ({"data.end": -1.0}, "data.end must be greater than data.start"),
        ({"data.step": 5e-324}, "data.step=4.94066e-324 makes more than 1e+308 rows"),
        ({"data.step": 1e-300}, "makes 1e+300 rows"),
        ({"data.start": -1e308}, "makes more than 1e+308 rows"),
        ({"data.chunk_rows": 0}, "data.chunk_rows must be a whole number >= 1"),
        ({"seed": 1e20}, "seed must be a whole number >= 0 and <= 4,294,967,295, got 1e+20"),
        ({"seed": 10**30}, "seed must be a whole number"),
        ({"model.name": "my model"}, "model.name must be a class name such as"),
        ({"model.options": [1]}, "model.options must be a mapping of keyword arguments"),
        ({"train.optimizer_options": {"1x": 2}}, "train.optimizer_options must be a mapping"),
        ({"train.scheduler": 3}, "train.scheduler must be null or a class name"),
        ({"device": "tpu"}, "device must be cpu, auto, cuda, cuda:N or mps"),
        ({"device": "cuda:²"}, "device must be cpu, auto, cuda, cuda:N or mps, got 'cuda:²'"),
        ({"train.processes": 0}, "train.processes must be a whole number >= 1"),
        ({"train.optimizer": "lbfgs", "train.batch_size": 8}, "lbfgs takes the whole split"),
        ({"split.stratify": True}, "split.stratify needs a classification task, got regression"),
        ({"train.lrr": 0.1}, "unknown key 'train.lrr'; did you mean train.lr?"),
        ({"train.device": "cuda"}, "unknown key 'train.device'; did you mean device?"),
        ({"train.optimizer": "LBFGS", "train.batch_size": 8}, "lbfgs takes the whole split"),
        ({"train.scheduler_options": {"T_max": 3}}, "train.scheduler_options need a train.sch"),
        ({"model.hidden_units": 10}, "model.hidden_units must be a list of at most 64 layer"),
        ({"model.hidden_units": [10, 0]}, "whole numbers from 1 to 1,000,000, such as [10, 10]"),
        ({"model.hidden_units": [2.5]}, "model.hidden_units must be a list"),
        ({"model.hidden_units": [True]}, "model.hidden_units must be a list"),
        ({"model.hidden_units": ["²"]}, "model.hidden_units must be a list"),
        ({"model.activation": "gelu"}, "model.activation must be one of relu, tanh, sigmoid, none"),
        (
            {"data.source": "csv", "data.target": 2021},
            "data.target must be a non-empty string, got 2021; a name that YAML reads as a value "
            "goes in quotes, as the CSV spells it: -S \"data.target='NAME'\"",
        ),
        (
            {"data.source": "csv", "data.features": [2021, "b"]},
            "got [2021, 'b']; a name that YAML reads as a value goes in quotes, as the CSV "
            "spells it: -S \"data.features=['2021','NAME']\"",
        ),
    ],
)
def test_bad_params_name_the_key_and_value_in_one_line(tmp_path, changes, message):
    with pytest.raises(UserError) as error:
        load_params(write_params(tmp_path, changes))

    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_a_name_from_a_list_is_read_in_any_case_as_the_class_names_are(tmp_path):
    params = load_params(write_params(tmp_path, {"task": "Regression", "train.loss": "L1"}))

    assert (params.task, params.train.loss) == ("regression", "l1")


def test_the_line_keys_do_not_matter_for_a_csv(tmp_path):
    changes = {"data.source": "csv", "data.start": -1e308, "data.end": 1e308}

    assert load_params(write_params(tmp_path, changes)).data.source == "csv"


@pytest.mark.parametrize("device", ["cuda:x", "gpu", "cuda:", ""])
def test_a_device_given_to_predict_is_checked_like_the_param(device):
    with pytest.raises(UserError, match="device must be cpu, auto, cuda, cuda:N or mps"):
        parse_device(device)


def test_a_missing_key_is_named(tmp_path):
    path = write_params(tmp_path, {})
    path.write_text(path.read_text().replace("  log_every: 10\n", ""))

    with pytest.raises(UserError, match=r"missing key 'train\.log_every'"):
        load_params(path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "the file is empty"),
        ("- seed\n", "expected a mapping of keys"),
        ("seed: 42\ntrain: [unclosed\n", "line 3: YAML syntax error"),
        ("a: &a [x, x]\nb: &b [*a, *a]\nc: [*b, *b]\n", "line 2: YAML alias *a"),
        ("seed: " + "[" * 30_000 + "]" * 30_000 + "\n", "nested more than 8 levels"),
        ("seed: 42\n" + "#" * 70_000 + "\n", "a params file is at most 65,536"),
        ("\xff\xfe", "cannot read it"),
        ("seed: 42\nseed: 7\n", 'line 2: duplicate key "seed"; keep one of them'),
        ("seed: " + "9" * 5000 + "\n", "a value cannot be read: Exceeds the limit"),
    ],
    ids=["empty", "list", "syntax", "aliases", "deep", "huge", "not-utf8", "twice", "digits"],
)
def test_params_files_that_are_not_params_are_refused_before_parsing_them(tmp_path, text, message):
    path = tmp_path / "params.yaml"
    path.write_bytes(text.encode("utf-8", "surrogateescape") if text != "\xff\xfe" else b"\xff\xfe")

    with pytest.raises(UserError) as error:
        load_params(path)

    assert message in str(error.value) and "\n" not in str(error.value)


def with_line(tmp_path: Path, key: str, text: str) -> Path:
    """The course's params file with one line written by hand, as a user types it."""
    path = write_params(tmp_path, {})
    section, _, name = key.partition(".")
    lines = path.read_text().splitlines()
    inside = False
    for number, line in enumerate(lines):
        inside = inside or line == f"{section}:"
        if inside and line.strip().startswith(f"{name}:"):
            lines[number] = f"  {name}: {text}"
            break
    path.write_text("\n".join(lines) + "\n")
    return path


def test_params_are_read_as_dvc_reads_them_yaml_1_2():
    # YAML 1.1 (PyYAML) reads 0300 as octal 192 and 1:10 as 70; DVC, as 300 and "1:10".
    from dvc.utils.serialize import parse_yaml

    text = "epochs: 0300\nseed: 1:10\nflag: yes\n"
    assert parse_yaml(text, "params.yaml") == {"epochs": 300, "seed": "1:10", "flag": "yes"}


def test_a_number_that_yaml_1_1_reads_otherwise_means_what_dvc_shows(tmp_path):
    assert load_params(with_line(tmp_path, "train.epochs", "0300")).train.epochs == 300
    with pytest.raises(UserError, match=r"train.epochs must be a whole number >= 1.*got '1:10'"):
        load_params(with_line(tmp_path, "train.epochs", "1:10"))


def test_a_pipe_in_place_of_params_is_refused_without_reading_it(tmp_path):
    path = tmp_path / "params.yaml"
    os.mkfifo(path)

    with pytest.raises(UserError, match="not a regular file"):
        load_params(path)


# ---- the hint after a failed `dvc exp run` ------------------------------------------------------


@pytest.fixture
def experiment_workspace(tmp_path, monkeypatch):
    """A git repository with the course's params committed, as a workspace `dvc exp run` runs in."""
    text = yaml.safe_dump(COURSE_PARAMS, sort_keys=False)
    (tmp_path / "params.yaml").write_text(text)
    for command in (["init", "-q"], ["add", "params.yaml"], ["commit", "-qm", "params"]):
        subprocess.run(
            ["git", "-c", "user.name=t", "-c", "user.email=t@t", *command], cwd=tmp_path, check=True
        )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DVC_EXP_NAME", "exp-1")
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    return tmp_path / "params.yaml", text


def test_the_undo_hint_names_each_changed_key_with_its_committed_value(experiment_workspace):
    path, text = experiment_workspace
    assert undo_hint_after_failed_experiment() == ""  # as committed
    path.write_text(text + "# a comment\n")
    assert undo_hint_after_failed_experiment() == ""  # no key differs

    path.write_text(text.replace("seed: 42", "seed: 7").replace("epochs: 100", "epochs: 5"))
    assert undo_hint_after_failed_experiment() == (
        "; dvc exp run left params.yaml changed from the last commit (seed, was 42; "
        "train.epochs, was 100): edit it, or restore the committed file with "
        "`git show HEAD:./params.yaml > params.yaml`"
    )
    values = copy.deepcopy(COURSE_PARAMS)
    values["data"] = {key: 1 for key in values["data"]}
    path.write_text(yaml.safe_dump(values, sort_keys=False))
    assert "; and " in undo_hint_after_failed_experiment()  # too many to name in one line

    path.write_text("seed: [")  # not YAML: the keys cannot be compared, the file still differs
    assert "changed from the last commit: edit it" in undo_hint_after_failed_experiment()


def test_no_undo_hint_where_the_workspace_was_not_changed_or_git_is_missing(
    experiment_workspace, monkeypatch, tmp_path
):
    path, text = experiment_workspace
    path.write_text(text.replace("seed: 42", "seed: 7"))
    monkeypatch.setenv("DVC_ROOT", str(tmp_path / "elsewhere"))  # a queued run's copy
    assert undo_hint_after_failed_experiment() == ""
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    monkeypatch.setenv("PATH", "")  # no git
    assert undo_hint_after_failed_experiment() == ""
    monkeypatch.delenv("DVC_EXP_NAME")  # not an experiment
    assert undo_hint_after_failed_experiment() == ""


def test_a_quoted_true_or_false_is_a_flag_where_the_option_is_one():
    from pytorch_workflow.params import construct

    class Optimizer:
        def __init__(self, lr: float, nesterov: bool = False, momentum: float = 0.0) -> None:
            self.nesterov, self.momentum = nesterov, momentum

    built = construct("train.optimizer_options", Optimizer, {"nesterov": "false"}, {"lr": 0.1})

    assert built.nesterov is False
    with pytest.raises(UserError, match=r"\.momentum: Optimizer takes a number, got '0_9'"):
        # Python's float() reads 9.0; DVC shows text
        construct("train.optimizer_options", Optimizer, {"momentum": "0_9"}, {"lr": 0.1})


def test_text_for_an_option_annotated_as_a_number_is_refused_unless_its_default_is_text():
    from pytorch_workflow.params import construct

    class Model:
        def __init__(self, width: "int" = 8, depth: int = "auto") -> None:
            self.width, self.depth = width, depth

    assert construct("model.options", Model, {"width": "16"}, {}).width == 16
    assert construct("model.options", Model, {"depth": "3"}, {}).depth == "3"
    with pytest.raises(UserError, match=r"^model.options.width: Model takes a number, got 'x'$"):
        construct("model.options", Model, {"width": "x"}, {})


def test_a_key_of_an_earlier_params_file_says_where_it_went(tmp_path):
    path = tmp_path / "params.yaml"
    params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    params["train"]["momentum"] = 0.9
    path.write_text(yaml.safe_dump(params))

    with pytest.raises(
        UserError,
        match=r"unknown key 'train.momentum'; it is "
        r"train.optimizer_options.momentum \(an option of SGD\) now$",
    ):
        load_params(path)


@pytest.mark.slow
def test_dvc_empties_lists_and_removes_options_leaving_params_yaml_readable(fresh_repo, tmp_path):
    """dvc 3.67.1 writes a list or mapping emptied after a comment beside its key as broken YAML
    (`YAML file structure is corrupted`): the committed params.yaml keeps those comments on the
    line above. Each run stops at the params check (train.lr=abc), after DVC wrote its values."""
    repo = clone_copy(fresh_repo, tmp_path / "repo")
    for overrides in (
        ["train.lr=abc"],  # the first write turns the lists into block lists
        ["model.hidden_units=[]", "data.features=[x]"],
        ["data.features=[]"],
        ["+model.options.hidden=8", "+train.optimizer_options.momentum=0.9"],
        ["~model.options.hidden", "~train.optimizer_options.momentum"],
    ):
        settings = [part for override in overrides for part in ("-S", override)]
        result = run(["dvc", "exp", "run", *settings], repo, check=False)
        assert "error: params.yaml:" in result.stderr, result.stderr
        assert "corrupted" not in result.stderr

    values = yaml.safe_load((repo / "params.yaml").read_text())
    assert values["model"]["hidden_units"] == [] and values["data"]["features"] == []
    assert values["model"]["options"] == {} and values["train"]["optimizer_options"] == {}
