"""Tiny random GGUF files of several model families, written as llama.cpp writes them, for fast conversion tests.

``make_family_gguf(path, family, instruct=...)`` writes a two-layer random model of ``family`` (a record of
:data:`hybridjet.llm.families.FAMILIES` with a GGUF fixture) with a few-hundred-token tokenizer of that family's
kind and special tokens: byte-level BPE
(``gpt2``: Llama 3, Qwen) or SentencePiece (``llama``: Mistral, Gemma, Phi-3), each with the GGUF metadata the
real files carry (bos/eos/pad ids, ``add_bos_token``, the pre-tokenizer name).  ``instruct=True`` adds the family's
chat template (and its end-of-turn eos); ``False`` writes a base model without one.  ``reference_dir`` saves the
random HF model the file was made from, to compare a conversion's outputs with.  Tensors are named and transformed
the way transformers' GGUF loader undoes: llama.cpp's q/k row permutation (``llama``), norms stored as ``w + 1``
(Gemma).  Files are a few hundred KB and convert in well under a second.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hybridjet.io_utils import atomic_dir, atomic_path
from hybridjet.llm.testing import CORPUS

#: the byte-fallback pieces of a SentencePiece vocabulary (``<0x00>`` .. ``<0xFF>``)
BYTE_PIECES = tuple(f"<0x{b:02X}>" for b in range(256))

LLAMA3_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] + '<|eot_id|>' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}"
)
MISTRAL_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{% if message['role'] == 'assistant' %}{{ ' ' + message['content'] + eos_token }}"
    "{% else %}{{ '[INST] ' + message['content'] + ' [/INST]' }}{% endif %}{% endfor %}"
)
GEMMA_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{% set role = 'model' if message['role'] == 'assistant' else message['role'] %}"
    "{{ '<start_of_turn>' + role + '\\n' + message['content'] + '<end_of_turn>\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<start_of_turn>model\\n' }}{% endif %}"
)
PHI3_TEMPLATE = (
    "{% for message in messages %}{{ '<|' + message['role'] + '|>\\n' + message['content'] + '<|end|>\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}"
)


@dataclass(frozen=True)
class GGUFFixture:
    """What a tiny GGUF of one family holds (the records are in :data:`hybridjet.llm.families.FAMILIES`).

    ``arch``: GGUF ``general.architecture``; ``config``: the transformers config class and its shape;
    ``tokenizer``: ``gpt2`` (byte-level BPE) or ``llama`` (SentencePiece); ``specials``: the control tokens first
    in the vocabulary, ``trailing``: those after the ordinary pieces (as Llama 3, Qwen and Phi-3 have them);
    ``bos``/``eos``/``pad``: token names (``instruct_eos``: the eos of the instruct variant); ``template``: the instruct chat template.
    """

    arch: str
    name: str
    config: str
    tokenizer: str
    specials: tuple[str, ...]
    bos: str
    eos: str
    template: str
    instruct_eos: str | None = None
    pad: str | None = None
    unk: str | None = None
    pre: str | None = None
    add_bos: bool = False
    trailing: tuple[str, ...] = ()
    shape: dict[str, Any] = field(default_factory=dict)


_SHAPE = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
              num_key_value_heads=2)


def _bpe_tokens(family: GGUFFixture, vocab_size: int) -> tuple[list[str], list[str]]:
    """Byte-level BPE tokens (specials first, ``trailing`` specials last) and merges, trained on :data:`CORPUS`."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(family.specials),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(CORPUS.splitlines() * 4, trainer=trainer)
    data = json.loads(tok.to_str())["model"]
    tokens = [*(t for t, _ in sorted(tok.get_vocab().items(), key=lambda kv: kv[1])), *family.trailing]
    merges = [m if isinstance(m, str) else " ".join(m) for m in data["merges"]]
    return tokens, merges


