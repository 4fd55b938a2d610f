"""Stage 3, train: build the model, run the course's train/test loop, save the state_dict."""

import pandas as pd
import torch

from pytorch_workflow import engine
from pytorch_workflow.checkpoint import save_model
from pytorch_workflow.data import features_and_target, read_features, read_table, write_csv
from pytorch_workflow.device import describe, resolve_device, to_device_tensors
from pytorch_workflow.errors import exit_on_user_error
from pytorch_workflow.files import atomic_write_json
from pytorch_workflow.model_builder import build_model
from pytorch_workflow.params import load_params
from pytorch_workflow.paths import load_paths


@exit_on_user_error
def main() -> None:
    params = load_params()
    paths = load_paths()
    device = resolve_device(params.device)
    print(f"Using device: {describe(device)}")

    features = read_features(paths.features)
    train_data = to_device_tensors(
        *features_and_target(read_table(paths.train, features.columns), features), device
    )
    test_data = to_device_tensors(
        *features_and_target(read_table(paths.test, features.columns), features), device
    )

    model = build_model(params.model.name, params.seed, len(features.names)).to(device)
    print(f"Initial parameters: {learned_parameters(model)}")
    shuffle_seed = params.seed if params.split.shuffle else None
    history = engine.train(model, train_data, test_data, params.train, shuffle_seed=shuffle_seed)
    print(f"Learned parameters: {learned_parameters(model)}")

    save_model(model, paths.model)
    write_csv(paths.loss_table, pd.DataFrame(history))
    atomic_write_json(
        paths.train_metrics,
        {
            "epochs": params.train.epochs,
            "train_loss": history[-1].train_loss,
            "test_loss": history[-1].test_loss,
            "learned": learned_parameters(model),
        },
    )


def learned_parameters(model: torch.nn.Module) -> dict[str, float]:
    """Each parameter's values by name (`weights`, or `weights.0`, `weights.1`, ... for k > 1)."""
    values = {}
    for name, tensor in model.state_dict().items():
        flat = tensor.detach().cpu().reshape(-1).tolist()
        values.update(
            {name: flat[0]} if len(flat) == 1 else {f"{name}.{i}": v for i, v in enumerate(flat)}
        )
    return values


if __name__ == "__main__":
    main()
