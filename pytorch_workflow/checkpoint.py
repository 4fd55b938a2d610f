"""Saving and loading a model's `state_dict`: byte-stable files, and safe loads.

`torch.save` writes a random `.data/serialization_id` into its zip (and names the zip's
folder after the file), so saving the same weights twice gives different bytes and DVC sees a
new model every run. We save to memory, where the folder is always `archive`, and replace the
random id with one derived from the content. The file still loads with plain `torch.load`.
"""

import hashlib
import io
import pickle
import struct
import zipfile
from pathlib import Path

import torch
from torch import nn

from pytorch_workflow.errors import UserError
from pytorch_workflow.files import atomic_write_bytes

_SERIALIZATION_ID = "archive/.data/serialization_id"
_LOCAL_HEADER = b"PK\x03\x04"
_CENTRAL_HEADER = b"PK\x01\x02"
_DATA_DESCRIPTOR = b"PK\x07\x08"


def state_dict_bytes(state_dict: dict[str, torch.Tensor]) -> bytes:
    """`torch.save` of CPU copies of the tensors, with the random id made deterministic."""
    cpu_state = {name: tensor.detach().cpu() for name, tensor in state_dict.items()}
    buffer = io.BytesIO()
    torch.save(cpu_state, buffer)
    return stabilise_serialization_id(buffer.getvalue())


def save_model(model: nn.Module, path: str | Path) -> None:
    """Save the model's `state_dict` (the course's way), atomically and byte-stable."""
    atomic_write_bytes(path, state_dict_bytes(model.state_dict()))


def load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Load a `state_dict` with `weights_only=True`, so a tampered file cannot run code."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: model file not found; run `dvc repro` to train it")
    if not zipfile.is_zipfile(path):
        raise UserError(f"{path}: not a readable model file (not a zip archive from torch.save)")
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise UserError(
            f"{path}: refused to load: the file holds more than tensors and could run code "
            f"({_unsupported_global(str(error))})"
        ) from None
    except Exception as error:  # a damaged zip surfaces as RuntimeError, EOFError, ...
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UserError(f"{path}: not a readable model file ({reason[:160]})") from None
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
    """Load a saved `state_dict` into a fresh model, checking names and shapes first."""
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
    model.load_state_dict(state_dict)
    return model


def stabilise_serialization_id(archive: bytes) -> bytes:
    """Replace the zip's random serialization id with digits of a hash of everything else.

    The record is stored uncompressed, so only its bytes and the three copies of its CRC
    (local header, data descriptor, central directory) change; offsets stay the same.
    """
    with zipfile.ZipFile(io.BytesIO(archive)) as zip_file:
        info = zip_file.getinfo(_SERIALIZATION_ID)
    if info.compress_type != zipfile.ZIP_STORED:
        raise ValueError("expected the serialization id to be stored uncompressed")
    data = bytearray(archive)
    name_length, extra_length = struct.unpack_from("<HH", data, info.header_offset + 26)
    start = info.header_offset + 30 + name_length + extra_length
    end = start + info.file_size
    blanked = bytes(data[:start]) + bytes(info.file_size) + bytes(data[end:])
    digest = int.from_bytes(hashlib.sha256(blanked).digest(), "big")
    new_id = str(digest).zfill(info.file_size)[-info.file_size :].encode("ascii")
    data[start:end] = new_id
    old_crc = struct.pack("<I", info.CRC)
    new_crc = struct.pack("<I", zipfile.crc32(new_id))
    _replace_crc(data, info.header_offset + 14, old_crc, new_crc, _LOCAL_HEADER, info.header_offset)
    if info.flag_bits & 0x08:
        descriptor = end if bytes(data[end : end + 4]) != _DATA_DESCRIPTOR else end + 4
        _replace_crc(data, descriptor, old_crc, new_crc)
    central = _central_entry_offset(archive, _SERIALIZATION_ID)
    _replace_crc(data, central + 16, old_crc, new_crc, _CENTRAL_HEADER, central)
    return bytes(data)


def _replace_crc(
    data: bytearray,
    at: int,
    old: bytes,
    new: bytes,
    signature: bytes | None = None,
    header: int | None = None,
) -> None:
    if signature is not None and bytes(data[header : header + 4]) != signature:
        raise ValueError("unexpected zip layout while stabilising the serialization id")
    # A writer may leave the local header's CRC as zero when it uses a data descriptor.
    if bytes(data[at : at + 4]) not in (old, b"\0\0\0\0"):
        raise ValueError("unexpected CRC while stabilising the serialization id")
    if bytes(data[at : at + 4]) == old:
        data[at : at + 4] = new


def _central_entry_offset(archive: bytes, name: str) -> int:
    """Walk the central directory entry by entry (a signature search could hit tensor bytes)."""
    with zipfile.ZipFile(io.BytesIO(archive)) as zip_file:
        position = zip_file.start_dir  # where zipfile found the central directory
        entries = len(zip_file.infolist())
    encoded = name.encode("utf-8")
    for _ in range(entries):
        if archive[position : position + 4] != _CENTRAL_HEADER:
            break
        name_length, extra_length, comment_length = struct.unpack_from(
            "<HHH", archive, position + 28
        )
        if archive[position + 46 : position + 46 + name_length] == encoded:
            return position
        position += 46 + name_length + extra_length + comment_length
    raise ValueError(f"zip central directory has no entry {name}")
