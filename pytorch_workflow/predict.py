"""Predict with the exported bundle: `python -m pytorch_workflow.predict INPUT.csv OUTPUT.csv`.

INPUT.csv has a column `x` (or a single column of X values); OUTPUT.csv gets `x,prediction`.
Only the bundle's `torch.export` program is used, not the model's Python class.
"""

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from pytorch_workflow.data import write_csv
from pytorch_workflow.errors import UserError, exit_on_user_error
from pytorch_workflow.export import PROGRAM_FILE, load_program, read_card
from pytorch_workflow.paths import load_paths


def read_inputs(path: Path) -> np.ndarray:
    try:
        table = pd.read_csv(path)
    except FileNotFoundError:
        raise UserError(f"{path}: file not found") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise UserError(f"{path}: not a readable CSV ({str(error).strip()[:160]})") from None
    if "x" in table.columns:
        column = "x"
    elif len(table.columns) == 1:
        column = table.columns[0]
    else:
        raise UserError(
            f"{path}: expected a column named x, got {', '.join(map(str, table.columns))}"
        )
    if table.empty:
        raise UserError(f"{path}: has no rows")
    values = pd.to_numeric(table[column], errors="coerce").to_numpy(dtype=np.float64)
    if not np.isfinite(values).all():
        row = int(np.flatnonzero(~np.isfinite(values))[0])
        raise UserError(
            f"{path}: column {column} row {row} is not a finite number: {table[column][row]!r}"
        )
    return values.astype(np.float32)


def predict(bundle: Path, x: np.ndarray) -> np.ndarray:
    card = read_card(bundle)
    device = torch.device(card.get("device", "cpu"))
    program = load_program(bundle / PROGRAM_FILE)
    with torch.inference_mode():
        inputs = torch.from_numpy(x.reshape(-1, 1)).to(device)
        return program(inputs).cpu().numpy().reshape(-1)


@exit_on_user_error
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("input", type=Path, help="CSV of X values (column x)")
    parser.add_argument("output", type=Path, help="CSV to write: x,prediction")
    parser.add_argument(
        "--bundle", type=Path, default=None, help="export folder (default: the pipeline's)"
    )
    args = parser.parse_args(argv)
    bundle = args.bundle or load_paths().export_dir
    x = read_inputs(args.input)
    predictions = predict(bundle, x)
    write_csv(args.output, pd.DataFrame({"x": x, "prediction": predictions}))
    print(f"Wrote {len(x)} predictions to {args.output}")


if __name__ == "__main__":
    main()
