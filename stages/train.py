"""Stage 3, train: build the model, run the course's train/test loop, save the state_dict."""

import sys

from pytorch_workflow import distributed
from pytorch_workflow.errors import (
    exit_on_user_error,
    import_model_builder,
    in_torchrun,
    stop_on_sigterm,
)
from pytorch_workflow.files import restored_on_failure
from pytorch_workflow.params import Params, load_params
from pytorch_workflow.paths import Paths, load_paths

# Checked before torch is imported (about two seconds), so a typo fails at once.
PARAMS = exit_on_user_error(load_params)()
# With more processes this one only starts torchrun and waits: it stops before importing torch
# (and defining `train`), which every training process imports again.
launching = distributed.wanted(PARAMS.train.processes) and not in_torchrun()


@exit_on_user_error
@stop_on_sigterm
def main() -> None:
    paths = load_paths()
    if in_torchrun():  # the stage that started torchrun puts the live metrics back
        train(PARAMS, paths)
        return
    # The live metrics are written as training goes: a run that fails puts the last ones back.
    with restored_on_failure(paths.live):
        if launching:
            distributed.run_under_torchrun(PARAMS.train.processes, "stages.train")
        else:
            train(PARAMS, paths)


if __name__ == "__main__" and launching:
    sys.exit(main())

# A mistake in the model classes' file, in one line like the params'.
exit_on_user_error(import_model_builder)()

from contextlib import nullcontext

from pytorch_workflow import engine, records
from pytorch_workflow.data_setup import read_features, read_split
from pytorch_workflow.dataloaders import create_dataloaders
from pytorch_workflow.device import describe, resolve_device, use_repeatable_kernels
from pytorch_workflow.files import check_writable
from pytorch_workflow.model_builder import build_model
from pytorch_workflow.utils import save_model


def train(params: Params, paths: Paths) -> None:
    device = resolve_device(params.device, distributed.local_rank())
    # `threads` is the stage's, so that more processes do not crowd more threads on the cores.
    use_repeatable_kernels(device, max(1, params.threads // params.train.processes))
    # The first process on each machine logs and writes: every process holds the same model.
    writer = distributed.local_rank() == 0
    if writer:  # a folder it may not write is refused now, not after the training
        check_writable(
            paths.model, paths.loss_table, paths.train_metrics, paths.live / "metrics.json"
        )
    processes = distributed.start_process_group(device) if in_torchrun() else 1
    log = print if writer else (lambda line: None)
    log(f"Using device: {describe(device)}" + (f", {processes} processes" if processes > 1 else ""))

    features = read_features(paths.features)
    train, test = read_split(paths.dataset, paths.split, features.columns)
    train_dataloader, test_dataloader = create_dataloaders(
        train,
        test,
        features,
        device,
        params.train.batch_size,
        shuffle_seed=params.seed if params.split.shuffle else None,
    )

    model = build_model(params.model, params.seed, len(features.names), features.outputs)
    model = model.to(device)
    log(f"Initial parameters: {records.shown_parameters(model)}")
    # Live metrics as training goes, so `dvc exp show` shows a running experiment's progress.
    with records.live_metrics(paths.live) if writer else nullcontext() as live:
        history = engine.train(
            model, train_dataloader, test_dataloader, params.train, log, on_log=live
        )
    log(f"Learned parameters: {records.shown_parameters(model)}")

    if writer:
        save_model(model, paths.model)
        records.write_losses(paths.loss_table, history)
        records.write_train_metrics(paths.train_metrics, history, model, str(device), processes)
    distributed.end_process_group()


if __name__ == "__main__":
    main()
