"""Stage 4, evaluate: load the saved state_dict into a fresh model and predict the test split."""

import pandas as pd

from pytorch_workflow.checkpoint import load_model
from pytorch_workflow.data import read_features, read_table, write_csv, write_table
from pytorch_workflow.device import describe, resolve_device
from pytorch_workflow.errors import exit_on_user_error
from pytorch_workflow.evaluation import draw_figure, evaluate
from pytorch_workflow.files import atomic_write_json
from pytorch_workflow.model_builder import build_model
from pytorch_workflow.params import load_params
from pytorch_workflow.paths import load_paths
from pytorch_workflow.plotting import plot_loss_curves


@exit_on_user_error
def main() -> None:
    params = load_params()
    paths = load_paths()
    device = resolve_device(params.device)
    print(f"Using device: {describe(device)}")

    features = read_features(paths.features)
    train = read_table(paths.train, features.columns)
    test = read_table(paths.test, features.columns)
    loaded_model = build_model(params.model.name, in_features=len(features.names))
    loaded_model = load_model(loaded_model, paths.model).to(device)

    evaluation = evaluate(loaded_model, train, test, features, params.task, device)

    atomic_write_json(paths.evaluate_metrics, evaluation.metrics)
    write_table(paths.test_predictions, pd.DataFrame({"output": evaluation.outputs}))
    write_csv(paths.predictions_table, evaluation.predictions)
    write_csv(paths.confusion_table, evaluation.confusion)
    draw_figure(paths.predictions_figure, evaluation, train, test, features)
    losses = pd.read_csv(paths.loss_table)
    plot_loss_curves(paths.loss_figure, losses["epoch"], losses["train_loss"], losses["test_loss"])
    shown = {
        name: value for name, value in evaluation.metrics.items() if not isinstance(value, dict)
    }
    print("Test metrics: " + ", ".join(f"{name} {value}" for name, value in shown.items()))


if __name__ == "__main__":
    main()
