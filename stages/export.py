"""Stage 5, export: the deployable bundle (state_dict, torch.export program, model card)."""

from pytorch_workflow.errors import exit_on_user_error, import_model_builder, stop_on_sigterm
from pytorch_workflow.params import load_params

# Checked before torch is imported (about two seconds), so a typo fails at once.
PARAMS = exit_on_user_error(load_params)()
# A mistake in the model classes' file, likewise in one line.
exit_on_user_error(import_model_builder)()

import json

from pytorch_workflow.data_setup import output_columns, read_features, read_split
from pytorch_workflow.device import resolve_device, use_repeatable_kernels
from pytorch_workflow.errors import UserError
from pytorch_workflow.export import Bundle, export_bundle
from pytorch_workflow.files import sha256_of_file
from pytorch_workflow.paths import load_paths
from pytorch_workflow.tables import ParquetTable


@exit_on_user_error
@stop_on_sigterm
def main() -> None:
    params = PARAMS
    paths = load_paths()
    device = resolve_device(params.device)
    use_repeatable_kernels(device, params.threads)

    features = read_features(paths.features)
    _, test = read_split(paths.dataset, paths.split, features.columns)
    evaluated = ParquetTable(paths.test_predictions, output_columns(features.outputs))
    if evaluated.offsets != test.offsets:
        raise UserError(
            f"{paths.test_predictions}: its rows do not line up with the test split of "
            f"{paths.split}; run `dvc repro`"
        )
    try:
        metrics = json.loads(paths.evaluate_metrics.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise UserError(
            f"{paths.evaluate_metrics}: not readable metrics ({error}); run `dvc repro`"
        ) from None
    bundle = Bundle(
        model=params.model,
        task=params.task,
        features=features,
        checkpoint=paths.model,
        test=test,
        evaluated=evaluated,
        provenance={
            "params": params.raw,
            "metrics": metrics,
            "device": str(device),
            "sha256": {
                name: sha256_of_file(getattr(paths, name)) for name in ("dataset", "split", "model")
            },
        },
        device=device,
    )
    export_bundle(bundle, paths.export_dir)
    print(
        f"Exported {paths.export_dir}: the reloaded state_dict and torch.export program "
        f"match evaluate's {test.rows:,} test predictions bit for bit"
    )


if __name__ == "__main__":
    main()
