"""Stage 4, evaluate: load the saved state_dict into a fresh model and predict the test split."""

import pandas as pd
import torch

from pytorch_workflow.checkpoint import load_model
from pytorch_workflow.data import read_table, write_csv, write_table
from pytorch_workflow.device import describe, resolve_device, to_device_tensors
from pytorch_workflow.errors import exit_on_user_error
from pytorch_workflow.files import atomic_write_json
from pytorch_workflow.metrics import regression_metrics
from pytorch_workflow.model_builder import build_model
from pytorch_workflow.params import load_params
from pytorch_workflow.paths import load_paths
from pytorch_workflow.plotting import plot_loss_curves, plot_predictions


@exit_on_user_error
def main() -> None:
    params = load_params()
    paths = load_paths()
    device = resolve_device(params.device)
    print(f"Using device: {describe(device)}")

    train = read_table(paths.train)
    test = read_table(paths.test)
    X_test, _ = to_device_tensors(test, device)

    loaded_model = load_model(build_model(params.model.name), paths.model).to(device)
    loaded_model.eval()
    with torch.inference_mode():
        y_preds = loaded_model(X_test).cpu().numpy().reshape(-1)

    metrics = regression_metrics(test["y"].to_numpy(), y_preds)
    atomic_write_json(paths.evaluate_metrics, metrics)
    predictions = pd.DataFrame({"x": test["x"], "actual": test["y"], "predicted": y_preds})
    write_table(paths.test_predictions, predictions)
    write_csv(paths.predictions_table, predictions)

    plot_predictions(
        paths.predictions_figure, train["x"], train["y"], test["x"], test["y"], predictions=y_preds
    )
    losses = pd.read_csv(paths.loss_table)
    plot_loss_curves(paths.loss_figure, losses["epoch"], losses["train_loss"], losses["test_loss"])
    print("Test metrics: " + ", ".join(f"{name} {value}" for name, value in metrics.items()))


if __name__ == "__main__":
    main()
