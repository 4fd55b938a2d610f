"""Predict with an exported bundle: `python -m pytorch_workflow.predict INPUT.csv OUTPUT.csv`.

INPUT.csv needs the model's feature columns, by name (for the course's line: `x`). OUTPUT.csv
gets every input column as it was, then `prediction`; for a binary classifier the `predicted`
class (0 or 1) and the `probability` of class 1; for a multi-class one the `predicted` class and
`probability_LABEL` of each class. Both are streamed, so the input may be larger than memory.

The model is rebuilt from the bundle's `model.pt` (tensors only, loaded with `weights_only=True`)
and its model card: no code from the bundle runs. `--trust-program` runs the bundle's
`torch.export` program instead; loading a program runs code from it, so use it only for a
bundle you made or fetched from a source you trust. `--version v1.2.3` or `--stage prod` fetch a
released bundle from the model registry (docs/registry.md) with `dvc artifacts get`.
"""

import argparse
import csv
import os
import re
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import torch

from pytorch_workflow.errors import (
    UserError,
    exit_on_user_error,
    first_line,
    import_model_builder,
    stop_on_sigterm,
)

# A mistake in the model classes' file in one line, before `export` imports it.
exit_on_user_error(import_model_builder)()

from pytorch_workflow.csv_data import (
    CSV_READ_OPTIONS,
    column_hint,
    first_bad_row,
    quoted_names,
    refuse_duplicate_columns,
    refuse_what_is_not_csv_text,
)
from pytorch_workflow.data_setup import class_name
from pytorch_workflow.device import resolve_device
from pytorch_workflow.export import PROGRAM_FILE, model_from_bundle, program_from_bundle, read_card
from pytorch_workflow.files import atomic_path
from pytorch_workflow.metrics import binary_class, sigmoid, softmax
from pytorch_workflow.params import DEVICE_CHOICES
from pytorch_workflow.paths import artifact_name, load_paths
from pytorch_workflow.plotting import shortest_texts
from pytorch_workflow.tables import numpy_column


def input_reader(path: Path, columns: list[str]) -> pa_csv.CSVStreamingReader:
    """A streaming reader of every column as text, from a file that has the `columns`."""
    if not path.exists():
        raise UserError(f"{path}: file not found")
    if not path.is_file():
        raise UserError(f"{path}: not a regular file (a folder?); give a CSV file")
    refuse_what_is_not_csv_text(path, one_column_names=columns)
    names: list[str] = []
    try:
        names = pa_csv.open_csv(path, read_options=CSV_READ_OPTIONS).schema.names
        reader = pa_csv.open_csv(
            path,
            read_options=CSV_READ_OPTIONS,
            convert_options=pa_csv.ConvertOptions(column_types=dict.fromkeys(names, pa.string())),
        )
    except (pa.ArrowInvalid, OSError) as error:
        raise unreadable_csv_error(path, error, names) from None
    except UnicodeDecodeError as error:  # pyarrow reads the bytes; its names decode as UTF-8
        raise UserError(f"{path}: the header is not UTF-8 text ({error.reason})") from None
    refuse_duplicate_columns(path, names)
    present = set(names)
    missing = [column for column in columns if column not in present]
    if missing:
        others = [name for name in names if name not in columns]
        raise UserError(
            f"{path}: expected column(s) {quoted_names(columns)}; missing "
            f"{quoted_names(missing)}{column_hint(missing[0], others)}"
        )
    return reader


def feature_matrix(
    path: Path, batch: pa.RecordBatch, features: list[str], first_row: int
) -> np.ndarray:
    """The batch's features as float32 (n, k), naming the row and column of a bad value."""
    columns = []
    for feature in features:
        text = batch.column(feature)
        try:
            values = numpy_column(pc.cast(pc.utf8_trim_whitespace(text), pa.float64()))
        except pa.ArrowInvalid:
            values = np.array([_number(v) for v in text.to_pylist()], dtype=np.float64)
        with np.errstate(over="ignore", invalid="ignore"):  # refused just below
            as_float32 = values.astype(np.float32)
        bad = ~np.isfinite(as_float32)
        if bad.any():
            index = int(np.flatnonzero(bad)[0])
            raise UserError(
                f"{path}: row {first_row + index}, column {feature!r}: "
                f"{text[index].as_py()!r} is not a finite float32 number"
            )
        columns.append(as_float32)
    return np.ascontiguousarray(np.column_stack(columns))


def _number(text: str | None) -> float:
    try:
        return float(text) if text is not None else np.nan
    except ValueError:
        return np.nan


