"""Stage 2, split: the first part of the rows for training, the rest for testing.

The rows stay in the dataset; the split file records which of them are train rows.
"""

from pytorch_workflow.data_setup import class_name, fitted_features, split_dataset, write_features
from pytorch_workflow.errors import exit_on_user_error, stop_on_sigterm
from pytorch_workflow.files import atomic_write_json
from pytorch_workflow.params import load_params
from pytorch_workflow.paths import load_paths
from pytorch_workflow.tables import ParquetTable


@exit_on_user_error
@stop_on_sigterm
def main() -> None:
    params = load_params()
    paths = load_paths()

    dataset = ParquetTable(paths.dataset)
    summary, train_stats = split_dataset(
        dataset, params.split, params.task, params.seed, paths.split
    )
    # Fitted on the train split only, so nothing about the test split leaks into training.
    features = fitted_features(
        dataset.columns, train_stats, params.data.standardize, summary.class_labels()
    )
    write_features(paths.features, features)
    split_metrics = summary.metrics()
    atomic_write_json(paths.split_metrics, split_metrics)

    for side, values in split_metrics.items():
        shown = (
            f"{name} {value:,}" if isinstance(value, int) else f"{name} {value:.6g}"
            for name, value in values.items()
        )
        print(f"{side}: " + ", ".join(shown))
    if features.mean is not None:
        print(f"Standardising {', '.join(features.names)} with the train split's mean and std")
    if features.classes:
        print(f"Classes: {', '.join(map(class_name, features.classes))}")
    if note := summary.imbalance():
        print(f"note: {note}")


if __name__ == "__main__":
    main()
