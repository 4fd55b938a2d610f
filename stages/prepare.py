"""Stage 1, prepare: make the dataset, the course's straight line or the user's CSV."""

from pytorch_workflow.data_setup import csv_chunks, line_chunks, write_table
from pytorch_workflow.errors import exit_on_user_error
from pytorch_workflow.params import load_params
from pytorch_workflow.paths import load_paths


@exit_on_user_error
def main() -> None:
    params = load_params()
    paths = load_paths()

    data = params.data
    if data.source == "csv":
        rows = write_table(paths.dataset, csv_chunks(data, params.task), data.chunk_rows)
        print(f"Read {rows:,} rows from {data.path}")
    else:
        rows = write_table(paths.dataset, line_chunks(data, params.seed), data.chunk_rows)
        print(
            f"Made {rows:,} rows: y = {data.weight:g} * X + {data.bias:g}, X from {data.start:g} "
            f"to {data.end:g} by {data.step:g}, noise std {data.noise_std:g}"
        )


if __name__ == "__main__":
    main()
