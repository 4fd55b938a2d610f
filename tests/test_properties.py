"""Generated params and CSV contents at the edges, through the entry points' own main functions.

Every case must either succeed or end with exactly one `error:` line and exit status 2: never a
traceback, and never a change to a file it was not asked to write. Examples Hypothesis found
once are kept below with `@example`.
"""

import contextlib
import copy
import io
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from pytorch_workflow import predict
from pytorch_workflow.errors import UserError
from pytorch_workflow.params import KNOWN_KEYS, load_params
from tests.conftest import REPO_ROOT, workspace_files
from tests.helpers import COURSE_PARAMS

FLOAT32_MAX = float(np.finfo(np.float32).max)
EDGE_NUMBERS = st.sampled_from(
    [
        0,
        -0.0,
        1,
        -1,
        2**31,
        2**63 - 1,
        -(2**63),
        2**64,
        10**30,
        1e-45,
        5e-324,
        FLOAT32_MAX,
        3.5e38,
        1e308,
        -1e308,
        math.inf,
        -math.inf,
        math.nan,
        0.5,
        1e-7,
        1e6 + 1,
    ]
)
VALUES = st.one_of(
    EDGE_NUMBERS,
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.booleans(),
    st.none(),
    st.lists(st.one_of(st.text(max_size=5), st.integers()), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def run_main(main, *args) -> tuple[int, str]:
    """An entry point's main() as `python -m` runs it: its exit status, and its stderr."""
    stderr = io.StringIO()
    status = 0
    with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
        try:
            main(*args)
        except SystemExit as exit_:
            status = exit_.code
    return status, stderr.getvalue()


def assert_success_or_one_error_line(status: int, stderr: str) -> None:
    assert status in (0, 2), stderr
    if status == 2:
        lines = stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), stderr


@SETTINGS
@given(key=st.sampled_from(KNOWN_KEYS), value=VALUES)
@example(key="seed", value=10**30)
@example(key="data.start", value=-1e308)
@example(key="data.step", value=5e-324)
@example(key="device", value="cuda:²")
def test_any_value_of_any_key_is_accepted_or_refused_in_one_line(tmp_path_factory, key, value):
    params = copy.deepcopy(COURSE_PARAMS)
    section, _, name = key.partition(".")
    if name:
        params[section][name] = value
    else:
        params[section] = value
    path = tmp_path_factory.mktemp("params") / "params.yaml"
    path.write_text(yaml.safe_dump(params, allow_unicode=True))

    try:
        load_params(path)
    except UserError as error:
        assert "\n" not in str(error) and str(path) in str(error)


# Scalars that YAML 1.1 (PyYAML) and YAML 1.2 (DVC's ruamel.yaml) read differently, and their kin.
YAML_EDGES = [
    "0300", "1:10", "1:30:00", "1_000", "0o17", "0x1F", "0b101", "+12", ".5", "1e3", "1E3",
    "1.0e+3", "012.5", "0.", "-0", "yes", "on", "off", "y", "~", "null", "1e-06", "0.1e1",
]  # fmt: skip


@SETTINGS
@given(
    key=st.sampled_from(["train.epochs", "train.lr", "seed", "train.log_every", "data.noise_std"]),
    text=st.one_of(
        st.sampled_from(YAML_EDGES), st.from_regex(r"[+-]?[0-9_:.oxbeE]{1,6}", fullmatch=True)
    ),
)
def test_a_number_typed_by_hand_means_what_dvc_reads_or_is_refused(tmp_path_factory, key, text):
    from dvc.utils.serialize import parse_yaml

    section, _, name = key.partition(".")
    path = tmp_path_factory.mktemp("params") / "params.yaml"
    params = copy.deepcopy(COURSE_PARAMS)
    lines = yaml.safe_dump(params, sort_keys=False).splitlines()
    indent = "  " if name else ""
    inside = not name
    for number, line in enumerate(lines):
        inside = inside or line == f"{section}:"
        if inside and line.startswith(f"{indent}{name or section}:"):
            lines[number] = f"{indent}{name or section}: {text}"
            break
    path.write_text("\n".join(lines) + "\n")
    try:
        dvc_reads = parse_yaml(path.read_text(), str(path))
    except Exception:  # DVC cannot read the file: neither may the stages
        with pytest.raises(UserError) as refused:
            load_params(path)
        assert "\n" not in str(refused.value)
        return
    shown = dvc_reads[section][name] if name else dvc_reads[section]

    try:
        loaded = load_params(path)
    except UserError as error:
        assert "\n" not in str(error)
        return
    value = getattr(getattr(loaded, section), name) if name else getattr(loaded, section)
    # What DVC shows (and `dvc params diff` compares) is what trains; DVC keeps numbers that
    # YAML 1.2 reads as text (`1e-06` is a float, `1:10` text) as written.
    # A whole number that DVC shows as text is the float it spells (`.0E0` is 0), never cut.
    assert value == float(shown)


CELLS = st.one_of(
    EDGE_NUMBERS.map(repr),
    st.floats().map(repr),
    st.integers().map(str),
    st.sampled_from(
        ["", " ", "nan", "NaN", "inf", "-inf", "1e39", "0x10", "1_000", "TRUE", '"1"', "é", "1,5"]
    ),
    st.text(
        alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters='\r\n,"'),
        max_size=8,
    ),
)
NAMES = st.text(
    alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters='\r\n,"'),
    min_size=1,
    max_size=6,
)


