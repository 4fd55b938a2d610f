"""Stage 1, prepare: make the dataset, the course's straight line or the user's CSV."""

from pytorch_workflow.data_setup import dataset_chunks, write_table
from pytorch_workflow.errors import exit_on_user_error
from pytorch_workflow.params import load_params
from pytorch_workflow.paths import load_paths


@exit_on_user_error
def main() -> None:
    params = load_params()
    paths = load_paths()

    chunks = dataset_chunks(params.data, params.task, params.seed)
    rows = write_table(paths.dataset, chunks, params.data.chunk_rows)

    data = params.data
    if data.source == "csv":
        print(f"Read {rows:,} rows from {data.path}")
    else:
        print(
            f"Made {rows:,} rows: y = {data.weight:g} * X + {data.bias:g}, X from {data.start:g} "
            f"to {data.end:g} by {data.step:g}, noise std {data.noise_std:g}"
        )


if __name__ == "__main__":
    main()
