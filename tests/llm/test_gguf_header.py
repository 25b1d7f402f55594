"""The bounded walk over a GGUF header (``hybridjet.llm.gguf_header``): sizes a file states are checked against its
bytes before any reader allocates by them."""

from __future__ import annotations

import resource
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from hybridjet.errors import InputFileError
from hybridjet.llm.gguf_header import check_gguf_header


def _header(*entries: bytes, tensors: int = 0) -> bytes:
    return b"GGUF" + struct.pack("<IQQ", 3, tensors, len(entries)) + b"".join(entries)


def _key(name: str) -> bytes:
    return struct.pack("<Q", len(name)) + name.encode()


def _limit_memory() -> None:  # the child may not grow past 2 GiB: a runaway allocation fails instead of swapping
    resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))


def test_an_array_of_two_to_the_sixty_elements_is_one_line_at_once(tmp_path):
    """Before: 'hybridjet model info' on this 132-byte file grew past 14 GB and was still growing after 2 min."""
    evil = tmp_path / "evil.gguf"
    data = _header(_key("tokenizer.ggml.tokens") + struct.pack("<IIQ", 9, 8, 1 << 60))
    evil.write_bytes(data + b"\0" * (132 - len(data)))
    result = subprocess.run([sys.executable, "-m", "hybridjet.cli", "model", "info", str(evil), "--cache-dir",
                             str(tmp_path / "cache")], capture_output=True, text=True, timeout=120,
                            preexec_fn=_limit_memory)
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.strip() == (f"hybridjet: error: {evil}: not a valid GGUF file (array "
                                     "'tokenizer.ggml.tokens' declares 1,152,921,504,606,846,976 elements, more than "
                                     "the file holds at byte 69 of 132; damaged or truncated)")


@pytest.mark.parametrize(("entry", "needle"), [
    (_key("k") + struct.pack("<I", 8) + struct.pack("<Q", 1 << 50), "string value of 'k' of 1,125,899,906,842,624"),
    (struct.pack("<Q", 1 << 62), "metadata key of 4,611,686,018,427,387,904 bytes"),
    (_key("k") + struct.pack("<I", 99), "unknown value type 99"),
])
def test_damaged_metadata_is_refused(tmp_path, entry, needle):
    path = tmp_path / "bad.gguf"
    path.write_bytes(_header(entry) + b"\0" * 64)
    with pytest.raises(InputFileError, match=needle):
        check_gguf_header(path)


def test_counts_the_file_cannot_hold_and_tensors_past_its_end_are_refused(tmp_path, tiny_gguf):
    many = tmp_path / "many.gguf"
    many.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 1 << 40, 1 << 40) + b"\0" * 64)
    with pytest.raises(InputFileError, match="metadata entries and .* tensors declared, more than the file holds"):
        check_gguf_header(many)
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(tiny_gguf.read_bytes()[:-4096])  # the header is whole, the last tensor is not
    with pytest.raises(InputFileError, match="runs past the end of the file"):
        check_gguf_header(cut)


def test_real_files_pass(tiny_gguf):
    check_gguf_header(tiny_gguf)
    from hybridjet.errors import HybridjetError
    from hybridjet.llm.resolve import default_gguf_path

    try:
        embedded = default_gguf_path()
    except HybridjetError:
        return
    check_gguf_header(Path(embedded))
