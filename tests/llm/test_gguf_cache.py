"""The GGUF -> HF model cache on a tiny GGUF file: conversion, content verification, concurrent preparation and
bad input, through the library and the ``hybridjet model`` command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from hybridjet.llm.files import SOURCE_JSON
from hybridjet.llm.gguf_cache import cache_problem, ensure_converted

ROOT = Path(__file__).resolve().parents[2]
HYBRIDJET = [sys.executable, "-m", "hybridjet.cli"]
STAMP = "verified.json"  # an entry's stamp of its last full verification (see the gguf_cache docstring)


def test_tiny_gguf_converts_to_the_same_model(tiny_gguf, tiny_llama, tmp_path):
    path, digest = ensure_converted(tiny_gguf, tmp_path)
    assert cache_problem(path, digest) is None
    source = json.loads((path / SOURCE_JSON).read_text())
    assert source["name"] == "tiny-llama" and source["tokenizer_rules"] == "smollm2" and source["notes"] == []
    ids = torch.tensor([[5, 17, 33, 2, 40]])
    with torch.no_grad():
        want = AutoModelForCausalLM.from_pretrained(tiny_llama).eval()(ids).logits
        got = AutoModelForCausalLM.from_pretrained(path).eval()(ids).logits
    torch.testing.assert_close(got, want)  # q/k permutation undone, tied embedding kept
    tok = AutoTokenizer.from_pretrained(path)
    assert tok.eos_token == "<|im_end|>" and tok.pad_token == "<|endoftext|>"  # GGUF pad == eos repaired


def _prepare(gguf: Path, cache: Path) -> subprocess.CompletedProcess:
    """``hybridjet model prepare`` in its own process, as a user runs it."""
    return subprocess.run([*HYBRIDJET, "model", "prepare", str(gguf), "--cache-dir", str(cache)],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)


def _scribble(f: Path, nbytes: int, keep_mtime: bool = False) -> None:
    """Overwrite ``nbytes`` in the middle of ``f`` with random bytes, in place (same size, same inode)."""
    st = f.stat()
    with open(f, "r+b") as fh:
        fh.seek(st.st_size // 2)
        fh.write(os.urandom(nbytes))
    if keep_mtime:
        os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert f.stat().st_size == st.st_size


def test_in_place_damage_is_found_and_rebuilt(tiny_gguf, tmp_path):
    first = _prepare(tiny_gguf, tmp_path)
    assert first.returncode == 0, first.stderr
    entry = Path(first.stdout.splitlines()[0])
    weights = entry / "model.safetensors"
    good = weights.read_bytes()
    _scribble(weights, 50_000)
    assert weights.read_bytes() != good
    digest = json.loads((entry / SOURCE_JSON).read_text())["sha256"]
    assert "model.safetensors" in (cache_problem(entry, digest) or "")
    again = _prepare(tiny_gguf, tmp_path)
    assert again.returncode == 0, again.stderr
    warning = [line for line in again.stderr.splitlines() if "rebuilding model cache" in line]
    assert len(warning) == 1 and "model.safetensors" in warning[0], again.stderr
    assert weights.read_bytes() == good and cache_problem(entry, digest) is None
    assert not [p.name for p in tmp_path.joinpath("models").iterdir() if p.name.startswith(".")]


def test_full_check_at_most_daily_and_entries_without_digests(tiny_gguf, tmp_path):
    entry, digest = ensure_converted(tiny_gguf, tmp_path)
    stamp = entry / STAMP
    weights = entry / "model.safetensors"
    # a damage that keeps size and mtime is found at the next load by the blocks' CRC-32s (before: it escaped
    # every check for up to a day, and scores moved by 0.32)...
    _scribble(weights, 1000, keep_mtime=True)
    assert "model.safetensors differs from its verified content (block 0" in (cache_problem(entry, digest) or "")
    # ...and by the next full check too, once a day has passed
    data = json.loads(stamp.read_text())
    data["verified_at"] -= 2 * 86400
    stamp.write_text(json.dumps(data))
    assert "model.safetensors differs from the sha256" in (cache_problem(entry, digest) or "")
    # once rebuilt, a passing full check renews the stamp (so that the next checks are cheap again)
    entry, digest = ensure_converted(tiny_gguf, tmp_path)
    assert cache_problem(entry, digest) is None and weights.is_file()
    data = json.loads(stamp.read_text())
    data["verified_at"] -= 2 * 86400
    stamp.write_text(json.dumps(data))
    assert cache_problem(entry, digest) is None
    assert abs(json.loads(stamp.read_text())["verified_at"] - time.time()) < 60
    # a stamp from before block CRC-32s were recorded gets a full check, which records them
    data = json.loads(stamp.read_text())
    del data["blocks"]
    stamp.write_text(json.dumps(data))
    assert cache_problem(entry, digest) is None and "blocks" in json.loads(stamp.read_text())
    # an entry converted before digests were recorded is rebuilt
    source = json.loads((entry / SOURCE_JSON).read_text())
    source.update(conversion_version=1, files={name: rec["size"] for name, rec in source["files"].items()})
    (entry / SOURCE_JSON).write_text(json.dumps(source))
    assert cache_problem(entry, digest) == "older conversion version"


@pytest.mark.parametrize("rebuild", [False, True])
def test_two_prepares_at_once_convert_once(tiny_gguf, tmp_path, rebuild):
    args = [*HYBRIDJET, "model", "prepare", str(tiny_gguf), "--cache-dir", str(tmp_path)]
    if rebuild:  # both asked to rebuild a valid entry: one rebuilds, the other takes that rebuild
        ensure_converted(tiny_gguf, tmp_path)
        args.append("--rebuild")
    procs = [subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
             for _ in range(2)]
    outs = [proc.communicate(timeout=300) for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], outs
    assert outs[0][0] == outs[1][0], outs  # the same entry
    log_line = "hybridjet: rebuilding model cache" if rebuild else "hybridjet: converting"
    conversions = [err.count(log_line) for _, err in outs]
    assert sorted(conversions) == [0, 1], outs  # the second waited, then found the entry valid
    entry = Path(outs[0][0].splitlines()[0])
    source = json.loads((entry / SOURCE_JSON).read_text())
    assert source["pid"] == procs[conversions.index(1)].pid
    assert cache_problem(entry, source["sha256"]) is None


@pytest.mark.parametrize("command, content", [
    ("info", "text"), ("prepare", "text"), ("prepare", "empty"), ("prepare", "truncated"), ("info", "truncated"),
])
def test_a_file_that_is_not_gguf_is_one_line(tiny_gguf, tmp_path, command, content):
    if content == "truncated":  # a download cut short: the header is fine, the tensor data is not all there
        bad = tmp_path / "cut.gguf"
        bad.write_bytes(tiny_gguf.read_bytes()[: tiny_gguf.stat().st_size // 2])
    else:
        bad = tmp_path / ("notes.txt" if command == "info" else "model.gguf")
        bad.write_text("hello, this is not a model\n" if content == "text" else "")
    cache = tmp_path / "cache"
    result = subprocess.run([*HYBRIDJET, "model", command, str(bad), "--cache-dir", str(cache)],
                            capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"hybridjet: error: {bad}: not a "), result.stderr
    assert ("truncated" if content == "truncated" else "not a GGUF file (") in lines[0], lines[0]
    assert not cache.exists()  # refused before any conversion work: nothing written


@pytest.mark.parametrize("where", ["under a file", "read-only"])
def test_a_cache_that_cannot_be_written_is_one_line(tiny_gguf, tmp_path, where, small_disk):
    """Before: NotADirectoryError / OSError tracebacks from the cache's mkdir."""
    if where == "under a file":
        (tmp_path / "file").write_text("x")
        cache = tmp_path / "file" / "cache"
    else:
        cache = small_disk("64k", read_only=True)
    result = subprocess.run([*HYBRIDJET, "model", "prepare", str(tiny_gguf)], capture_output=True, text=True,
                            timeout=300, cwd=ROOT, env={**os.environ, "HYBRIDJET_CACHE": str(cache)})
    assert result.returncode == 2, result.stderr[-2000:]
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith(f"hybridjet: error: {cache}: the model cache cannot be written there") and \
        "HYBRIDJET_CACHE" in line


def test_the_cache_follows_the_umask_lock_file_included(tiny_gguf, tmp_path):
    """Before: the entry's lock file was 0644 whatever the umask, so a group-shared cache could not be locked by the
    group's other members (every other file was 0600 before the umask fix)."""
    old = os.umask(0o002)
    try:
        entry, _ = ensure_converted(tiny_gguf, tmp_path)
    finally:
        os.umask(old)
    modes = {p.name: p.stat().st_mode & 0o777 for p in [*entry.parent.iterdir(), *entry.iterdir()]}
    assert modes[f"{entry.name}.lock"] == 0o664 and modes[entry.name] == 0o775
    assert {m for name, m in modes.items() if (entry / name).is_file()} == {0o664}
