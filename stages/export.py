"""Stage 5, export: the deployable bundle (state_dict, torch.export program, model card)."""

import json

from pytorch_workflow.data import read_features, read_table
from pytorch_workflow.device import resolve_device
from pytorch_workflow.errors import exit_on_user_error
from pytorch_workflow.export import ExportInputs, export_bundle
from pytorch_workflow.files import sha256_of_file
from pytorch_workflow.params import load_params
from pytorch_workflow.paths import load_paths


@exit_on_user_error
def main() -> None:
    params = load_params()
    paths = load_paths()
    device = resolve_device(params.device)

    features = read_features(paths.features)
    test = read_table(paths.test, features.columns)
    evaluated = read_table(paths.test_predictions, ("output",))
    with open(paths.evaluate_metrics, encoding="utf-8") as file:
        metrics = json.load(file)
    hashed = {
        "dataset": paths.dataset,
        "train": paths.train,
        "test": paths.test,
        "model": paths.model,
    }
    inputs = ExportInputs(
        model_name=params.model.name,
        task=params.task,
        device=device,
        checkpoint=paths.model,
        features=features,
        test_features=test[list(features.names)].to_numpy(copy=True),
        evaluated_outputs=evaluated["output"].to_numpy(copy=True),
        card={
            "params": params.raw,
            "metrics": metrics,
            "sha256": {name: sha256_of_file(path) for name, path in hashed.items()},
        },
    )
    export_bundle(inputs, paths.export_dir)
    print(
        f"Exported {paths.export_dir}: the reloaded state_dict and torch.export program "
        f"match evaluate's {len(test)} test predictions bit for bit"
    )


if __name__ == "__main__":
    main()
