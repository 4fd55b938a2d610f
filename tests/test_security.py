"""A tampered bundle never runs code in `predict`: it rebuilds the model from tensors and the card.

`torch.export.load` runs code from a program file in several ways (torch 2.13): guard strings in
`models/model.json` are exec'ed, symbolic shape expressions are evaluated by sympy, and a pickle in
`data/sample_inputs/` is retried with `weights_only=False`. Each test tampers one way, shows that
plain torch does run the code, and that `predict` does not, with the default bundle or `--bundle`.
"""

import hashlib
import io
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pandas as pd
import pytest
import torch

from tests.conftest import predict
from tests.test_bad_inputs import WritesMarker, assert_clean_failure

pytestmark = pytest.mark.slow

PROGRAM = "models/export/model.pt2"
CARD = "models/export/model_card.json"


def rewrite_program(program: Path, change) -> None:
    """Change the program's files, and record its new sha256 in the card, as whoever can
    write the bundle can."""
    with zipfile.ZipFile(program) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    change(members)
    program.unlink()
    with zipfile.ZipFile(program, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    record_in_card(program)


def record_in_card(program: Path) -> None:
    card = json.loads((program.parent / "model_card.json").read_text())
    card["files"]["model.pt2"] = hashlib.sha256(program.read_bytes()).hexdigest()
    (program.parent / "model_card.json").write_text(json.dumps(card))


def guard_that_runs_code(marker: Path):
    def change(members):
        name = next(n for n in members if n.endswith("models/model.json"))
        model = json.loads(members[name])
        model["guards_code"] = [f"open({str(marker)!r}, 'w') is not None"]
        members[name] = json.dumps(model).encode()
        # Guards run only for a program with example inputs: give it harmless ones.
        buffer = io.BytesIO()
        torch.save(((torch.zeros(2, 1),), {}), buffer)
        members[next(n for n in members if "sample_inputs" in n)] = buffer.getvalue()

    return change


def shape_expression_that_runs_code(marker: Path):
    def change(members):
        name = next(n for n in members if n.endswith("models/model.json"))
        text = members[name].decode()
        payload = f"Symbol('s77', positive=True, integer=True) if open({str(marker)!r}, 'w') else 0"
        members[name] = text.replace("Symbol('s77', positive=True, integer=True)", payload).encode()

    return change


def sample_inputs_that_run_code(marker: Path):
    def change(members):
        name = next(n for n in members if "sample_inputs" in n)
        buffer = io.BytesIO()
        torch.save(((WritesMarker(marker),), {}), buffer)
        members[name] = buffer.getvalue()

    return change


ROUTES = [guard_that_runs_code, shape_expression_that_runs_code, sample_inputs_that_run_code]


def predict_one_row(repo: Path, tmp_path: Path, *extra: str) -> subprocess.CompletedProcess:
    inputs = tmp_path / "x.csv"
    inputs.write_text("x\n0.5\n")
    return predict(repo, inputs, tmp_path / "out.csv", *extra)


@pytest.mark.parametrize("route", ROUTES, ids=lambda route: route.__name__)
def test_a_tampered_program_runs_no_code_in_predict(pipeline_repo, tmp_path, route):
    marker = tmp_path / "code-ran"
    rewrite_program(pipeline_repo / PROGRAM, route(marker))
    elsewhere = tmp_path / "bundle"
    shutil.copytree(pipeline_repo / "models/export", elsewhere)

    for extra in ((), ("--bundle", str(elsewhere))):
        result = predict_one_row(pipeline_repo, tmp_path, *extra)
        assert result.returncode == 0, result.stderr
        assert not marker.exists(), f"predict {' '.join(extra)} ran code from the program"
    written = pd.read_csv(tmp_path / "out.csv")
    learned = json.loads((pipeline_repo / "metrics/train.json").read_text())["learned"]
    assert written["prediction"][0] == pytest.approx(learned["weights"] * 0.5 + learned["bias"])

    # The tampering is real: plain torch runs the code when it loads and calls the program.
    subprocess.run(
        [
            sys.executable,
            "-c",
            f"import torch; program = torch.export.load({str(pipeline_repo / PROGRAM)!r})\n"
            "program.module()(torch.ones(2, 1))",
        ],
        capture_output=True,
        check=False,
    )
    assert marker.exists()


def test_card_and_program_edited_together_still_run_no_code(pipeline_repo, tmp_path):
    marker = tmp_path / "code-ran"
    rewrite_program(pipeline_repo / PROGRAM, sample_inputs_that_run_code(marker))
    card = json.loads((pipeline_repo / CARD).read_text())
    card["files"]["model.pt2"] = "0" * 64  # an attacker rewrites the card to match
    (pipeline_repo / CARD).write_text(json.dumps(card))

    result = predict_one_row(pipeline_repo, tmp_path)

    assert result.returncode == 0, result.stderr
    assert not marker.exists()


def test_trust_program_runs_the_program_only_when_asked(pipeline_repo, tmp_path):
    marker = tmp_path / "code-ran"
    rewrite_program(pipeline_repo / PROGRAM, guard_that_runs_code(marker))

    predict_one_row(pipeline_repo, tmp_path)
    assert not marker.exists()
    predict_one_row(pipeline_repo, tmp_path, "--trust-program")
    assert marker.exists()  # the user said the file was theirs


def test_a_changed_state_dict_is_refused_by_its_sha256(pipeline_repo, tmp_path):
    model = pipeline_repo / "models/export/model.pt"
    model.unlink()
    torch.save({"weights": torch.tensor([9.0]), "bias": torch.tensor([9.0])}, model)

    result = predict_one_row(pipeline_repo, tmp_path)

    assert_clean_failure(
        result, "models/export/model.pt: its sha256 is not the one model_card.json records"
    )
    assert not (tmp_path / "out.csv").exists()


def test_a_program_the_card_does_not_record_is_refused_even_when_trusted(pipeline_repo, tmp_path):
    # Another experiment's program, copied into this bundle by mistake, would predict with
    # another model: its sha256 is not the card's.
    program = pipeline_repo / PROGRAM
    program.write_bytes(program.read_bytes() + b"another experiment's")

    result = predict_one_row(pipeline_repo, tmp_path, "--trust-program")

    assert_clean_failure(
        result, "models/export/model.pt2: its sha256 is not the one model_card.json records"
    )
    assert not (tmp_path / "out.csv").exists()


def test_a_card_that_records_no_program_hash_is_named_when_the_program_is_trusted(
    pipeline_repo, tmp_path
):
    card = json.loads((pipeline_repo / CARD).read_text())
    del card["files"]["model.pt2"]
    (pipeline_repo / CARD).write_text(json.dumps(card))

    result = predict_one_row(pipeline_repo, tmp_path, "--trust-program")

    assert_clean_failure(result, "model_card.json: records no sha256 of model.pt2")


def test_a_zip_bomb_program_is_refused_before_it_is_unpacked(pipeline_repo, tmp_path):
    program = pipeline_repo / PROGRAM
    program.unlink()
    with zipfile.ZipFile(program, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("archive/models/model.json", b" " * (300 * 1024 * 1024))
    record_in_card(program)

    result = predict_one_row(pipeline_repo, tmp_path, "--trust-program")

    assert_clean_failure(result, "model.pt2: refused: it unpacks to 314,572,800 bytes")
