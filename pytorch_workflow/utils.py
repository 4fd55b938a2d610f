"""The course's `save_model`, and loading a saved `state_dict` back: byte-stable and safe."""

import hashlib
import io
import pickle
import struct
import zipfile
from pathlib import Path

import torch
from torch import nn

from pytorch_workflow.errors import UserError, first_line
from pytorch_workflow.files import atomic_write_bytes

# A linear model's state_dict is a few kilobytes; a file that unpacks to more is not one.
MAX_ARCHIVE_BYTES = 256 * 1024 * 1024
MAX_ARCHIVE_ENTRIES = 10_000


def save_model(model: nn.Module, path: str | Path) -> None:
    """Save the model's `state_dict` (the course's way), atomically and byte-stable."""
    atomic_write_bytes(path, state_dict_bytes(model.state_dict()))


def state_dict_bytes(state_dict: dict[str, torch.Tensor]) -> bytes:
    """`torch.save` of CPU copies of the tensors, the same bytes on every platform."""
    buffer = io.BytesIO()  # in memory, the zip's folder is always `archive`, whatever the file
    torch.save({name: tensor.detach().cpu() for name, tensor in state_dict.items()}, buffer)
    return portable_serialization_id(buffer.getvalue())


def portable_serialization_id(archive: bytes) -> bytes:
    """Make a torch zip archive's `.data/serialization_id` the same on every platform.

    Workaround for pytorch/pytorch#184219: torch derives half of the id from `std::hash` over an
    unordered set of the archive's record names, and both the hash and the set's order differ
    between C++ standard libraries (libstdc++ on Linux, libc++ on macOS) and their versions, so
    equal weights give different files. The id is replaced by digits of a SHA-256 of the rest
    of the archive. The record is stored uncompressed, so only its 40 bytes and the three
    copies of its CRC-32 (zip format: local header, data descriptor, central directory) change;
    every offset stays and plain `torch.load` reads the file. An archive of another layout is
    returned unchanged. `tests/test_utils.py` fails when torch stops writing the id.
    """
    try:
        with zipfile.ZipFile(io.BytesIO(archive)) as reader:
            (info,) = [
                i for i in reader.infolist() if i.filename.endswith(".data/serialization_id")
            ]
    except (zipfile.BadZipFile, ValueError):
        return archive
    data = bytearray(archive)
    header = info.header_offset
    if info.compress_type != zipfile.ZIP_STORED or data[header : header + 4] != b"PK\x03\x04":
        return archive
    name_length, extra_length = struct.unpack_from("<HH", data, header + 26)
    start = header + 30 + name_length + extra_length
    end = start + info.file_size
    central = _central_entry(archive, info.header_offset)
    if central is None:
        return archive
    crc_fields = [header + 14, central + 16]
    if info.flag_bits & 0x08:  # a data descriptor after the data, with or without signature
        crc_fields.append(end + 4 if data[end : end + 4] == b"PK\x07\x08" else end)
    old_crc = struct.pack("<I", info.CRC)
    if any(data[at : at + 4] not in (old_crc, bytes(4)) for at in crc_fields):
        return archive
    blanked = bytearray(data)
    for first, last in [(start, end), *((at, at + 4) for at in crc_fields)]:
        blanked[first:last] = bytes(last - first)
    digits = str(int.from_bytes(hashlib.sha256(blanked).digest(), "big"))
    new_id = digits[-info.file_size :].zfill(info.file_size).encode("ascii")
    new_crc = struct.pack("<I", zipfile.crc32(new_id))
    data[start:end] = new_id
    for at in crc_fields:
        if data[at : at + 4] == old_crc:
            data[at : at + 4] = new_crc
    return bytes(data)


def _central_entry(archive: bytes, header_offset: int) -> int | None:
    """Where the central directory describes the entry whose local header is at the offset."""
    end = archive.rfind(b"PK\x05\x06")
    if end < 0:
        return None
    count, _, position = struct.unpack_from("<HII", archive, end + 10)
    for _ in range(count):
        if archive[position : position + 4] != b"PK\x01\x02":
            return None
        name_length, extra_length, comment_length = struct.unpack_from(
            "<HHH", archive, position + 28
        )
        if struct.unpack_from("<I", archive, position + 42)[0] == header_offset:
            return position
        position += 46 + name_length + extra_length + comment_length
    return None


def check_archive_size(path: Path) -> None:
    """Refuse a zip whose entries would unpack to more than a model can be (a zip bomb)."""
    try:
        with zipfile.ZipFile(path) as archive:
            entries = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as error:
        raise UserError(f"{path}: not a readable model file ({error})") from None
    total = sum(entry.file_size for entry in entries)
    if len(entries) > MAX_ARCHIVE_ENTRIES or total > MAX_ARCHIVE_BYTES:
        raise UserError(
            f"{path}: refused: it unpacks to {total:,} bytes in {len(entries):,} entries, more "
            f"than a model of this pipeline (at most {MAX_ARCHIVE_BYTES:,} bytes)"
        )


def load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Load a `state_dict` with `weights_only=True`, so a tampered file cannot run code."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: model file not found; run `dvc repro` to train it")
    if path.stat().st_size > MAX_ARCHIVE_BYTES or not zipfile.is_zipfile(path):
        raise UserError(f"{path}: not a readable model file (not a zip archive from torch.save)")
    check_archive_size(path)
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise UserError(
            f"{path}: refused to load: the file holds more than tensors and could run code "
            f"({_unsupported_global(str(error))})"
        ) from None
    except Exception as error:  # a damaged zip surfaces as RuntimeError, EOFError, ...
        raise UserError(f"{path}: not a readable model file ({first_line(error)})") from None
    if not isinstance(loaded, dict) or not all(
        isinstance(key, str) and isinstance(value, torch.Tensor) for key, value in loaded.items()
    ):
        raise UserError(
            f"{path}: expected a state_dict (names to tensors), got {type(loaded).__name__}"
        )
    return loaded


def _unsupported_global(message: str) -> str:
    """The line of torch's long weights-only error that names what the file tried to load."""
    for line in message.splitlines():
        if "Unsupported global" in line or "Unsupported operand" in line:
            return line.strip().removeprefix("WeightsUnpickler error: ").split(" was not")[0]
    return "rejected by the weights-only unpickler"


def load_model(model: nn.Module, path: str | Path) -> nn.Module:
    """Load a saved `state_dict` into a fresh model, checking names, shapes and values first."""
    state_dict = load_state_dict(path)
    expected = {name: tuple(tensor.shape) for name, tensor in model.state_dict().items()}
    found = {name: tuple(tensor.shape) for name, tensor in state_dict.items()}
    if set(found) != set(expected):
        raise UserError(
            f"{path}: state_dict keys {sorted(found)} do not match the model's {sorted(expected)}"
        )
    wrong_shapes = [name for name in expected if found[name] != expected[name]]
    if wrong_shapes:
        details = ", ".join(f"{name} {found[name]} != {expected[name]}" for name in wrong_shapes)
        raise UserError(f"{path}: state_dict shapes do not match the model: {details}")
    fresh = model.state_dict()  # the dtypes it holds: float32 weights, BatchNorm's int64 count
    for name, tensor in state_dict.items():
        if tensor.dtype != fresh[name].dtype:
            raise UserError(f"{path}: {name} is {tensor.dtype}; the model's is {fresh[name].dtype}")
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise UserError(f"{path}: {name} holds NaN or infinite values")
    model.load_state_dict(state_dict)
    return model
