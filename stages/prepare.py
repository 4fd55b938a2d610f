"""Stage 1, prepare: make the dataset, the course's straight line or the user's CSV."""

from pytorch_workflow.data import make_dataset, write_table
from pytorch_workflow.errors import exit_on_user_error
from pytorch_workflow.params import load_params
from pytorch_workflow.paths import load_paths


@exit_on_user_error
def main() -> None:
    params = load_params()
    paths = load_paths()

    dataset = make_dataset(params.data, params.task, params.seed)
    write_table(paths.dataset, dataset)

    data = params.data
    if data.source == "csv":
        features = ", ".join(dataset.columns[:-1])
        print(f"Read {len(dataset)} rows from {data.path}: {data.target} from {features}")
    else:
        print(
            f"Made {len(dataset)} rows: y = {data.weight} * X + {data.bias}, "
            f"X from {data.start} to {data.end} by {data.step}, noise std {data.noise_std}"
        )


if __name__ == "__main__":
    main()
