"""Stage 1, prepare: make the dataset, the course's straight line or the user's CSV."""

from pytorch_workflow.csv_data import left_out_columns, write_csv_dataset
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
        rows, test_rows, rounded = write_csv_dataset(
            data, params.task, paths.dataset, data.chunk_rows, paths.raw_data
        )
        print(f"Read {rows - test_rows:,} row{'s' * (rows - test_rows != 1)} from {data.path}")
        if left_out := left_out_columns(data.path, data):
            print(
                "Left out the column(s) that are not numbers or have no name (a saved index?): "
                f"{', '.join(map(repr, left_out))} (data.features lists the columns to use)"
            )
        if test_rows:
            print(
                f"Read {test_rows:,} row{'s' * (test_rows != 1)} from {data.test_path}, "
                "the given test split"
            )
        for column, (value, as_float32) in rounded.items():
            print(
                f"note: column {column!r} has whole numbers beyond ±16,777,216, which float32 "
                f"rounds ({value:.0f} becomes {as_float32:.0f}), so that close ones merge: "
                "subtract an offset from them in the CSV to keep them apart"
            )
    else:
        rows = write_table(paths.dataset, line_chunks(data, params.seed), data.chunk_rows)
        print(
            f"Made {rows:,} rows: y = {data.weight:g} * X + {data.bias:g}, X from {data.start:g} "
            f"to {data.end:g} by {data.step:g}, noise std {data.noise_std:g}"
        )


if __name__ == "__main__":
    main()
