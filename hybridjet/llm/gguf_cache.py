"""Convert a GGUF checkpoint once into an HF-format cache directory, with tokenizer repairs, and verify it.

Layout: ``<cache root>/models/<gguf stem>-<sha256[:12]>/`` with ``config.json``, ``model.safetensors``
(weights dequantized to fp32 by transformers' GGUF loader), tokenizer files, ``source.json`` (source path, its
sha256, conversion version, every file written with its size and sha256, the tokenizer repairs) and
``verified.json`` (time of the last full verification, each file's size and mtime then).
Written through :func:`hybridjet.io_utils.atomic_dir`.  Before use an entry is checked
(:func:`hybridjet.llm.cache_entry.cache_problem`): sizes always, every file's sha256 when a size or mtime changed
since the last full verification or that one is a day old; a missing, truncated or altered file, a different
source hash or an older conversion version makes it rebuilt, with a warning naming the problem.  Conversions hold
an flock on ``<entry>.lock`` beside the entry: two processes preparing the same GGUF at once convert it once, the
second waits, then finds the finished entry.  Input is checked before any work: the whole header, every size in
it bounded by the file's length (:mod:`hybridjet.llm.gguf_header`), before the file is hashed or read by a GGUF
reader; a failure is an :class:`~hybridjet.errors.InputFileError`, one line from the CLI.

Any architecture transformers' GGUF loader reads converts (:func:`hybridjet.llm.architectures.gguf_architectures`;
another one is refused in one line before any work).  The tokenizer is repaired and checked by
:mod:`hybridjet.llm.gguf_tokenizer`: SmolLM2's original conventions for SmolLM2 files, generic checks for every
other one; what a file lacks (a chat template, a pad token distinct from eos) is a note in ``source.json``
(``notes``), warned about once, at conversion.
"""

from __future__ import annotations

import json
import logging
import os
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hybridjet.errors import HybridjetError, InputFileError
from hybridjet.io_utils import atomic_dir
from hybridjet.llm.architectures import check_gguf_architecture
from hybridjet.llm.cache_entry import (
    VERIFIED_JSON,
    cache_problem,
    entry_lock,
    file_records,
    file_stats,
    write_stamp,
)
from hybridjet.llm.files import CONVERSION_VERSION, SOURCE_JSON, sha256_file
from hybridjet.llm.gguf_header import check_gguf_header
from hybridjet.llm.gguf_tokenizer import (
    TOKEN_COUNT,
    TOKENIZER_METADATA,
    check_tokenizer,
    drop_phantom_tokens,
    is_smollm,
    repair_tokenizer,
    template_notes,
)

log = logging.getLogger(__name__)

COUNT = "#count"
#: the GGUF metadata a conversion uses
CONVERSION_METADATA = ("general.architecture", "general.organization", *TOKENIZER_METADATA)


def converted_dir(gguf: Path, root: Path, digest: str) -> Path:
    """Cache directory of a GGUF file with sha256 ``digest``."""
    return root / "models" / f"{gguf.stem}-{digest[:12]}"


def gguf_metadata(gguf: Path, keys: tuple[str, ...]) -> dict[str, Any]:
    """Selected scalar/string metadata of a GGUF file, whose whole header is parsed (a truncated or damaged file
    raises :class:`InputFileError`); ``KEY#count`` is the length of the array ``KEY`` (not read whole)."""
    from gguf import GGUFReader

    try:
        reader = GGUFReader(str(gguf))
    except Exception as exc:  # the reader fails on short reads anywhere in the metadata or tensor table
        detail = (str(exc).splitlines() or [""])[0]
        raise InputFileError(gguf, f"not a complete GGUF file (truncated or damaged: {gguf.stat().st_size} bytes; "
                                   f"{type(exc).__name__}: {detail})") from None
    out: dict[str, Any] = {}
    for key in keys:
        field = reader.fields.get(key.removesuffix(COUNT))
        if field is not None and key.endswith(COUNT):
            out[key] = len(field.data)
        elif field is not None:
            try:
                out[key] = field.contents()
            except Exception:  # an old gguf without contents(): decode the string field by hand
                out[key] = bytes(field.parts[field.data[0]]).decode("utf-8")
    return out


def ensure_converted(gguf: Path, root: Path, rebuild: bool = False) -> tuple[Path, str]:
    """The HF cache directory of ``gguf`` (converted now if missing or broken) and the GGUF's sha256.

    Conversions hold the entry's lock: a process that finds the entry unusable waits for any other one converting
    it, then checks again, so that two processes at once convert once (``rebuild`` too: a rebuild finished by
    another process while this one waited is taken as done).
    """
    gguf = Path(gguf).resolve()
    check_gguf_header(gguf)  # a wrong or damaged file is refused before hashing or converting anything
    digest = sha256_file(gguf)
    target = converted_dir(gguf, root, digest)
    if not rebuild and cache_problem(target, digest) is None:
        return target, digest
    meta = gguf_metadata(gguf, CONVERSION_METADATA)  # parses the whole header: a truncated file stops here
    check_gguf_architecture(gguf, meta.get("general.architecture"))  # before the lock: nothing is written
    seen = _read_bytes(target / SOURCE_JSON)  # changes if another process converts while this one waits
    check_cache_writable(root)
    with entry_lock(target):
        if rebuild and _read_bytes(target / SOURCE_JSON) == seen:
            problem: str | None = "rebuild requested"
        else:
            problem = cache_problem(target, digest)
        if problem == "missing":
            log.warning("hybridjet: converting %s into %s (once per GGUF file)", gguf, target)
        elif problem is not None:
            log.warning("hybridjet: rebuilding model cache %s (%s)", target, problem)
        if problem is not None:
            convert_gguf(gguf, target, digest, meta)
    return target, digest


