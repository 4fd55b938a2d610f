"""Stage 3, train: build the model, run the course's train/test loop, save the state_dict."""

import pandas as pd
import torch

from pytorch_workflow import engine
from pytorch_workflow.checkpoint import save_model
from pytorch_workflow.data import read_table, write_csv
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

    train_data = to_device_tensors(read_table(paths.train), device)
    test_data = to_device_tensors(read_table(paths.test), device)

    model = build_model(params.model.name, params.seed).to(device)
    print(f"Initial parameters: {_parameters(model)}")
    history = engine.train(model, train_data, test_data, params.train)
    print(f"Learned parameters: {_parameters(model)}")

    save_model(model, paths.model)
    write_csv(paths.loss_table, pd.DataFrame(history))
    atomic_write_json(
        paths.train_metrics,
        {
            "epochs": params.train.epochs,
            "train_loss": history[-1].train_loss,
            "test_loss": history[-1].test_loss,
            "learned": _parameters(model),
        },
    )


def _parameters(model: torch.nn.Module) -> dict[str, float]:
    return {name: tensor.item() for name, tensor in model.state_dict().items()}


if __name__ == "__main__":
    main()
