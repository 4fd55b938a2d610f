"""User-facing errors: one line on stderr, a non-zero exit, never a traceback."""

import functools
import importlib
import importlib.util
import inspect
import os
import re
import signal
import sys
import sysconfig
import threading
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

F = TypeVar("F", bound=Callable[..., None])


class UserError(Exception):
    """A mistake in params, data or model files that the user can fix; the message names it."""


def one_line(text: str) -> str:
    """The text with every unprintable character escaped: names from a user's file may hold
    line breaks or control characters, and an error stays one line."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def first_line(error: BaseException, limit: int = 160) -> str:
    """The first line of an exception's message (its type's name if it has none), shortened:
    what a `UserError` quotes of a library's error."""
    text = str(error).strip()
    return (text.splitlines()[0] if text else type(error).__name__)[:limit]


# What torch raises about shapes and values (`nn.Linear(2, -1)`, a shape mismatch): from a
# user's class, most likely about what it was given; anything else from its own code is a bug
# in that code (a misspelt name).
TORCH_ERRORS = (ValueError, TypeError, ZeroDivisionError, RuntimeError, IndexError)


def described(error: BaseException) -> str:
    """An error as a one-line message quotes it: torch's own about shapes and values as they
    are, any other with its type first (a bare KeyError says only 'name')."""
    if isinstance(error, TORCH_ERRORS):
        return first_line(error)
    return f"{type(error).__name__}: {first_line(error)}"


def line_in_file(error: BaseException, source: str | Path) -> str:
    """Where the code in `source` raised `error` (a user's `forward`, a typo in the model
    file), as `pytorch_workflow/model_builder.py, line 12`: the line a syntax error points
    at, or the innermost frame outside Python's and the installed libraries' files where it is
    in `source`; else "" (an error from torch itself, or from deeper in the pipeline)."""
    source = Path(source).resolve()
    if isinstance(error, SyntaxError) and error.filename:
        return _shown(source, error.lineno) if Path(error.filename).resolve() == source else ""
    for frame in reversed(traceback.extract_tb(error.__traceback__)):
        path = Path(frame.filename).resolve()
        if frame.filename.startswith("<frozen ") or any(
            path.is_relative_to(library) for library in _LIBRARIES
        ):
            continue
        return _shown(source, frame.lineno) if path == source else ""
    return ""


def line_in_class_file(error: Exception, cls: type) -> str:
    """Where the class's own code raised `error` (a user's `__init__` or `forward`), as
    ` (pytorch_workflow/model_builder.py, line 12)`; else "" (`line_in_file`)."""
    try:
        source = inspect.getsourcefile(cls)
    except (TypeError, OSError):  # a built-in class; one written in a notebook or a REPL
        return ""
    where = line_in_file(error, source) if source else ""
    return f" ({where})" if where else ""


# Python's own files and the installed packages' (torch's among them).
_LIBRARIES = tuple(
    {Path(sysconfig.get_paths()[key]).resolve() for key in ("stdlib", "purelib", "platlib")}
)


def _shown(path: Path, line: int | None) -> str:
    return f"{_shown_path(str(path))}, line {line}"


def _shown_path(path: str) -> str:
    """A path as a message shows it: from the project's folder where it is inside (its folder
    resolved, not the file: an output may be a link into DVC's cache)."""
    absolute = Path(os.path.abspath(path))
    absolute = absolute.parent.resolve() / absolute.name
    root = Path.cwd().resolve()
    return str(absolute.relative_to(root)) if absolute.is_relative_to(root) else path


# The module where users write their model classes.
MODEL_BUILDER = "pytorch_workflow.model_builder"


def import_model_builder() -> None:
    """Import the module of the model classes: a mistake in its own code (a syntax error, an
    import it lacks) is a `UserError` naming its line. The entry points call this through
    `exit_on_user_error` before their other imports, which would raise it before `main` runs."""
    try:
        importlib.import_module(MODEL_BUILDER)
    except Exception as error:
        spec = importlib.util.find_spec(MODEL_BUILDER)
        where = line_in_file(error, spec.origin) if spec and spec.origin else ""
        if not where:
            raise
        # A syntax error's text repeats its file and line.
        detail = error.msg if isinstance(error, SyntaxError) else first_line(error)
        raise UserError(f"{where}: {type(error).__name__}: {detail}") from None


