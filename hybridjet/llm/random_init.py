"""The control that separates pretraining from "a big transformer": a model of the same architecture, shape and
parameter count as a pretrained one, with its weights drawn anew (the family's own initialisation, seeded).

The random copy is an HF directory in the model cache (``<cache root>/random/<model>-<sha256[:12]>-seed<k>/``: the
weights, the pretrained model's config and tokenizer, ``random.json``), made once per (model, seed) under the
cache's lock, and loaded like any model, 4-bit included. Its weights are a function of the seed and the torch
version's initialisation; ``random.json`` records their digest, so a run trained on them can tell when another
machine draws different ones.
"""

from __future__ import annotations

import json
from pathlib import Path

from hybridjet.errors import HybridjetError
from hybridjet.io_utils import atomic_dir
from hybridjet.llm.cache_entry import entry_lock
from hybridjet.llm.resolve import ModelIdentity, cache_root, sha256_hf_dir

RANDOM_JSON = "random.json"
INITS = ("pretrained", "random")


def _entry(identity: ModelIdentity, seed: int, root: Path) -> Path:
    return root / "random" / f"{Path(identity.path).name}-{identity.sha256[:12]}-seed{seed}"


def _valid(entry: Path, identity: ModelIdentity, seed: int) -> bool:
    try:
        record = json.loads((entry / RANDOM_JSON).read_text())
    except (OSError, ValueError):
        return False
    return (isinstance(record, dict) and record.get("source_sha256") == identity.sha256
            and record.get("seed") == seed and (entry / "config.json").is_file()
            and record.get("weights_sha256") == sha256_hf_dir(entry))


def random_weights(identity: ModelIdentity, seed: int = 0, cache_dir: str | None = None) -> ModelIdentity:
    """The identity of ``identity``'s architecture with random weights drawn with ``seed`` (made now if missing):
    its ``sha256`` stays the pretrained model's (the tokenizer and shapes it shares), its ``name`` says random."""
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise HybridjetError(f"init_seed: expected an integer >= 0, got {seed!r}")
    from hybridjet.llm.gguf_cache import check_cache_writable

    root = cache_root(cache_dir)
    entry = _entry(identity, seed, root)
    if not _valid(entry, identity, seed):
        check_cache_writable(root)
        with entry_lock(entry):
            if not _valid(entry, identity, seed):
                _draw(identity, seed, entry)
    record = json.loads((entry / RANDOM_JSON).read_text())
    return ModelIdentity(name=f"{identity.name} (random weights, seed {seed}, sha256 "
                              f"{record['weights_sha256'][:12]})", path=str(entry), sha256=identity.sha256,
                         source=identity.source, format=identity.format)


def _draw(identity: ModelIdentity, seed: int, entry: Path) -> None:
    """Write the random copy: the family's own initialisation under ``torch.manual_seed(seed)``, in fp32 on the CPU
    (the same draw on every machine with this torch version)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from hybridjet.llm.backbone import load_tokenizer

    config = AutoConfig.from_pretrained(identity.path, local_files_only=True)
    for key in ("quantization_config",):
        if hasattr(config, key):
            delattr(config, key)
    with atomic_dir(entry, replaces=lambda _: True) as tmp:
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        model.save_pretrained(tmp)
        load_tokenizer(identity.path).save_pretrained(tmp)
        record = {"source": identity.source, "source_name": identity.name, "source_sha256": identity.sha256,
                  "seed": seed, "torch": torch.__version__, "weights_sha256": sha256_hf_dir(tmp),
                  "parameters": sum(p.numel() for p in model.parameters())}
        (tmp / RANDOM_JSON).write_text(json.dumps(record, indent=1) + "\n")
