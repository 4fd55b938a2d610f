"""Evaluate a trained model on the test split: metrics, plot tables and the figure."""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from pytorch_workflow import plotting
from pytorch_workflow.data import Features, features_and_target
from pytorch_workflow.metrics import (
    classification_metrics,
    closed_form_predictions,
    regression_metrics,
    sigmoid,
)

# Plot tables and scatter plots show at most this many points, whatever the data's size.
MAX_PLOT_POINTS = 2000


@dataclass(frozen=True)
class Evaluation:
    metrics: dict
    outputs: np.ndarray  # the model's raw test outputs (value or logit), float32, shape (n,)
    predictions: pd.DataFrame  # a sample of the test split for `dvc plots`
    confusion: pd.DataFrame  # actual,predicted labels; no rows for regression


def predict_outputs(model: nn.Module, X: np.ndarray, device: torch.device) -> np.ndarray:
    """The model's outputs under `torch.inference_mode()`, as in the course."""
    model.eval()
    with torch.inference_mode():
        outputs = model(torch.from_numpy(X).to(device))
    return outputs.cpu().numpy().reshape(-1)


def plot_sample(rows: int, seed: int = 0) -> np.ndarray:
    """Row numbers of a fixed, seeded sample of at most MAX_PLOT_POINTS, in order."""
    if rows <= MAX_PLOT_POINTS:
        return np.arange(rows)
    return np.sort(np.random.default_rng(seed).choice(rows, MAX_PLOT_POINTS, replace=False))


def evaluate(
    model: nn.Module,
    train: pd.DataFrame,
    test: pd.DataFrame,
    features: Features,
    task: str,
    device: torch.device,
) -> Evaluation:
    X_train, y_train = features_and_target(train, features)
    X_test, y_test = features_and_target(test, features)
    outputs = predict_outputs(model, X_test, device)
    shown = plot_sample(len(test))
    if task == "binary_classification":
        metrics = classification_metrics(y_test, outputs)
        labels = pd.DataFrame(
            {"actual": y_test.astype(np.int64), "predicted": (outputs > 0).astype(np.int64)}
        )
        predictions = labels.assign(probability=sigmoid(outputs)).iloc[shown]
        return Evaluation(metrics, outputs, predictions.reset_index(drop=True), labels)

    metrics: dict = regression_metrics(y_test, outputs)
    closed_form = regression_metrics(y_test, closed_form_predictions(X_train, y_train, X_test))
    metrics["closed_form"] = closed_form
    if metrics["mse"] is not None and closed_form["mse"]:
        metrics["mse_over_closed_form"] = metrics["mse"] / closed_form["mse"]
    predictions = pd.DataFrame({"actual": y_test[shown], "predicted": outputs[shown]})
    if len(features.names) == 1:
        predictions.insert(0, features.names[0], test[features.names[0]].to_numpy()[shown])
    confusion = pd.DataFrame({"actual": pd.Series(dtype="int64"), "predicted": []})
    return Evaluation(metrics, outputs, predictions, confusion)


def draw_figure(
    path: Path, evaluation: Evaluation, train: pd.DataFrame, test: pd.DataFrame, features: Features
) -> None:
    """The course's plot_predictions for one feature; otherwise what fits the task."""
    if not evaluation.confusion.empty:
        plotting.plot_confusion_matrix(
            path, evaluation.confusion["actual"], evaluation.confusion["predicted"]
        )
    elif len(features.names) == 1:
        name, target = features.names[0], features.target
        train_shown = train.iloc[plot_sample(len(train))]
        test_shown = test.iloc[plot_sample(len(test))]
        plotting.plot_predictions(
            path,
            train_shown[name],
            train_shown[target],
            test_shown[name],
            test_shown[target],
            predictions=evaluation.outputs[plot_sample(len(test))],
        )
    else:
        plotting.plot_predicted_vs_actual(
            path, evaluation.predictions["actual"], evaluation.predictions["predicted"]
        )