def check_cache_writable(root: Path) -> None:
    """One line (naming ``HYBRIDJET_CACHE``) when the model cache cannot be written where it would be: a
    conversion is needed and the folder is read-only, under a file or on a full disk."""
    from hybridjet.io_utils import check_writable

    try:
        check_writable(root / "models" / ".probe")
    except OSError as exc:
        raise HybridjetError(f"{root}: the model cache cannot be written there ({str(exc).split(': ', 1)[-1]}); set "
                             "HYBRIDJET_CACHE (or --cache-dir) to a writable folder, or prepare the model where it "
                             "can be written") from None


def _read_bytes(path: Path) -> bytes | None:
    """The content of ``path`` (None when unreadable)."""
    try:
        return path.read_bytes()
    except OSError:
        return None


def convert_gguf(gguf: Path, target: Path, digest: str, meta: dict[str, Any] | None = None) -> Path:
    """Convert ``gguf`` into the HF directory ``target`` (atomically): the tokenizer first, repaired and checked
    (a failing one stops before the weights are converted), then the weights; ``meta``: its
    :data:`CONVERSION_METADATA` when already read.  Notes on what the file lacks are warned about once, here."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    t0 = time.perf_counter()
    if meta is None:
        meta = gguf_metadata(gguf, CONVERSION_METADATA)
    with atomic_dir(target, replaces=lambda _: True) as tmp:  # an entry of the cache (named by the sha256)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tokenizer = _convert(gguf, lambda: AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name))
        smollm = is_smollm(meta, tokenizer)
        repairs, notes = repair_tokenizer(tokenizer, meta, smollm)
        tokenizer.save_pretrained(tmp)
        repairs += drop_phantom_tokens(tmp, meta.get(TOKEN_COUNT))
        reloaded = AutoTokenizer.from_pretrained(str(tmp), local_files_only=True)
        failures = check_tokenizer(reloaded, meta, smollm)
        if failures:
            raise HybridjetError(f"{gguf}: converted tokenizer fails checks: {'; '.join(failures)}")
        notes += template_notes(reloaded)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = _convert(gguf, lambda: AutoModelForCausalLM.from_pretrained(
                str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32))
        # drop the GGUF quantization marker: the saved weights are plain dequantized fp32
        if getattr(model.config, "quantization_config", None) is not None:
            del model.config.quantization_config
        model.hf_quantizer = None
        model.config.pad_token_id = tokenizer.pad_token_id
        if model.generation_config is not None:
            model.generation_config.pad_token_id = tokenizer.pad_token_id
            model.generation_config.eos_token_id = tokenizer.eos_token_id
            model.generation_config.bos_token_id = tokenizer.bos_token_id
        model.save_pretrained(tmp)
        names = [f.name for f in sorted(tmp.iterdir()) if f.is_file() and f.name not in (SOURCE_JSON, VERIFIED_JSON)]
        files, blocks = file_records(tmp, names)  # hashed from disk: what a later check compares against
        source = {
            "source": str(gguf),
            "sha256": digest,
            "size": gguf.stat().st_size,
            "conversion_version": CONVERSION_VERSION,
            "name": meta.get("general.name"),
            "organization": meta.get("general.organization"),
            "architecture": meta.get("general.architecture"),
            "model_type": model.config.model_type,
            "tokenizer_rules": "smollm2" if smollm else "generic",
            "tokenizer_repairs": repairs,
            "notes": notes,
            "files": files,
            "converted_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "seconds": round(time.perf_counter() - t0, 2),
            "pid": os.getpid(),
        }
        (tmp / SOURCE_JSON).write_text(json.dumps(source, indent=2) + "\n")
        write_stamp(tmp, file_stats(tmp, names), blocks)  # just hashed: the next full check is due in a day
    del model
    for note in notes:
        log.warning("hybridjet: %s: %s", gguf.name, note)
    return target


def _convert(gguf: Path, load: Callable[[], Any]) -> Any:
    """``load()`` (transformers reading the GGUF file), its failure as one line."""
    try:
        return load()
    except Exception as exc:  # transformers raises many kinds on a file it cannot convert
        raise HybridjetError(f"{gguf}: cannot convert this GGUF file: {(str(exc).splitlines() or [''])[0]}") from None
