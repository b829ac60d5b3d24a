"""Submitted arrays (.npy, .npz) read safely: every member's header (shape, dtype) is checked by the caller before any
of its data is read or decompressed, members nobody asked for are never read, and nothing is ever unpickled.

So a small file that declares a huge, negative or object-typed array costs nothing: it is refused from its header.
"""

from __future__ import annotations

import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import IO

import numpy as np

NPY_MAGIC = b"\x93NUMPY"
# A pickle of protocol 2 or later starts with the PROTO opcode and its protocol number.
PICKLE_STARTS = tuple(b"\x80" + bytes([protocol]) for protocol in range(2, 6))
HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
# Called with (shape, dtype, where) before the data is read; raises to refuse the array.
HeaderCheck = Callable[[tuple[int, ...], np.dtype, str], None]
_READ_ERRORS = (OSError, EOFError, ValueError, zipfile.BadZipFile, zlib.error, RuntimeError, NotImplementedError)


class ArrayFileError(ValueError):
    """An unreadable, pickled or malformed array file; the message names the file (and member) and the problem."""


def pickle_message(where: str) -> str:
    """The refusal of pickled content, with how to save arrays instead."""
    return (
        f"{where} holds pickled data (an object array or a pickle); tvbench never unpickles submissions. "
        "Save plain numeric arrays with np.save / np.savez (allow_pickle=False) and ids as string arrays."
    )


def read_header(fp: IO[bytes], where: str) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype from the header of a .npy stream (the stream is left at the start of the data)."""
    start = fp.read(len(NPY_MAGIC) + 2)
    if not start.startswith(NPY_MAGIC):
        if start.startswith(PICKLE_STARTS):
            raise ArrayFileError(pickle_message(where))
        raise ArrayFileError(f"{where} is not a NumPy .npy array (no NumPy header); save it with np.save.")
    version = tuple(start[len(NPY_MAGIC):])
    if version not in HEADER_READERS:
        raise ArrayFileError(f"{where}: unsupported .npy format version {version}; save it with np.save.")
    try:
        shape, _, dtype = HEADER_READERS[version](fp)
    except _READ_ERRORS as err:
        raise ArrayFileError(f"{where}: malformed .npy header ({err}).") from err
    if dtype.hasobject:
        raise ArrayFileError(pickle_message(where))
    if any(n < 0 for n in shape):
        raise ArrayFileError(f"{where}: the header declares the negative shape {shape}; the file is corrupt.")
    return shape, dtype


def read_npy(path: Path, check: HeaderCheck) -> np.ndarray:
    """The array of a .npy file (memory-mapped, read-only) after `check` accepted its header."""
    try:
        with open(path, "rb") as f:
            shape, dtype = read_header(f, str(path))
    except OSError as err:
        raise ArrayFileError(f"{path}: cannot be read ({err}).") from err
    check(shape, dtype, str(path))
    try:
        return np.load(path, allow_pickle=False, mmap_mode="r")
    except _READ_ERRORS as err:
        raise ArrayFileError(f"{path}: truncated or unreadable .npy data ({err}).") from err


def read_npz(path: Path, checks: dict[str, HeaderCheck]) -> dict[str, np.ndarray]:
    """The members of a .npz named in `checks`, each read only after its check accepted its header."""
    try:
        with zipfile.ZipFile(path) as archive:
            members = [i for i in archive.infolist() if i.filename.endswith(".npy")]
            names = [i.filename[: -len(".npy")] for i in members]
            repeated = sorted({n for n in names if names.count(n) > 1})
            if repeated:
                raise ArrayFileError(f"{path}: the member `{repeated[0]}` appears twice; save the file again.")
            arrays = {}
            for info, name in zip(members, names, strict=True):
                if name not in checks:
                    continue
                where = f"{path} (member `{name}`)"
                with archive.open(info) as stream:
                    shape, dtype = read_header(stream, where)
                checks[name](shape, dtype, where)
                with archive.open(info) as stream:
                    arrays[name] = np.lib.format.read_array(stream, allow_pickle=False)
            return arrays
    except ArrayFileError:
        raise
    except _READ_ERRORS as err:
        raise ArrayFileError(f"{path}: not a readable .npz archive ({err}).") from err


def member_names(path: Path) -> list[str]:
    """Names of the arrays in a .npz (from its directory, without reading any data)."""
    try:
        with zipfile.ZipFile(path) as archive:
            return [n[: -len(".npy")] for n in archive.namelist() if n.endswith(".npy")]
    except _READ_ERRORS as err:
        raise ArrayFileError(f"{path}: not a readable .npz archive ({err}).") from err
