"""A tiny random-weight Llama with a SmolLM2-like tokenizer, saved as an HF directory, for fast tests.

``make_tiny_llama(dir)`` writes ``config.json``, ``model.safetensors``, ``tokenizer.json``,
``tokenizer_config.json`` (with a ChatML ``chat_template``) and ``special_tokens_map.json``; a few hundred KB.
The tokenizer mirrors SmolLM2's conventions: byte-level BPE, numbers split into single digits, special tokens
``<|endoftext|>`` (id 0, pad), ``<|im_start|>`` (id 1, bos), ``<|im_end|>`` (id 2, eos).  Everything is
deterministic (fixed corpus, fixed seed).
"""

from __future__ import annotations

import os
from pathlib import Path

ENDOFTEXT = "<|endoftext|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
SPECIAL_TOKENS = (ENDOFTEXT, IM_START, IM_END)

#: ChatML, as SmolLM2-Instruct (without its default system prompt).
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

_CORPUS = """\
The jet has transverse momentum 1523 GeV, pseudorapidity 0.42 and azimuth -1.57 radians.
A dijet resonance search looks for a bump in the invariant mass spectrum of the two leading jets.
Signal events come from a heavy particle decaying to two lighter particles, each giving a fat jet.
Background events are dominated by quantum chromodynamics multijet production.
The N-subjettiness ratio tau21 separates two-prong jets from one-prong jets.
Question: is this event signal or background? Answer: signal.
Question: what is the mass of the leading jet? Answer: 512.3 GeV.
user assistant system You are a helpful assistant for particle physics.
Energy, momentum, mass, charge, spin, lepton, quark, gluon, photon, boson, hadron.
0 1 2 3 4 5 6 7 8 9 10 100 1000 3.14159 2.71828 -0.5 +1.0e-3
"""


def build_tiny_tokenizer(vocab_size: int = 400):
    """A deterministic byte-level BPE ``tokenizers.Tokenizer`` with single-digit splitting and ChatML tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_CORPUS.splitlines() * 4, trainer=trainer)
    return tok


def make_tiny_llama(
    directory: str | os.PathLike[str],
    hidden_size: int = 64,
    layers: int = 2,
    heads: int = 4,
    kv_heads: int = 2,
    intermediate_size: int = 128,
    vocab_size: int = 400,
    max_position_embeddings: int = 512,
    seed: int = 0,
) -> Path:
    """Write a tiny random ``LlamaForCausalLM`` plus tokenizer (HF format) into ``directory``; return its path."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    from hybridjet.io_utils import atomic_dir

    directory = Path(directory)
    tok = build_tiny_tokenizer(vocab_size)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=IM_START,
        eos_token=IM_END,
        pad_token=ENDOFTEXT,
        unk_token=ENDOFTEXT,
        model_max_length=max_position_embeddings,
    )
    tokenizer.chat_template = CHATML_TEMPLATE
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        max_position_embeddings=max_position_embeddings,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        rms_norm_eps=1e-5,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config).to(torch.float32)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    with atomic_dir(directory) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    return directory


#: Llama-3.2-3B's architecture (random weights are built from it for speed and memory benchmarks).
LLAMA_32_3B_SHAPE: dict[str, object] = dict(
    vocab_size=128256,
    hidden_size=3072,
    intermediate_size=8192,
    num_hidden_layers=28,
    num_attention_heads=24,
    num_key_value_heads=8,
    head_dim=128,
    max_position_embeddings=131072,
    tie_word_embeddings=True,
    rope_theta=500000.0,
    rms_norm_eps=1e-5,
)
