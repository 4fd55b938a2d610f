"""Stage 4, evaluate: load the saved state_dict into a fresh model and predict the test split."""

from functools import partial

from pytorch_workflow.errors import exit_on_user_error, import_model_builder, stop_on_sigterm
from pytorch_workflow.params import load_params

# Checked before torch is imported (about two seconds), so a typo fails at once.
PARAMS = exit_on_user_error(load_params)()
# A mistake in the model classes' file, likewise in one line.
exit_on_user_error(import_model_builder)()

from pytorch_workflow import baselines, plotting
from pytorch_workflow.data_setup import read_features, read_split
from pytorch_workflow.device import describe, resolve_device, use_repeatable_kernels
from pytorch_workflow.evaluation import (
    baseline_note,
    evaluate,
    predicted_classes,
    prediction_table,
)
from pytorch_workflow.files import atomic_write_json, check_writable
from pytorch_workflow.model_builder import build_model
from pytorch_workflow.paths import load_paths
from pytorch_workflow.utils import load_model


@exit_on_user_error
@stop_on_sigterm
def main() -> None:
    params = PARAMS
    paths = load_paths()
    device = resolve_device(params.device)
    use_repeatable_kernels(device, params.threads)
    print(f"Using device: {describe(device)}")

    # Every input is checked before any output is written, and every output's folder.
    check_writable(
        paths.evaluate_metrics,
        paths.test_predictions,
        paths.predictions_table,
        paths.predictions_figure,
        paths.loss_figure,
    )
    features = read_features(paths.features)
    train, test = read_split(paths.dataset, paths.split, features.columns)
    loaded_model = build_model(
        params.model, in_features=len(features.names), out_features=features.outputs
    )
    loaded_model = load_model(loaded_model, paths.model).to(device)
    losses = plotting.read_loss_table(paths.loss_table)

    evaluation = evaluate(
        loaded_model, train, test, features, params.task, device, paths.test_predictions
    )

    atomic_write_json(paths.evaluate_metrics, evaluation.metrics)
    table = prediction_table(evaluation, features, params.task)
    plotting.write_table(paths.predictions_table, table)
    classify = partial(predicted_classes, loaded_model, features, device)
    plotting.draw_evaluation(paths.predictions_figure, evaluation, features, table, classify)
    plotting.plot_loss_curves(paths.loss_figure, losses)
    # A metric undefined on this test split (R² of a constant target) is null in the JSON.
    shown = [
        f"{name} {value:.6g}" if value is not None else f"{name} undefined"
        for name, value in evaluation.metrics.items()
        if not isinstance(value, dict)
    ]
    print("Test metrics: " + ", ".join(shown))
    note = baseline_note(evaluation.metrics, params.data.standardize, params.train.loss_options)
    if note:
        print(f"note: {note}")
    if baselines.left_out(len(features.names), features.outputs):
        unknowns = baselines.unknowns(len(features.names), features.outputs)
        print(
            f"The linear baseline is left out (null): it would solve for {unknowns:,} unknowns, "
            f"more than {baselines.MAX_BASELINE_UNKNOWNS:,} (docs/scale.md)"
        )


if __name__ == "__main__":
    main()