def csv_text(names: list[str], rows: list[list[str]]) -> str:
    return "\n".join([",".join(names), *(",".join(row) for row in rows)]) + "\n"


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """The repository's pipeline with the course's params, in a folder where stages can run
    in-process: the tests set the CSV's keys, and nothing else a fork commits comes in."""
    folder = tmp_path_factory.mktemp("project")
    shutil.copy(REPO_ROOT / "dvc.yaml", folder / "dvc.yaml")
    (folder / "params.yaml").write_text(yaml.safe_dump(COURSE_PARAMS, sort_keys=False))
    return folder


@SETTINGS
@given(
    names=st.lists(NAMES, min_size=1, max_size=4),
    cells=st.lists(st.lists(CELLS, min_size=1, max_size=5), max_size=12),
    task=st.sampled_from(["regression", "binary_classification"]),
    standardize=st.booleans(),
)
@example(names=["a", "y"], cells=[["1", "2"], ["1e39", "3"]], task="regression", standardize=False)
@example(names=["y", "y"], cells=[["1", "0"]], task="binary_classification", standardize=True)
@example(names=["\x1e0", "\x1e0"], cells=[["0"]], task="regression", standardize=False)
def test_any_csv_goes_through_prepare_and_split_or_is_refused_in_one_line(
    project, names, cells, task, standardize
):
    from stages import prepare, split

    folder = project / "run"
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(project, folder, ignore=shutil.ignore_patterns("run"))
    width = len(names)
    (folder / "own.csv").write_text(
        csv_text(names, [(row * width)[:width] for row in cells]), encoding="utf-8"
    )
    params = yaml.safe_load((folder / "params.yaml").read_text())
    params["task"] = task
    params["train"]["loss"] = "bce" if task == "binary_classification" else "l1"
    params["data"].update(
        source="csv", path="own.csv", target=names[-1], standardize=standardize, chunk_rows=5
    )
    (folder / "params.yaml").write_text(yaml.safe_dump(params, allow_unicode=True))
    before = workspace_files(folder)

    with contextlib.chdir(folder):
        status, stderr = run_main(prepare.main)
        assert_success_or_one_error_line(status, stderr)
        if status == 0:
            status, stderr = run_main(split.main)
            assert_success_or_one_error_line(status, stderr)

    after = workspace_files(folder)
    changed = {name for name in after if before.get(name) != after[name]}
    allowed = {
        "data/dataset.parquet",
        "data/split.parquet",
        "data/features.json",
        "metrics/split.json",
    }
    assert changed <= allowed
    if status != 0 and "data/dataset.parquet" in changed:  # prepare succeeded, split refused
        assert changed == {"data/dataset.parquet"}


@pytest.mark.slow
@SETTINGS
@given(
    cells=st.lists(st.lists(CELLS, min_size=1, max_size=3), max_size=10),
    header=st.sampled_from([["x"], ["id", "x"], ["x", "x"], ["q"], ["é"]]),
)
@example(cells=[["1e39"]], header=["x"])
@example(cells=[[""]], header=["x"])
@example(cells=[["0"]], header=["x", "x"])
def test_predict_takes_any_csv_or_refuses_it_in_one_line(
    reproduced, tmp_path_factory, cells, header
):
    repo, _ = reproduced
    folder = tmp_path_factory.mktemp("predict")
    width = len(header)
    inputs = folder / "in.csv"
    inputs.write_text(csv_text(header, [(row * width)[:width] for row in cells]), encoding="utf-8")
    before = inputs.read_bytes()

    with contextlib.chdir(repo):
        status, stderr = run_main(predict.main, [str(inputs), str(folder / "out.csv")])

    assert_success_or_one_error_line(status, stderr)
    assert inputs.read_bytes() == before
    assert (folder / "out.csv").exists() == (status == 0)
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        ["in.csv", *(["out.csv"] if status == 0 else [])]
    )