def _spm_tokens(family: GGUFFixture, vocab_size: int) -> list[str]:
    """SentencePiece-style tokens: specials, the 256 byte pieces, ``▁``-prefixed BPE pieces (best first), then
    ``trailing`` specials."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="first")
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, show_progress=False)
    tok.train_from_iterator(CORPUS.splitlines() * 4, trainer=trainer)
    pieces = [t for t, _ in sorted(tok.get_vocab().items(), key=lambda kv: kv[1])]
    return [*family.specials, *BYTE_PIECES, *pieces, *family.trailing]


def _hf_model(family: GGUFFixture, vocab_size: int, ids: dict[str, int | None], seed: int) -> Any:
    """The random transformers model of ``family`` (fp32), with the shape and token ids the GGUF states."""
    import torch
    import transformers

    shape = {**_SHAPE, **family.shape, "vocab_size": vocab_size, "max_position_embeddings": 512,
             "rms_norm_eps": 1e-6, "tie_word_embeddings": True}
    config = getattr(transformers, family.config)(**shape, **{f"{k}_token_id": v for k, v in ids.items()})
    torch.manual_seed(seed)
    return transformers.AutoModelForCausalLM.from_config(config).to(torch.float32).eval()


def _permute_for_gguf(weights: Any, n_head: int) -> Any:
    """llama.cpp's q/k row permutation (transformers' GGUF loader undoes it)."""
    return (weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:])
            .swapaxes(1, 2).reshape(weights.shape))


def _gguf_tensors(model: Any, family: GGUFFixture) -> list[tuple[str, Any]]:
    """The model's tensors under their GGUF names, transformed as llama.cpp stores them (lm_head tied: left out)."""
    import gguf

    config = model.config
    arch = next(k for k, v in gguf.MODEL_ARCH_NAMES.items() if v == family.arch)
    names = gguf.get_tensor_name_map(arch, config.num_hidden_layers)
    out = []
    for hf_name, tensor in model.state_dict().items():
        if hf_name == "lm_head.weight":
            continue
        base, suffix = hf_name.rsplit(".", 1)
        gguf_name = names.get_name(base)
        if gguf_name is None:
            raise ValueError(f"{family.arch}: no GGUF name for {hf_name}")
        array = tensor.detach().numpy().astype("float32")
        if family.arch == "llama" and gguf_name.endswith((".attn_q", ".attn_k")):
            heads = config.num_attention_heads if gguf_name.endswith("q") else config.num_key_value_heads
            array = _permute_for_gguf(array, heads)
        if family.arch.startswith("gemma") and gguf_name.endswith("norm") and suffix == "weight":
            array = array + 1.0  # llama.cpp folds Gemma's (1 + w) norm scale into the weight
        out.append((f"{gguf_name}.{suffix}", array))
    return out


def make_family_gguf(
    path: str | os.PathLike[str],
    family: str,
    instruct: bool = True,
    reference_dir: str | os.PathLike[str] | None = None,
    vocab_size: int = 400,
    seed: int = 0,
) -> Path:
    """Write a tiny random GGUF of ``family`` at ``path`` (see the module docstring); return its path."""
    import gguf

    from hybridjet.llm.families import FAMILIES

    fixtures = {name: f.gguf for name, f in FAMILIES.items() if f.gguf is not None}
    if family not in fixtures:
        raise ValueError(f"unknown family {family!r}: expected one of {', '.join(fixtures)}")
    spec = fixtures[family]
    merges: list[str] | None = None
    if spec.tokenizer == "gpt2":
        tokens, merges = _bpe_tokens(spec, vocab_size)
    else:
        tokens = _spm_tokens(spec, vocab_size)
    index = {t: i for i, t in enumerate(tokens)}
    eos = spec.instruct_eos if instruct and spec.instruct_eos else spec.eos
    ids = {"bos": index[spec.bos], "eos": index[eos], "pad": index[spec.pad] if spec.pad else None}
    model = _hf_model(spec, len(tokens), ids, seed)
    if reference_dir is not None:
        with atomic_dir(Path(reference_dir), replaces=lambda d: (d / "config.json").is_file(),
                        what="a model folder") as tmp:
            model.save_pretrained(tmp)
    config = model.config
    path = Path(path)
    with atomic_path(path, suffix=".gguf") as tmp:
        writer = gguf.GGUFWriter(str(tmp), spec.arch)
        writer.add_name(spec.name + (" Instruct" if instruct else ""))
        writer.add_vocab_size(len(tokens))
        writer.add_context_length(config.max_position_embeddings)
        writer.add_embedding_length(config.hidden_size)
        writer.add_block_count(config.num_hidden_layers)
        writer.add_feed_forward_length(config.intermediate_size)
        writer.add_head_count(config.num_attention_heads)
        writer.add_head_count_kv(config.num_key_value_heads)
        writer.add_layer_norm_rms_eps(config.rms_norm_eps)
        rope = config.rope_parameters
        writer.add_rope_freq_base(float(rope.get("rope_theta") or rope.get("full_attention", {})["rope_theta"]))
        if spec.arch == "llama":
            writer.add_rope_dimension_count(config.head_dim)
        if spec.arch.startswith("gemma"):
            writer.add_key_length(config.head_dim)
            writer.add_value_length(config.head_dim)
            writer.add_sliding_window(config.sliding_window)
        writer.add_file_type(gguf.LlamaFileType.ALL_F32)
        writer.add_tokenizer_model(spec.tokenizer)
        writer.add_tokenizer_pre(spec.pre or "default")
        writer.add_token_list(tokens)
        specials = {*spec.specials, *spec.trailing}
        if merges is not None:
            writer.add_token_types([3 if t in specials else 1 for t in tokens])
            writer.add_token_merges(merges)
        else:
            kinds = {spec.unk: 2, **{t: 6 for t in BYTE_PIECES}}
            writer.add_token_types([kinds.get(t, 3 if t in specials else 1) for t in tokens])
            writer.add_token_scores([0.0 if t in specials else -float(i) for i, t in enumerate(tokens)])
            writer.add_unk_token_id(index[spec.unk])
        writer.add_bos_token_id(ids["bos"])
        writer.add_eos_token_id(ids["eos"])
        if ids["pad"] is not None:
            writer.add_pad_token_id(ids["pad"])
        writer.add_add_bos_token(spec.add_bos)
        if instruct:
            writer.add_chat_template(spec.template)
        for name, array in _gguf_tensors(model, spec):
            writer.add_tensor(name, array)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
    return path
