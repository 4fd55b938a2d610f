"""Stage 1, prepare: make the dataset, the course's straight line or the user's CSV."""

from pytorch_workflow.csv_data import left_out_columns, quoted_names, write_csv_dataset
from pytorch_workflow.data_setup import line_chunks
from pytorch_workflow.errors import exit_on_user_error, stop_on_sigterm
from pytorch_workflow.params import load_params
from pytorch_workflow.paths import load_paths
from pytorch_workflow.tables import write_table


@exit_on_user_error
@stop_on_sigterm
def main() -> None:
    params = load_params()
    paths = load_paths()

    data = params.data
    if data.source == "csv":
        read = write_csv_dataset(data, params.task, paths.dataset, data.chunk_rows, paths.raw_data)
        train_rows = read.rows - read.test_rows
        print(f"Read {train_rows:,} row{'s' * (train_rows != 1)} from {data.path}")
        left_out = left_out_columns(data.path, data)
        if "" in left_out:
            print("Left out the column without a name (a saved index?)")
        if texts := [name for name in left_out if name]:
            print(
                f"Left out the column(s) that are not numbers: {quoted_names(texts)} "
                "(data.features lists the columns to use)"
            )
        if read.test_rows:
            print(
                f"Read {read.test_rows:,} row{'s' * (read.test_rows != 1)} from "
                f"{data.test_path}, the given test split"
            )
        for column, (value, as_float32, step) in read.rounded.items():
            print(
                f"note: column {column!r} lies far from 0 for its spread: float32 rounds it to "
                f"steps of {step:g} ({value:.15g} becomes {as_float32:.15g}), so that close "
                "values merge; subtract an offset from the column in the CSV to keep them apart"
            )
    else:
        rows = write_table(paths.dataset, line_chunks(data, params.seed), data.chunk_rows)
        print(
            f"Made {rows:,} rows: y = {data.weight:g} * X + {data.bias:g}, X from {data.start:g} "
            f"to {data.end:g} by {data.step:g}, noise std {data.noise_std:g}"
        )


if __name__ == "__main__":
    main()
