"""A bounded walk over a GGUF file's header before any GGUF reader sees it.

Every count and length in the header (metadata entries, strings, arrays, tensors and their dimensions) is checked
against the bytes the file has left before it is used, so a damaged or crafted file (a 132-byte file declaring an
array of 2^60 elements) is one :class:`~hybridjet.errors.InputFileError` in milliseconds instead of a reader that
allocates without bound. The walk reads the file through ``mmap``: nothing is copied, nothing allocated by a size
the file states.

Layout (GGUF v2/v3; v1 used 32-bit counts): ``GGUF``, version u32, tensor count u64, metadata count u64; each
metadata entry a string key, a u32 type and a value (an array: element type u32, count u64, elements); then per
tensor a string name, u32 dimension count, u64 dimensions, u32 type and u64 offset into the aligned data section.
"""

from __future__ import annotations

import mmap
import os
import struct
from pathlib import Path

from hybridjet.errors import InputFileError

MAGIC = b"GGUF"
#: the fixed sizes of GGUF's scalar value types (8 = string, 9 = array are variable)
_SCALAR_SIZES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
_STRING, _ARRAY = 8, 9
#: the most dimensions a tensor has (ggml's GGML_MAX_DIMS)
MAX_DIMS = 4
_U64 = struct.Struct("<Q")
_ALIGNMENT_KEY = "general.alignment"


class _Walk:
    """A cursor over the mapped header; every read is checked against the end of the file."""

    def __init__(self, path: Path, data: mmap.mmap | bytes, version: int) -> None:
        self.path, self.data, self.pos, self.version = path, data, 0, version

    def fail(self, problem: str) -> InputFileError:
        return InputFileError(self.path, f"not a valid GGUF file ({problem} at byte {self.pos:,} of "
                                         f"{len(self.data):,}; damaged or truncated)")

    def left(self) -> int:
        return len(self.data) - self.pos

    def take(self, n: int, what: str) -> bytes:
        if n < 0 or n > self.left():
            raise self.fail(f"{what} of {n:,} bytes runs past the end")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return bytes(out)

    def u32(self, what: str) -> int:
        return int(struct.unpack("<I", self.take(4, what))[0])

    def u64(self, what: str) -> int:
        return int(struct.unpack("<Q", self.take(8, what))[0])

    def count(self, what: str) -> int:
        """A count or length (u32 in GGUF v1, u64 later)."""
        return self.u32(what) if self.version == 1 else self.u64(what)

    def string(self, what: str) -> str:
        length = self.count(f"{what} length")
        return self.take(length, what).decode("utf-8", errors="replace")

    def skip_strings(self, n: int, key: str) -> None:
        """Step over ``n`` strings of an array (u64 lengths)."""
        pos, end, data, unpack = self.pos, len(self.data), self.data, _U64.unpack_from
        for _ in range(n):
            if pos + 8 > end:
                break
            pos += 8 + unpack(data, pos)[0]
            if pos > end:
                break
        else:
            self.pos = pos
            return
        self.pos = min(pos, end)
        raise self.fail(f"a string of array {key!r} runs past the end")

    def skip_value(self, kind: int, key: str, depth: int = 0) -> int | None:
        """Step over one value of type ``kind``; returns an integer scalar's value (for the alignment)."""
        if kind in _SCALAR_SIZES:
            raw = self.take(_SCALAR_SIZES[kind], f"value of {key!r}")
            return int.from_bytes(raw, "little") if kind in (4, 10) else None
        if kind == _STRING:
            self.string(f"string value of {key!r}")
            return None
        if kind == _ARRAY:
            if depth > 4:
                raise self.fail(f"arrays nested deeper than 4 in {key!r}")
            element = self.u32(f"element type of {key!r}")
            n = self.count(f"length of {key!r}")
            smallest = _SCALAR_SIZES.get(element, 8 if element == _STRING else 12 if element == _ARRAY else 0)
            if smallest == 0:
                raise self.fail(f"unknown element type {element} in {key!r}")
            if n * smallest > self.left():  # bounded before anything is read or allocated
                raise self.fail(f"array {key!r} declares {n:,} elements, more than the file holds")
            if element in _SCALAR_SIZES:
                self.take(n * smallest, f"array {key!r}")
            elif element == _STRING and self.version > 1:  # a tokenizer's 100k strings: one tight loop
                self.skip_strings(n, key)
            else:
                for _ in range(n):
                    self.skip_value(element, key, depth + 1)
            return None
        raise self.fail(f"unknown value type {kind} of {key!r}")


#: files this process found valid, by (path, size, mtime): a model loaded twice is walked once
_CHECKED: set[tuple[str, int, int]] = set()


def check_gguf_header(path: str | os.PathLike[str]) -> None:
    """Refuse a file that is not a GGUF file or whose header states sizes its bytes cannot hold (see the module
    docstring); reads the header only."""
    from gguf import GGML_QUANT_SIZES

    path = Path(path)
    try:
        stat = path.stat()
        key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
        if key in _CHECKED:
            return
        size = stat.st_size
        with open(path, "rb") as fh:
            head = fh.read(len(MAGIC))
            if head != MAGIC:
                what = "an empty file" if not head else f"it starts with {head!r}, a GGUF file with {MAGIC!r}"
                raise InputFileError(path, f"not a GGUF file ({what}); expected a .gguf file or a Hugging Face "
                                           "model directory")
            if size < 24:
                raise InputFileError(path, f"not a complete GGUF file ({size} bytes; truncated)")
            with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as data:
                _walk(path, data, GGML_QUANT_SIZES)
        _CHECKED.add(key)
    except OSError as exc:
        raise InputFileError(path, f"cannot read it ({exc.strerror or exc})") from None


def _walk(path: Path, data: mmap.mmap, quant_sizes: dict) -> None:
    walk = _Walk(path, data, 0)
    walk.take(4, "magic")
    walk.version = walk.u32("version")
    if walk.version not in (1, 2, 3):
        raise walk.fail(f"unknown GGUF version {walk.version}")
    n_tensors = walk.count("tensor count")
    n_entries = walk.count("metadata count")
    if n_entries * 13 > walk.left() or n_tensors * 24 > walk.left():  # each entry and tensor takes that at least
        raise walk.fail(f"{n_entries:,} metadata entries and {n_tensors:,} tensors declared, more than the file holds")
    alignment = 32
    for _ in range(n_entries):
        key = walk.string("metadata key")
        value = walk.skip_value(walk.u32(f"type of {key!r}"), key)
        if key == _ALIGNMENT_KEY and value:
            alignment = value
    tensors = []
    for _ in range(n_tensors):
        name = walk.string("tensor name")
        n_dims = walk.u32(f"dimension count of tensor {name!r}")
        if not 1 <= n_dims <= MAX_DIMS:
            raise walk.fail(f"tensor {name!r} has {n_dims} dimensions")
        elements = 1
        for _ in range(n_dims):
            elements *= walk.u64(f"dimension of tensor {name!r}")
        kind, offset = walk.u32(f"type of tensor {name!r}"), walk.u64(f"offset of tensor {name!r}")
        tensors.append((name, elements, kind, offset))
    start = -(-walk.pos // alignment) * alignment  # the data section begins at the next aligned byte
    for name, elements, kind, offset in tensors:
        try:
            block, block_bytes = quant_sizes[kind]
        except (KeyError, ValueError):
            raise walk.fail(f"tensor {name!r} has unknown type {kind}") from None
        nbytes = -(-elements // block) * block_bytes
        if start + offset + nbytes > len(data):
            raise walk.fail(f"tensor {name!r} ({elements:,} elements) runs past the end of the file")
