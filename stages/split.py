"""Stage 2, split: the first part of the rows for training, the rest for testing."""

from pytorch_workflow.data import fit_features, read_table, split_data, write_features, write_table
from pytorch_workflow.errors import exit_on_user_error
from pytorch_workflow.params import load_params
from pytorch_workflow.paths import load_paths


@exit_on_user_error
def main() -> None:
    params = load_params()
    paths = load_paths()

    dataset = read_table(paths.dataset)
    train, test = split_data(dataset, params.split, params.seed)
    # Fitted on the train split only, so nothing about the test split leaks into training.
    features = fit_features(train, params.data.standardize)
    write_table(paths.train, train)
    write_table(paths.test, test)
    write_features(paths.features, features)

    print(f"Split {len(dataset)} rows: {len(train)} train, {len(test)} test")
    if features.mean is not None:
        print(f"Standardising {', '.join(features.names)} with the train split's mean and std")


if __name__ == "__main__":
    main()
