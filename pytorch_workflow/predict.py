"""Predict with the exported bundle: `python -m pytorch_workflow.predict INPUT.csv OUTPUT.csv`.

INPUT.csv has the model's feature columns (for the course's line: `x`; a single unnamed column
is taken as the only feature). OUTPUT.csv gets those columns and `prediction`, or `probability`
of class 1 for a classifier. Only the bundle's `torch.export` program is used, not the model's
Python class; it standardises the features itself when the model was trained that way.
"""

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from pytorch_workflow.data import write_csv
from pytorch_workflow.errors import UserError, exit_on_user_error
from pytorch_workflow.export import PROGRAM_FILE, load_program, read_card
from pytorch_workflow.metrics import sigmoid
from pytorch_workflow.paths import load_paths


def read_inputs(path: Path, columns: list[str]) -> pd.DataFrame:
    try:
        table = pd.read_csv(path)
    except FileNotFoundError:
        raise UserError(f"{path}: file not found") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise UserError(f"{path}: not a readable CSV ({str(error).strip()[:160]})") from None
    if len(columns) == 1 and columns[0] not in table.columns and len(table.columns) == 1:
        table = table.rename(columns={table.columns[0]: columns[0]})
    missing = [column for column in columns if column not in table.columns]
    if missing:
        raise UserError(
            f"{path}: expected column(s) {', '.join(columns)}; missing {', '.join(missing)}"
        )
    if table.empty:
        raise UserError(f"{path}: has no rows")
    for column in columns:
        values = pd.to_numeric(table[column], errors="coerce").to_numpy(dtype=np.float64)
        if not np.isfinite(values).all():
            row = int(np.flatnonzero(~np.isfinite(values))[0])
            raise UserError(
                f"{path}: column {column} row {row} is not a finite number: "
                f"{table[column].iloc[row]!r}"
            )
    return table[columns].astype(np.float32)


def predict(bundle: Path, inputs: pd.DataFrame) -> np.ndarray:
    """The program's raw outputs (values, or logits for a classifier) for each row."""
    card = read_card(bundle)
    program = load_program(bundle / PROGRAM_FILE)
    device = torch.device(card.get("device", "cpu"))
    with torch.inference_mode():
        X = torch.from_numpy(inputs.to_numpy(dtype=np.float32, copy=True)).to(device)
        return program(X).cpu().numpy().reshape(-1)


@exit_on_user_error
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("input", type=Path, help="CSV with the model's feature columns")
    parser.add_argument("output", type=Path, help="CSV to write")
    parser.add_argument(
        "--bundle", type=Path, default=None, help="export folder (default: the pipeline's)"
    )
    args = parser.parse_args(argv)
    bundle = args.bundle or load_paths().export_dir
    card = read_card(bundle)
    inputs = read_inputs(args.input, card["input"]["columns"])
    outputs = predict(bundle, inputs)
    if card.get("output") == "logit":
        written = inputs.assign(probability=sigmoid(outputs))
    else:
        written = inputs.assign(prediction=outputs)
    write_csv(args.output, written)
    print(f"Wrote {len(written)} predictions to {args.output}")


if __name__ == "__main__":
    main()
