"""The decoder families the package knows, one :class:`Family` record each: which linear layers the LoRA presets
adapt, whether the shared-prefix fast path reproduces the family's forward, what its causal LM does to the LM
head's logits, and the tiny random test model of the family. Adding a family is one record in :data:`FAMILIES`;
the LoRA builder, the shared-prefix path, the text loss and the family tests read it. A model type not listed
is loaded all the same, with Llama's layer names, the prefix per event, and transformers' own loss."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hybridjet.llm.testing import CHATML_TEMPLATE
from hybridjet.llm.tiny_gguf import (
    GEMMA_TEMPLATE,
    LLAMA3_TEMPLATE,
    MISTRAL_TEMPLATE,
    PHI3_TEMPLATE,
    GGUFFixture,
)

_ATTENTION = ("q_proj", "k_proj", "v_proj", "o_proj")
#: LoRA preset -> adapted layers, as Llama, Mistral, Qwen, Gemma and most decoders name them
LLAMA_TARGETS: dict[str, tuple[str, ...]] = {
    "qkv": ("q_proj", "k_proj", "v_proj"),
    "attn": _ATTENTION,
    "all-linear": (*_ATTENTION, "gate_proj", "up_proj", "down_proj"),
}
#: Phi-3 fuses q, k, v into ``qkv_proj`` and gate, up into ``gate_up_proj``
FUSED_TARGETS: dict[str, tuple[str, ...]] = {
    "qkv": ("qkv_proj",),
    "attn": ("qkv_proj", "o_proj"),
    "all-linear": ("qkv_proj", "o_proj", "gate_up_proj", "down_proj"),
}


@dataclass(frozen=True)
class HFFixture:
    """A tiny random model of the family for tests: the transformers config class and the settings it needs beyond
    the common tiny shape."""

    config: str
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Family:
    """One decoder family.

    Args:
        model_types: the transformers ``model_type`` values of its configs.
        lora_targets: LoRA preset -> the linear layers it adapts.
        shared_prefix: the shared-prefix forward (:mod:`hybridjet.llm.shared_prefix`) reproduces the family's
            (inputs_embeds -> rotary -> pre-norm layers -> norm, Llama's attention).
        logits: what the causal LM does to ``lm_head(hidden)``: ``plain`` (nothing but the config's
            ``final_logit_softcapping``, where set) or a function of the config giving the factor it multiplies by.
        gguf: the tiny GGUF file of the family the conversion tests write (:func:`~hybridjet.llm.tiny_gguf.make_family_gguf`).
        hf: the tiny HF model of the family the hybrid's family tests build.
    """

    model_types: tuple[str, ...]
    lora_targets: dict[str, tuple[str, ...]] = field(default_factory=lambda: LLAMA_TARGETS)
    shared_prefix: bool = False
    logits: str | Callable[[Any], float] = "plain"
    gguf: GGUFFixture | None = None
    hf: HFFixture | None = None


_QWEN_SPECIALS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|fim_pad|>")
_GEMMA_SPECIALS = ("<pad>", "<eos>", "<bos>", "<unk>", "<mask>", "<start_of_turn>", "<end_of_turn>", "<unused0>")

FAMILIES: dict[str, Family] = {
    "llama": Family(
        ("llama",), shared_prefix=True,
        gguf=GGUFFixture(
            "llama", "Llama 3.2 Tiny", "LlamaConfig", "gpt2", (),
            trailing=("<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
                      "<|eot_id|>", "<|finetune_right_pad_id|>", "<|reserved_special_token_0|>"),
            bos="<|begin_of_text|>", eos="<|end_of_text|>", instruct_eos="<|eot_id|>", template=LLAMA3_TEMPLATE,
            pre="llama-bpe", add_bos=True, shape=dict(head_dim=16))),
    "mistral": Family(
        ("mistral",), shared_prefix=True,
        gguf=GGUFFixture(
            "llama", "Mistral 7B v0.1 Tiny", "LlamaConfig", "llama", ("<unk>", "<s>", "</s>"),
            bos="<s>", eos="</s>", unk="<unk>", template=MISTRAL_TEMPLATE, add_bos=True, shape=dict(head_dim=16)),
        hf=HFFixture("MistralConfig", {"sliding_window": None})),
    "mixtral": Family(("mixtral",)),
    "qwen2": Family(
        ("qwen2",), shared_prefix=True,
        gguf=GGUFFixture(
            "qwen2", "Qwen2.5 Tiny", "Qwen2Config", "gpt2", (), trailing=_QWEN_SPECIALS,
            bos="<|endoftext|>", eos="<|endoftext|>", instruct_eos="<|im_end|>", pad="<|endoftext|>",
            template=CHATML_TEMPLATE, pre="qwen2"),
        hf=HFFixture("Qwen2Config")),
    "qwen3": Family(
        ("qwen3", "qwen2_moe", "qwen3_moe"),
        gguf=GGUFFixture(
            "qwen3", "Qwen3 Tiny", "Qwen3Config", "gpt2", (), trailing=_QWEN_SPECIALS,
            bos="<|endoftext|>", eos="<|endoftext|>", instruct_eos="<|im_end|>", pad="<|endoftext|>",
            template=CHATML_TEMPLATE, pre="qwen2",  # Qwen3's GGUF keys leave head_dim at its default, 128
            shape=dict(head_dim=128, num_attention_heads=2, num_key_value_heads=1))),
    "gemma": Family(("gemma",)),
    "gemma2": Family(
        ("gemma2",),
        gguf=GGUFFixture(
            "gemma2", "Gemma 2 Tiny", "Gemma2Config", "llama", _GEMMA_SPECIALS,
            bos="<bos>", eos="<eos>", instruct_eos="<end_of_turn>", pad="<pad>", unk="<unk>",
            template=GEMMA_TEMPLATE, add_bos=True, shape=dict(head_dim=16, sliding_window=64)),
        hf=HFFixture("Gemma2Config", {"head_dim": 16, "query_pre_attn_scalar": 16})),
    "gemma3": Family(
        ("gemma3_text",),
        gguf=GGUFFixture(
            "gemma3", "Gemma 3 Tiny", "Gemma3TextConfig", "llama", _GEMMA_SPECIALS,
            bos="<bos>", eos="<eos>", instruct_eos="<end_of_turn>", pad="<pad>", unk="<unk>",
            template=GEMMA_TEMPLATE, add_bos=True, shape=dict(head_dim=16, sliding_window=64))),
    "phi3": Family(
        ("phi3",), lora_targets=FUSED_TARGETS,
        gguf=GGUFFixture(
            "phi3", "Phi 3 Mini Tiny", "Phi3Config", "llama", ("<unk>", "<s>", "</s>"),
            trailing=("<|endoftext|>", "<|assistant|>", "<|end|>", "<|user|>", "<|system|>"),
            bos="<s>", eos="<|endoftext|>", instruct_eos="<|end|>", pad="<|endoftext|>", unk="<unk>",
            template=PHI3_TEMPLATE),
        hf=HFFixture("Phi3Config", {"pad_token_id": 0})),
    "smollm3": Family(("smollm3",)),
    "olmo2": Family(("olmo2",)),
    "cohere": Family(("cohere", "cohere2"), logits=lambda config: float(config.logit_scale)),
    "granite": Family(("granite",), logits=lambda config: 1.0 / float(config.logits_scaling)),
}

#: the registry's record for a model type not listed (Llama's layer names, no fast path, logits not known)
UNKNOWN = Family((), logits="unknown")


def family_of(model_type: str | None) -> Family:
    """The record of the family whose configs have ``model_type`` (:data:`UNKNOWN` for one not listed)."""
    return next((f for f in FAMILIES.values() if model_type in f.model_types), UNKNOWN)


def lora_targets(preset: str, model_type: str | None) -> tuple[str, ...]:
    """The linear layers LoRA ``preset`` adapts in a decoder of ``model_type``."""
    return family_of(model_type).lora_targets[preset]