# A temporary file or folder that `files.atomic_path` or `atomic_directory` writes beside an
# output: `.NAME.RANDOM.tmp`, also as a folder of the path (export's files).
_TEMPORARY = re.compile(r"(?:^|(?<=/))\.([^/]+)\.[^./]+\.tmp(?=/|$)")


def os_refusal(error: OSError) -> str:
    """What the machine refused (a read-only folder, a full disk, no permission), as one line:
    the file, by the output's own name rather than its temporary one, and the OS's reason."""
    reason = error.strerror or first_line(error)
    if isinstance(error.errno, int) and f"[errno {error.errno}]" in reason:
        reason = os.strerror(error.errno)  # pyarrow's words around the OS's
    if error.filename is None:
        return reason
    output = _TEMPORARY.sub(r"\1", _shown_path(os.fsdecode(error.filename)))
    return f"{output}: {reason}"


def exit_on_user_error(main: F) -> F:
    """Run `main`; turn a `UserError`, a file operation the machine refuses, or Ctrl-C into a
    one-line message and a non-zero exit (2; 130 for Ctrl-C, as a shell reports it). Outputs
    are written atomically, so the previous ones stay as they were."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except UserError as error:
            _say_error(one_line(str(error) + _experiment_hint()))
            sys.exit(2)
        except OSError as error:
            _say_error(one_line(os_refusal(error) + _experiment_hint()))
            sys.exit(2)
        except KeyboardInterrupt:
            _say_error(f"interrupted; {_outputs_after_interrupt()}")
            sys.exit(130)

    return wrapper  # type: ignore[return-value]


def _say_error(message: str) -> None:
    # One write of the whole line: training processes under torchrun share one pipe, and
    # print's two writes (the text, then the newline) could interleave with another's.
    sys.stderr.write(f"error: {message}\n")
    sys.stderr.flush()


def in_copy_of_workspace() -> bool:
    """Whether DVC runs this stage in a copy of the workspace (a queued or `--temp` experiment:
    DVC then sets DVC_ROOT to the workspace, not to the copy it runs in)."""
    root = os.environ.get("DVC_ROOT")
    return root is not None and Path(root).resolve() != Path.cwd().resolve()


def _outputs_after_interrupt() -> str:
    """What an interrupted stage leaves: its outputs as they were, but DVC (which names the
    stage it runs in DVC_STAGE) removes a stage's outputs before it runs it, in the workspace."""
    if os.environ.get("DVC_STAGE") and not in_copy_of_workspace():
        return (
            "the stage wrote nothing, and DVC had removed its outputs before it ran: `dvc repro` "
            "makes them again"
        )
    return "the outputs are as they were"


def stop_on_sigterm(main: F) -> F:
    """Run `main` with SIGTERM (a cancelled CI job, `timeout`, a killed `dvc repro`) raising
    KeyboardInterrupt, as Ctrl-C does: the temporary outputs are removed, and under
    `exit_on_user_error` the message is one line. For the stages and predict, which write
    their outputs themselves; the tools leave stopping to the DVC commands they run."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        # Only the main thread sets handlers. A training process under torchrun keeps the
        # default: torchrun stops them with SIGTERM when one fails and reports it itself, and a
        # Python handler would wait for a process blocked in a collective.
        if threading.current_thread() is not threading.main_thread() or in_torchrun():
            return main(*args, **kwargs)
        previous = signal.signal(signal.SIGTERM, _stop_as_ctrl_c)
        try:
            return main(*args, **kwargs)
        finally:
            signal.signal(signal.SIGTERM, previous)

    return wrapper  # type: ignore[return-value]


def _stop_as_ctrl_c(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


# What torchrun sets for each process it starts: a shell's stray LOCAL_RANK does not count.
_TORCHRUN_SETTINGS = ("TORCHELASTIC_RUN_ID", "RANK", "LOCAL_RANK", "WORLD_SIZE")


def in_torchrun() -> bool:
    """Whether this is a training process under torchrun, which reports its errors and stops
    it: here, since every stage asks (the data stages do not import `distributed`)."""
    return all(name in os.environ for name in _TORCHRUN_SETTINGS)


def _experiment_hint() -> str:
    """Under a failed `dvc exp run`, what it left in params.yaml and how to undo it. A training
    process under torchrun leaves it to the train stage that started it, which repeats its
    error: the hint is added once."""
    from pytorch_workflow.params import undo_hint_after_failed_experiment  # which imports this

    return "" if in_torchrun() else undo_hint_after_failed_experiment()