def check_output(input_path: Path, output: Path) -> None:
    """Refuse an output that would overwrite the input or cannot be a file."""
    if output.is_dir():
        raise UserError(f"{output}: is a folder; give the output CSV's file name")
    if output.exists() and input_path.exists() and os.path.samefile(input_path, output):
        raise UserError(f"{output}: is the input file; predictions would overwrite it")
    if output.parent.exists() and not output.parent.is_dir():
        raise UserError(f"{output}: its folder {output.parent} is a file")
    if not output.parent.exists():  # a mistyped path, not a folder to make
        raise UserError(f"{output}: its folder {output.parent} does not exist; create it first")


@exit_on_user_error
@stop_on_sigterm
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("input", type=Path, help="CSV with the model's feature columns")
    parser.add_argument("output", type=Path, help="CSV to write")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--bundle", type=Path, help="export folder (default: the pipeline's)")
    source.add_argument("--version", help="a released version (v1.2.3), fetched from the registry")
    source.add_argument("--stage", help="the version assigned to a stage (prod), fetched likewise")
    parser.add_argument(
        "--registry", default=".", help="the repository (path or git URL) of --version and --stage"
    )
    parser.add_argument(
        "--trust-program",
        action="store_true",
        help=f"run the bundle's {PROGRAM_FILE} (loading a program runs code from it)",
    )
    parser.add_argument("--device", default="cpu", help=f"{DEVICE_CHOICES} (default: cpu)")
    args = parser.parse_args(argv)

    for option, value in (("--version", args.version), ("--stage", args.stage)):
        check_release_name(option, value)
    if args.version is None and args.stage is None:
        predict_csv(args, args.bundle or load_paths().export_dir)
        return
    name = artifact_name()
    version = args.version or staged_version(args.registry, name, args.stage)
    release = f"the release {version}"
    with tempfile.TemporaryDirectory(prefix="predict-") as fetched:
        asked = f"--version {version}" if args.version else f"--stage {args.stage} ({version})"
        bundle = fetch_release(args.registry, name, version, Path(fetched), asked)
        staged = f", the {args.stage} stage," if args.stage else ""
        print(f"Fetched {name}@{version}{staged} from {args.registry}")
        try:
            predict_csv(args, bundle)
        except UserError as error:  # named by the release, not by the folder it was fetched to
            message = str(error).replace(f"{bundle}/", f"{release}: ")
            raise UserError(message.replace(str(bundle), release)) from None


def check_release_name(option: str, value: str | None) -> None:
    """Refuse an empty name (it would mean the workspace's bundle, silently) and one that
    looks like an option (`--version=--help`): neither names a release."""
    if value is None:
        return
    if not value.strip():
        raise UserError(f"{option}: empty; give a released version (v1.2.3) or a stage (prod)")
    if value.startswith("-"):
        raise UserError(f"{option} {value!r}: not a version or stage name (it starts with '-')")


# Where a registry's tags are missing: a clone has only the tags it fetched.
NO_SUCH_RELEASE = "no such release here (`gto show` lists them; `git fetch --tags` first)"


def staged_version(registry: str, name: str, stage: str) -> str:
    """The version of the artifact `name` that a stage holds in the registry's tags, as GTO
    reads them."""
    command = ["gto", "show", f"{name}#{stage}", "--version", "--repo", registry]
    # Wide enough that GTO does not wrap its one-line messages.
    wide = {**os.environ, "COLUMNS": "10000"}
    result = subprocess.run(command, capture_output=True, text=True, env=wide)
    said = gto_error(result) if result.returncode != 0 else ""
    if "Cannot find artifact" in said or not (said or result.stdout.strip()):  # no tags, stage
        raise UserError(f"--stage {stage}: cannot fetch it from {registry}: {NO_SUCH_RELEASE}")
    if said:
        raise UserError(f"--stage {stage}: cannot read {registry}'s tags: {said}")
    return result.stdout.strip()


def gto_error(result: subprocess.CompletedProcess) -> str:
    """GTO's error in one line: its line marked ❌ (a bug-report footer follows an unexpected
    one), without the mark."""
    lines = [line.strip() for line in (result.stderr + result.stdout).splitlines()]
    marked = [line for line in lines if line.startswith("❌")]
    return (marked or [line for line in lines if line] or ["no output"])[0].lstrip("❌ ")


def fetch_release(registry: str, name: str, version: str, into: Path, asked: str) -> Path:
    """A released bundle, fetched with `dvc artifacts get` (DVC verifies what it downloads);
    `asked` is the option the user gave (`--stage prod`), for errors."""
    command = ["dvc", "artifacts", "get", registry, name, "--rev", version]
    result = subprocess.run([*command, "-o", str(into / "b")], capture_output=True, text=True)
    if result.returncode != 0:
        lines = [line for line in result.stderr.strip().splitlines() if line.startswith("ERROR")]
        reason = (lines[-1] if lines else "no such release").removeprefix("ERROR: ")
        if "Unable to find artifact" in reason:  # DVC words a missing git tag so
            reason = NO_SUCH_RELEASE
        elif ".dvc/storage/" in reason:  # the committed default remote, in the releaser's clone
            reason += (
                " (the release went to the DVC remote inside the clone that made it: share "
                "releases through a shared remote, docs/remotes.md)"
            )
        raise UserError(f"{asked}: cannot fetch it from {registry}: {reason}")
    return into / "b"


def predict_csv(args: argparse.Namespace, bundle: Path) -> None:
    card = read_card(bundle)
    check_output(args.input, args.output)
    features = card["input"]["columns"]
    reader = input_reader(args.input, features)
    classes = card.get("classes")
    added_names = output_names(card["output"], classes)
    # The output would have two columns of one name, and a reader would take either.
    taken = [name for name in reader.schema.names if name in added_names]
    if taken:
        raise UserError(
            f"{args.input}: already has a column {taken[0]!r}, which predict adds; "
            "rename that column in the input"
        )
    device = resolve_device(args.device, setting="--device ")
    model = program_from_bundle(bundle) if args.trust_program else model_from_bundle(bundle)
    model = model.to(device)
    rows = 0
    first_bad, bad_rows = 0, 0  # rows the model gives inf or NaN for: the first, how many
    with atomic_path(args.output) as tmp, open(tmp, "w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow([*reader.schema.names, *added_names])
        for batch in _batches(args.input, reader):
            X = torch.from_numpy(feature_matrix(args.input, batch, features, rows + 1))
            try:
                with torch.inference_mode():
                    outputs = model(X.to(device)).cpu().numpy().reshape(batch.num_rows, -1)
            except RuntimeError as error:  # a program that does not fit the card's columns
                raise UserError(
                    f"{bundle}: the model fails on the rows: {first_line(error)}"
                ) from None
            # inf or NaN is no prediction: after the first, only count the rest, then refuse
            # them all (raising inside atomic_path leaves no file).
            bad = np.flatnonzero(~np.isfinite(outputs).all(axis=1))
            if len(bad) and not first_bad:
                first_bad = rows + 1 + int(bad[0])
            bad_rows += len(bad)
            if first_bad:
                rows += batch.num_rows
                continue
            # The input's columns exactly as they were (csv writes None as ""), then the
            # shortest text of each output.
            inputs = [column.to_pylist() for column in batch.columns]
            added = output_texts(outputs, card["output"], classes)
            writer.writerows(zip(*inputs, *added, strict=True))
            rows += batch.num_rows
        if rows == 0:
            raise UserError(f"{args.input}: has no rows")
        if first_bad:
            raise UserError(
                f"{args.input}: the model gives inf or NaN for {bad_rows:,} of {rows:,} rows, "
                f"first row {first_bad}: inputs far outside its training data, or a broken bundle"
            )
    print(f"Wrote {rows:,} prediction{'' if rows == 1 else 's'} to {args.output}")


def output_names(output: str, classes: list[float] | None) -> list[str]:
    """The columns predict adds: for the card's `output` kind."""
    if classes:
        return ["predicted", *(f"probability_{class_name(label)}" for label in classes)]
    return ["predicted", "probability"] if output == "logit" else ["prediction"]


def output_texts(outputs: np.ndarray, output: str, classes: list[float] | None) -> list[list[str]]:
    """The added columns' texts for a batch of outputs (n, 1) or (n, classes)."""
    if classes:
        probabilities = softmax(outputs)
        predicted = [class_name(classes[index]) for index in np.argmax(outputs, axis=1)]
        return [predicted, *(shortest_texts(column) for column in probabilities.T)]
    values = outputs.reshape(-1)
    if output == "logit":
        return [binary_class(values).astype(str).tolist(), shortest_texts(sigmoid(values))]
    return [shortest_texts(values)]


def _batches(path: Path, reader: pa_csv.CSVStreamingReader):
    try:
        yield from reader
    except (pa.ArrowInvalid, OSError) as error:  # OSError: a compressed file cut short
        raise unreadable_csv_error(path, error, reader.schema.names) from None


def unreadable_csv_error(path: Path, error: Exception, names: list[str]) -> UserError:
    """pyarrow's refusal of the input CSV, in one line, with the column it numbers named."""
    # The row whose field count is off, or one longer than a block; else pyarrow's words.
    reason = first_bad_row(path, [])
    if reason is None:
        said = first_line(error)
        numbered = re.match(r"In CSV column #(\d+): (.*)", said)
        if numbered and int(numbered[1]) < len(names):
            said = f"column {names[int(numbered[1])]!r}: {numbered[2]}"
        if "invalid UTF8" in said:
            said += "; save the file as UTF-8"
        reason = f"not a readable CSV ({said})"
    return UserError(f"{path}: {reason}")


if __name__ == "__main__":
    main()
