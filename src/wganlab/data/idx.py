"""The IDX file format of MNIST (LeCun et al.), read and written without torchvision.

An IDX file is a 4-byte magic number ``0 0 TYPE NDIM``, then NDIM big-endian uint32
sizes, then the data in C order. MNIST uses TYPE 0x08 (unsigned bytes): images are
(N, 28, 28), labels (N,). Files may be gzip-compressed (``.gz``).
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

_UBYTE = 0x08
_GZIP_MAGIC = b"\x1f\x8b"


class IdxError(ValueError):
    """A file that is not a whole, valid IDX array."""


def parse_idx(data: bytes, name: str = "IDX data") -> np.ndarray:
    """Decodes the bytes of an (uncompressed) unsigned-byte IDX file into a uint8 array.

    Refuses a wrong magic number, a type other than unsigned bytes, and a payload whose
    length does not match the header (a truncated or padded file).
    """
    if len(data) < 4:
        raise IdxError(f"{name} is {len(data)} bytes long: too short for an IDX header; restore it with 'wganlab data fetch mnist'")
    zero1, zero2, dtype, ndim = data[:4]
    if zero1 or zero2 or ndim == 0:
        raise IdxError(f"{name} is not an IDX file (magic bytes {data[:4].hex()}); restore it with 'wganlab data fetch mnist'")
    if dtype != _UBYTE:
        raise IdxError(f"{name} holds IDX type 0x{dtype:02x}; only unsigned bytes (0x08, as MNIST) are read")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise IdxError(f"{name} is truncated inside its header; restore it with 'wganlab data fetch mnist'")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    expected = int(np.prod(shape, dtype=np.int64))
    actual = len(data) - header
    if actual != expected:
        what = "truncated" if actual < expected else "longer than its header says"
        raise IdxError(f"{name} is {what}: header {shape} needs {expected} bytes of data, found {actual}; "
                       f"restore it with 'wganlab data fetch mnist'")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape).copy()


def read_idx(path: str | Path) -> np.ndarray:
    """Reads an IDX file, raw or gzip-compressed (told apart by content, not by name)."""
    path = Path(path)
    if not path.is_file():
        raise IdxError(f"IDX file {path} does not exist")
    raw = path.read_bytes()
    if raw[:2] == _GZIP_MAGIC:
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as error:
            raise IdxError(f"{path} is a damaged gzip file ({error}); restore it with 'wganlab data fetch mnist', "
                           f"which checks every file's SHA-256") from None
    return parse_idx(raw, str(path))


def encode_idx(array: np.ndarray) -> bytes:
    """The bytes of an unsigned-byte IDX file holding ``array`` (uint8, any rank >= 1)."""
    array = np.asarray(array)
    if array.dtype != np.uint8 or array.ndim == 0:
        raise IdxError(f"only uint8 arrays of rank >= 1 can be written as IDX, got {array.dtype} of rank {array.ndim}")
    header = bytes([0, 0, _UBYTE, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + np.ascontiguousarray(array).tobytes()


def write_idx(path: str | Path, array: np.ndarray, compress: bool = False) -> Path:
    """Writes ``array`` as an IDX file (gzip-compressed with ``compress``), atomically."""
    from wganlab.util.files import atomic_write_bytes

    data = encode_idx(array)
    if compress:
        data = gzip.compress(data, mtime=0)  # mtime 0: the same array gives the same bytes
    path = Path(path)
    atomic_write_bytes(path, data)
    return path
