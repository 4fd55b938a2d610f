"""Writing files so that a crash never leaves one that looks complete, and hashing them.

Every output is written to a temporary name beside it (`.NAME.*.tmp`, ignored by git and DVC)
and renamed into place when it is complete, so a killed stage leaves the previous file or none.
"""

import contextlib
import errno
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

TMP_SUFFIX = ".tmp"


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path beside `path` to write to; renamed to `path` when the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(path)
    # In the same folder, so the rename is atomic; a leading dot, so no reader takes it for
    # the real output.
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TMP_SUFFIX, dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        with named_in_errors(path):
            yield tmp
            with open(tmp, "rb+") as written:
                os.fsync(written.fileno())
        tmp.chmod(0o644)  # mkstemp makes it private; outputs are for sharing
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_directory(path: str | Path) -> Iterator[Path]:
    """A temporary folder beside `path` to fill; it replaces `path` when the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(path)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=TMP_SUFFIX, dir=path.parent))
    try:
        staging.chmod(0o755)
        with named_in_errors(path):
            yield staging
        old = Path(
            tempfile.mkdtemp(prefix=f".{path.name}.old.", suffix=TMP_SUFFIX, dir=path.parent)
        )
        if path.exists():
            path.rename(old / path.name)
        staging.rename(path)
        shutil.rmtree(old)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


# What only a write meets (no read gives these): the output is the file to name.
WRITE_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS)


@contextlib.contextmanager
def named_in_errors(path: Path) -> Iterator[None]:
    """A failed write that names no file (a full disk while pyarrow or a file's `close` writes)
    names the output it was writing: `error: data/dataset.parquet: No space left on device`."""
    try:
        yield
    except OSError as error:
        if error.filename is None and error.errno in WRITE_ERRORS:
            error.filename = str(path)
        raise


def check_writable(*outputs: Path) -> None:
    """Refuse at once, not after a long run, an output the machine will not let a stage write (a
    read-only folder): the error a failed write would give. Creates no folder."""
    for output in map(Path, outputs):
        folder = output.parent
        while not folder.exists() and folder != folder.parent:  # the write will make it
            folder = folder.parent
        if not folder.is_dir():  # a file where the folder belongs
            raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(folder))
        try:
            with tempfile.TemporaryFile(prefix=f".{output.name}.", suffix=TMP_SUFFIX, dir=folder):
                pass
        except OSError as error:
            raise OSError(error.errno, error.strerror, str(output)) from None


@contextlib.contextmanager
def restored_on_failure(folder: Path) -> Iterator[None]:
    """Put a folder's files back as they were if the block fails (and remove those it added):
    for outputs written as it goes."""
    folder = Path(folder)

    def entries() -> set[Path]:
        return {folder, *folder.rglob("*")} if folder.is_dir() else set()

    before = entries()
    saved = {path: path.read_bytes() for path in before if path.is_file()}
    try:
        yield
    except BaseException:
        for path in entries() - before:  # a folder's files may be gone with it already
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        for path, data in saved.items():
            if not path.is_file() or path.read_bytes() != data:
                atomic_write_bytes(path, data)
        raise


def remove_leftovers(path: Path) -> None:
    """Delete temporary siblings of `path` that a killed run left behind."""
    for leftover in path.parent.glob(f".{path.name}.*{TMP_SUFFIX}"):
        if leftover.is_dir():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            leftover.unlink(missing_ok=True)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, payload: Any) -> None:
    """JSON with sorted keys and a trailing newline, so equal payloads give equal bytes."""
    atomic_write_text(path, json.dumps(payload, indent=2, sort_keys=True, allow_nan=False) + "\n")


def sha256_of_file(path: str | Path) -> str:
    with open(path, "rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()
