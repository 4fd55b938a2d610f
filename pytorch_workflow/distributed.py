"""Training on several processes, and machines, with torchrun (`train.processes`).

With `train.processes: N` the train stage runs itself again under
`torchrun --standalone --nproc-per-node N`: N processes on this machine, each training the model
wrapped in `DistributedDataParallel` on its slice of every batch (`dataloaders`). To add
machines, give every machine torchrun's own settings in the environment (`PET_NNODES`,
`PET_RDZV_BACKEND`, `PET_RDZV_ENDPOINT`; docs/scale.md) and run the train stage on each:
`dvc repro` on the first, `python -m stages.train` on the others.
"""

import os
import re
import subprocess
import sys
from typing import TYPE_CHECKING

from pytorch_workflow.errors import UserError, in_torchrun

# torch is imported only where a process group is made: the process that starts torchrun and
# waits never needs it (two seconds of start-up).
if TYPE_CHECKING:
    import torch

# torchrun reads each of its options from a PET_ variable; these mean "join other machines".
_RENDEZVOUS_SETTINGS = ("PET_RDZV_ENDPOINT", "PET_MASTER_ADDR")
# The last line of a Python traceback, the exception's type and message, as a process under
# torchrun prints it: torch's hook prefixes each line of its traceback with its rank.
_RAISED = re.compile(
    r"^(?:\[rank(\d+)\]: )?([A-Za-z_][\w.]*(?:Error|Exception|Interrupt|Exit)\b.*)$", re.MULTILINE
)


def wanted(processes: int) -> bool:
    """Whether the train stage should run under torchrun: more processes, or more machines."""
    return processes > 1 or more_machines()


def more_machines() -> bool:
    """Whether torchrun's PET_NNODES asks for more than one machine: N, or a range MIN:MAX."""
    return os.environ.get("PET_NNODES", "1").rpartition(":")[2] not in ("", "1")


def run_under_torchrun(processes: int, module: str) -> None:
    """Run `python -m module` in `processes` processes under torchrun and wait for them.

    Their output streams through; a failure becomes one `UserError` line: a process's own
    error, or which process died and how.
    """
    command = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={processes}"]
    if not any(os.environ.get(name) for name in _RENDEZVOUS_SETTINGS):
        if more_machines():  # and none named to meet at: torchrun would wait 10 minutes
            raise UserError(
                f"PET_NNODES={os.environ['PET_NNODES']}: the machines need a place to meet; "
                "set PET_RDZV_ENDPOINT=HOST:PORT (and PET_RDZV_BACKEND=c10d) on every machine "
                "(docs/scale.md)"
            )
        command.append("--standalone")
    command += ["-m", module]
    # torchrun's own log and its report of a failed process (a Python traceback) are caught
    # here and summed up in one line; the processes' standard output streams through.
    quiet = {**os.environ, "LOGLEVEL": os.environ.get("LOGLEVEL", "ERROR")}
    # A Ctrl-C, or SIGTERM (`errors.stop_on_sigterm` makes it one), stops torchrun too.
    with subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=quiet) as torchrun:
        try:
            _, report = torchrun.communicate()
        except BaseException:
            _stop(torchrun)
            raise
    if torchrun.returncode == 0:
        sys.stderr.write(report)
        return
    own_errors = [line for line in report.splitlines() if line.startswith("error: ")]
    if own_errors:
        raise UserError(own_errors[0].removeprefix("error: "))
    raise UserError(f"train: {root_cause(report)}; the stage wrote nothing")


def _stop(torchrun: subprocess.Popen) -> None:
    """Stop torchrun, and wait: it stops its processes, which run in sessions of their own, out
    of reach of the terminal's Ctrl-C; left alone, they would train on and write the outputs
    after the stage has reported that it wrote nothing."""
    # A terminal's Ctrl-C reached torchrun too, and it is already stopping them; else SIGTERM
    # makes it (it gives them 30 s before it kills them). Another Ctrl-C moves on to the next
    # step; the last, SIGKILL, stops torchrun alone and leaves its processes to their fate.
    for send, seconds in ((None, 2), (torchrun.terminate, 40), (torchrun.kill, 5)):
        if send is not None:
            send()
        try:
            torchrun.communicate(timeout=seconds)
            return
        except (subprocess.TimeoutExpired, KeyboardInterrupt):
            continue


def root_cause(report: str) -> str:
    """Which process failed first and how, from torchrun's report of a failed run, with the
    first exception a process printed (its traceback's last line) where one did; or that the
    machines never met, before any training process started."""
    if "RendezvousTimeoutError" in report:
        where = os.environ.get("PET_RDZV_ENDPOINT") or ":".join(
            filter(None, (os.environ.get("PET_MASTER_ADDR"), os.environ.get("PET_MASTER_PORT")))
        )
        return (
            f"the machines (PET_NNODES={os.environ.get('PET_NNODES')}) did not all meet at "
            f"{where} in time (torchrun's RendezvousTimeoutError): start the train stage on each "
            "with the same PET_ settings"
        )
    cause = report.split("Root Cause", 1)[-1]
    rank = re.search(r"rank\s*:\s*(\d+)", cause)
    killed_by = re.search(r"Signal \d+ \((SIG[A-Z]+)\)", cause)
    exit_code = re.search(r"exitcode\s*:\s*(-?\d+)", cause)
    who = f"training process {rank.group(1)}" if rank else "a training process"
    if killed_by:
        return f"{who} was killed by {killed_by.group(1)}"
    # The failed process's lines, and lines without a rank: an exception raised before a
    # process joined the group (torch prefixes the lines from then on), or torchrun's own.
    failed = rank.group(1) if rank else None
    raised = [
        line
        for by, line in _RAISED.findall(report)
        if by in ("", failed) or failed is None
        if "ChildFailedError" not in line
    ]
    how = f" ({raised[0][:200]})" if raised else ""
    if exit_code:
        return f"{who} exited with status {exit_code.group(1)}{how}"
    return f"{who} failed{how}"


def start_process_group(device: "torch.device") -> int:
    """Join torchrun's process group (gloo on CPU, nccl on CUDA); returns how many processes."""
    import torch
    import torch.distributed as dist

    if device.type == "cuda":
        torch.cuda.set_device(device)  # NCCL's collectives run on the current device
    dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return dist.get_world_size()


def process_rank() -> tuple[int, int]:
    """(rank, world size) in torchrun's process group; (0, 1) in a single process."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def sum_over_processes(value: float) -> float:
    """The sum of a number over the processes (itself in a single process): for the losses
    that are logged; the gradients are DistributedDataParallel's."""
    import torch
    import torch.distributed as dist

    if process_rank()[1] == 1:
        return value
    on = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else None
    total = torch.tensor([value], dtype=torch.float64, device=on)
    dist.all_reduce(total)
    return total.item()


def local_rank() -> int:
    """This process's place on its machine under torchrun; 0 outside it."""
    return int(os.environ["LOCAL_RANK"]) if in_torchrun() else 0


def end_process_group() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()
