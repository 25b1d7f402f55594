"""A tiny random-weight Llama with a SmolLM2-like tokenizer, saved as an HF directory, for fast tests.

``make_tiny_llama(dir)`` writes ``config.json``, ``model.safetensors``, ``tokenizer.json``,
``tokenizer_config.json`` (with a ChatML ``chat_template``) and ``special_tokens_map.json``; a few hundred KB.
The tokenizer mirrors SmolLM2's conventions: byte-level BPE, numbers split into single digits, special tokens
``<|endoftext|>`` (id 0, pad), ``<|im_start|>`` (id 1, bos), ``<|im_end|>`` (id 2, eos).  Everything is
deterministic (fixed corpus, fixed seed).  ``make_tiny_gguf(path, dir)`` writes that model as an fp32 GGUF file
(SmolLM2-like metadata) for fast tests of the GGUF conversion cache; tiny GGUF files of other families (Llama 3,
Mistral, Qwen, Gemma, Phi-3) come from :func:`hybridjet.llm.tiny_gguf.make_family_gguf`.
"""

from __future__ import annotations

import os
from pathlib import Path

from hybridjet.io_utils import atomic_dir, atomic_path

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

CORPUS = """\
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
    tok.train_from_iterator(CORPUS.splitlines() * 4, trainer=trainer)
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

    directory = Path(directory)
    tok = build_tiny_tokenizer(vocab_size)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=IM_START, eos_token=IM_END, pad_token=ENDOFTEXT,
                                        unk_token=ENDOFTEXT, model_max_length=max_position_embeddings)
    tokenizer.chat_template = CHATML_TEMPLATE
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=intermediate_size,
                         num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=kv_heads,
                         max_position_embeddings=max_position_embeddings, tie_word_embeddings=True,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id, rms_norm_eps=1e-5)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config).to(torch.float32)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    with atomic_dir(directory, replaces=lambda d: (d / "config.json").is_file(), what="a model folder") as tmp:
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
#: Llama-3.1-8B's shape (the seeds' 8B recipes: FeynTune, the chat tune), for speed and memory benchmarks
LLAMA_31_8B_SHAPE: dict[str, object] = {**LLAMA_32_3B_SHAPE, "hidden_size": 4096, "intermediate_size": 14336,
                                        "num_hidden_layers": 32, "num_attention_heads": 32,
                                        "tie_word_embeddings": False}


# GGUF tensor names of the HF Llama weights (llama.cpp's convention); the tied lm_head is not written
_GGUF_LAYER_NAMES = {
    "input_layernorm": "attn_norm",
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "post_attention_layernorm": "ffn_norm",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
}


def _permute_for_gguf(weights, n_head: int):
    """llama.cpp's q/k row permutation (transformers' GGUF loader undoes it)."""
    return (
        weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:])
        .swapaxes(1, 2)
        .reshape(weights.shape)
    )


def make_tiny_gguf(path: str | os.PathLike[str], hf_dir: str | os.PathLike[str]) -> Path:
    """Write the tiny Llama of ``hf_dir`` (from :func:`make_tiny_llama`) as an fp32 GGUF file at ``path``.

    Metadata follow SmolLM2's GGUF: ``gpt2`` (byte-level BPE) tokenizer with merges, ChatML template, bos/eos/pad
    ids; a few hundred KB, loadable by transformers' GGUF loader (``gguf_file=``).
    """
    import json

    import gguf
    from safetensors.numpy import load_file

    path, hf_dir = Path(path), Path(hf_dir)
    config = json.loads((hf_dir / "config.json").read_text())
    tok = json.loads((hf_dir / "tokenizer.json").read_text())
    vocab: dict[str, int] = tok["model"]["vocab"]
    for added in tok.get("added_tokens", []):
        vocab[added["content"]] = added["id"]
    tokens = [t for t, _ in sorted(vocab.items(), key=lambda kv: kv[1])]
    merges = [m if isinstance(m, str) else " ".join(m) for m in tok["model"]["merges"]]
    heads, kv_heads = config["num_attention_heads"], config["num_key_value_heads"]
    weights = load_file(str(hf_dir / "model.safetensors"))
    with atomic_path(path, suffix=".gguf") as tmp:
        writer = gguf.GGUFWriter(str(tmp), "llama")
        writer.add_name("tiny-llama")
        writer.add_vocab_size(len(tokens))
        writer.add_context_length(config["max_position_embeddings"])
        writer.add_embedding_length(config["hidden_size"])
        writer.add_block_count(config["num_hidden_layers"])
        writer.add_feed_forward_length(config["intermediate_size"])
        writer.add_head_count(heads)
        writer.add_head_count_kv(kv_heads)
        writer.add_rope_dimension_count(config["hidden_size"] // heads)
        writer.add_rope_freq_base(float(config.get("rope_theta", 10000.0)))
        writer.add_layer_norm_rms_eps(config["rms_norm_eps"])
        writer.add_file_type(gguf.LlamaFileType.ALL_F32)
        writer.add_tokenizer_model("gpt2")
        writer.add_tokenizer_pre("smollm")
        writer.add_token_list(tokens)
        writer.add_token_types([3 if t in SPECIAL_TOKENS else 1 for t in tokens])  # 3: control, 1: normal
        writer.add_token_merges(merges)
        writer.add_bos_token_id(vocab[IM_START])
        writer.add_eos_token_id(vocab[IM_END])
        writer.add_pad_token_id(vocab[IM_END])  # as SmolLM2's GGUF: pad == eos (the conversion repairs it)
        writer.add_add_bos_token(False)
        writer.add_chat_template(CHATML_TEMPLATE)
        for name, array in sorted(weights.items()):
            if name == "model.embed_tokens.weight":
                gguf_name = "token_embd.weight"
            elif name == "model.norm.weight":
                gguf_name = "output_norm.weight"
            elif name.startswith("model.layers."):
                layer, rest = name[len("model.layers."):].split(".", 1)
                gguf_name = f"blk.{layer}.{_GGUF_LAYER_NAMES[rest.removesuffix('.weight')]}.weight"
                if rest.startswith("self_attn.q_proj"):
                    array = _permute_for_gguf(array, heads)
                elif rest.startswith("self_attn.k_proj"):
                    array = _permute_for_gguf(array, kv_heads)
            else:  # lm_head.weight: tied to the embedding
                continue
            writer.add_tensor(gguf_name, array.astype("float32"))
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
    return path


def make_family_hf(out: str | os.PathLike[str], family: str, tokenizer_dir: str | os.PathLike[str]) -> Path:
    """A two-layer random model of ``family`` (a record of :data:`hybridjet.llm.families.FAMILIES` with an ``hf``
    fixture) with the tokenizer files of ``tokenizer_dir`` (a tiny Llama's, vocabulary 400), saved as an HF
    directory at ``out``."""
    import shutil

    import torch
    import transformers
    from transformers import AutoModelForCausalLM

    from hybridjet.llm.families import FAMILIES

    fixture = FAMILIES[family].hf
    if fixture is None:
        raise ValueError(f"family {family!r} has no tiny HF fixture in the registry")
    config = getattr(transformers, fixture.config)(vocab_size=400, hidden_size=64, intermediate_size=128,
                                                   num_hidden_layers=2, num_attention_heads=4,
                                                   num_key_value_heads=2, max_position_embeddings=256,
                                                   **fixture.settings)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config)
    out = Path(out)
    model.save_pretrained(out)
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        if (Path(tokenizer_dir) / name).exists():
            shutil.copy(Path(tokenizer_dir) / name, out / name)
    return out
