"""Stage 2, split: the first part of the rows for training, the rest for testing."""

from pytorch_workflow.data import read_table, split_data, write_table
from pytorch_workflow.errors import exit_on_user_error
from pytorch_workflow.params import load_params
from pytorch_workflow.paths import load_paths


@exit_on_user_error
def main() -> None:
    params = load_params()
    paths = load_paths()

    dataset = read_table(paths.dataset)
    train, test = split_data(dataset, params.split, params.seed)
    write_table(paths.train, train)
    write_table(paths.test, test)

    print(f"Split {len(dataset)} rows: {len(train)} train, {len(test)} test")


if __name__ == "__main__":
    main()
