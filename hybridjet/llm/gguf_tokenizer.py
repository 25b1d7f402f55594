"""The tokenizer of a GGUF conversion: repairs, checks, and notes on what the file lacks.

SmolLM2 files (told by their metadata: ``smollm`` in ``general.name``/``general.basename`` or the ``smollm``
pre-tokenizer, and its vocabulary starting ``<|endoftext|>``, ``<|im_start|>``, ``<|im_end|>``) are brought to the
original ``tokenizer.json``'s conventions: numbers split into single digits, pad ``<|endoftext|>`` (the GGUF has
pad == eos), a ChatML template.  Every file, SmolLM2 or not, gets the generic treatment:

* bos/eos are the GGUF metadata's tokens (some transformers versions, e.g. 5.17, take bos for eos);
* the chat template is the GGUF metadata's ``tokenizer.chat_template`` when there is one;
* a pad token that does not steal eos: the GGUF's when distinct from eos, else the first of :data:`PAD_NAMES`, a
  special token with ``pad`` in its name, a reserved/unused one, or unk that the vocabulary has;
* added tokens the GGUF vocabulary lacks are dropped (:func:`drop_phantom_tokens`);
* checks (a failure stops the conversion): an eos token, eos != bos unless the GGUF itself says so, as many tokens
  as the GGUF vocabulary, a sample text that encodes and decodes back to itself.

What a file lacks (a chat template, a pad token distinct from eos) is a note: recorded in ``source.json`` and
warned about once, at conversion, never fatal.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hybridjet.llm.chat import PLAIN_TEMPLATE_SUMMARY

SMOLLM_SPECIALS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
SMOLLM_PAD = "<|endoftext|>"
#: pad tokens by name, in order of preference
PAD_NAMES = ("<pad>", "<|pad|>", "[PAD]", "<|finetune_right_pad_id|>", "<|endoftext|>")
ROUND_TRIP_TEXT = "The jet has pT 1523 GeV, η = 0.42 and Δφ = -3.1.\nQuestion: signal or background? Answer: signal."
#: the number of tokens of the GGUF vocabulary (``gguf_metadata``'s count of the array)
TOKEN_COUNT = "tokenizer.ggml.tokens#count"
#: the GGUF metadata the tokenizer treatment reads
TOKENIZER_METADATA = ("general.name", "general.basename", "tokenizer.ggml.pre", "tokenizer.chat_template",
                      "tokenizer.ggml.eos_token_id", "tokenizer.ggml.bos_token_id", TOKEN_COUNT)


def is_smollm(meta: dict[str, Any], tokenizer: Any) -> bool:
    """Whether a GGUF file (its metadata and converted tokenizer) is a SmolLM2 model."""
    names = " ".join(str(meta.get(key) or "") for key in ("general.name", "general.basename")).lower()
    if "smollm" not in names and meta.get("tokenizer.ggml.pre") != "smollm":
        return False
    return tuple(tokenizer.convert_ids_to_tokens(list(range(len(SMOLLM_SPECIALS))))) == SMOLLM_SPECIALS


def _special_ids(meta: dict[str, Any]) -> dict[str, int]:
    return {role: int(meta[f"tokenizer.ggml.{role}_token_id"]) for role in ("eos", "bos")
            if f"tokenizer.ggml.{role}_token_id" in meta}


def pad_candidate(tokenizer: Any, limit: int | None = None) -> str | None:
    """A pad token the vocabulary has that is neither eos nor bos (None when there is none); ``limit``: ids from it
    on are not the model's (see :func:`drop_phantom_tokens`)."""
    vocab = {t: i for t, i in tokenizer.get_vocab().items() if limit is None or i < limit}
    taken = {tokenizer.eos_token, tokenizer.bos_token}
    specials = [t for t in tokenizer.all_special_tokens if t in vocab]
    added = [t for t in getattr(tokenizer, "added_tokens_encoder", {}) if t in vocab]
    ordered = [
        *[t for t in PAD_NAMES if t in vocab],
        *[t for t in specials + added if "pad" in t.lower()],
        *[t for t in specials + added if "reserved" in t.lower() or "unused" in t.lower()],
        *([tokenizer.unk_token] if tokenizer.unk_token in vocab else []),
    ]
    return next((t for t in ordered if t not in taken), None)


def repair_tokenizer(tokenizer: Any, meta: dict[str, Any], smollm: bool) -> tuple[list[str], list[str]]:
    """Repair a GGUF-converted tokenizer in place (see the module docstring); returns (repairs made, notes)."""
    from tokenizers import pre_tokenizers

    repairs: list[str] = []
    notes: list[str] = []
    for role, token_id in _special_ids(meta).items():
        token = tokenizer.convert_ids_to_tokens(token_id)
        if token is not None and getattr(tokenizer, f"{role}_token") != token:
            repairs.append(f"{role}_token {getattr(tokenizer, f'{role}_token')!r} -> {token!r} (GGUF metadata)")
            setattr(tokenizer, f"{role}_token", token)
    if smollm and "Digits" not in repr(tokenizer.backend_tokenizer.pre_tokenizer):
        pre = tokenizer.backend_tokenizer.pre_tokenizer
        tokenizer.backend_tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True),
        ])
        repairs.append(f"pre_tokenizer {pre!r} -> Digits(individual_digits=True)+ByteLevel")
    template = meta.get("tokenizer.chat_template")
    if template and tokenizer.chat_template != template:
        tokenizer.chat_template = template
        repairs.append("chat_template from GGUF metadata")
    if not tokenizer.chat_template:
        notes.append(f"no chat template: chat-like data and prompts use {PLAIN_TEMPLATE_SUMMARY} "
                     "(or data.chat_template)")
    if tokenizer.pad_token is None or tokenizer.pad_token == tokenizer.eos_token:
        vocab = tokenizer.get_vocab()
        pad = SMOLLM_PAD if smollm and SMOLLM_PAD in vocab else pad_candidate(tokenizer, meta.get(TOKEN_COUNT))
        if pad is not None:
            repairs.append(f"pad_token {tokenizer.pad_token!r} -> {pad!r} (distinct from eos)")
            tokenizer.pad_token = pad
        else:
            notes.append(f"no pad token distinct from eos {tokenizer.eos_token!r} in the vocabulary: padding "
                         "uses eos (masked by the attention mask; the eos labels stay learned)")
            tokenizer.pad_token = tokenizer.eos_token
    ids = _special_ids(meta)
    if tokenizer.eos_token is not None and ids.get("eos") is not None and ids.get("eos") == ids.get("bos"):
        notes.append(f"bos == eos {tokenizer.eos_token!r}, as the GGUF metadata states")
    return repairs, notes


def drop_phantom_tokens(directory: Path, token_count: int | None) -> list[str]:
    """Remove from the tokenizer saved in ``directory`` the added tokens whose ids the GGUF vocabulary of
    ``token_count`` tokens lacks (transformers' GPT-2 tokenizer adds its default ``<|endoftext|>`` to a vocabulary
    without one, e.g. Llama 3's): their ids are past the model's embeddings.  Returns the repair made, if any."""
    if token_count is None:
        return []
    path = directory / "tokenizer.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    phantom = [t["content"] for t in data.get("added_tokens", []) if t["id"] >= token_count]
    if not phantom:
        return []
    data["added_tokens"] = [t for t in data["added_tokens"] if t["id"] < token_count]
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")  # inside the atomic conversion dir
    for name in ("tokenizer_config.json", "special_tokens_map.json"):
        if not (directory / name).is_file():
            continue
        config = json.loads((directory / name).read_text(encoding="utf-8"))
        decoder = config.get("added_tokens_decoder")
        if isinstance(decoder, dict):
            config["added_tokens_decoder"] = {k: v for k, v in decoder.items() if int(k) < token_count}
        for key, value in list(config.items()):
            if isinstance(value, list):
                config[key] = [v for v in value if _content(v) not in phantom]
            elif _content(value) in phantom:
                config[key] = None
        (directory / name).write_text(json.dumps(config, ensure_ascii=False, indent=2), encoding="utf-8")
    return [f"dropped added token(s) {phantom} that the GGUF vocabulary of {token_count} lacks"]


def _content(value: Any) -> Any:
    """The token text of a special-token entry (a string, or an AddedToken dict)."""
    return value.get("content") if isinstance(value, dict) else value


def check_tokenizer(tokenizer: Any, meta: dict[str, Any] | None = None, smollm: bool = False) -> list[str]:
    """Checks of a converted tokenizer (see the module docstring); returns the failures (empty when fine)."""
    failures = []
    ids = _special_ids(meta or {})
    if tokenizer.eos_token is None:
        failures.append("no eos token")
    elif tokenizer.eos_token == tokenizer.bos_token and not (ids and ids.get("eos") == ids.get("bos")):
        failures.append(f"eos token equal to bos ({tokenizer.eos_token!r})")
    count = (meta or {}).get(TOKEN_COUNT)
    if count is not None and len(tokenizer) != count:
        failures.append(f"{len(tokenizer)} tokens, the GGUF vocabulary has {count}")
    encoded = tokenizer(ROUND_TRIP_TEXT, add_special_tokens=False).input_ids
    decoded = tokenizer.decode(encoded)
    if decoded != ROUND_TRIP_TEXT:
        failures.append(f"{ROUND_TRIP_TEXT!r} decodes back as {decoded!r}")
    if smollm:
        digits = tokenizer.convert_ids_to_tokens(tokenizer("1523", add_special_tokens=False).input_ids)
        if digits != ["1", "5", "2", "3"]:
            failures.append(f"'1523' -> {digits}, expected single digits")
        if tokenizer.chat_template:
            text = tokenizer.apply_chat_template(
                [{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True
            )
            if "<|im_start|>assistant" not in text:
                failures.append("chat template has no '<|im_start|>assistant'")
    return failures


def template_notes(tokenizer: Any) -> list[str]:
    """A note when the tokenizer's chat template cannot render one user turn (chat prompts would then fail)."""
    if not tokenizer.chat_template:
        return []
    try:
        tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False,
                                      add_generation_prompt=True)
    except Exception as exc:  # a template raising on its own (raise_exception) or a Jinja error
        return [f"the chat template cannot render a user turn ({type(exc).__name__}: "
                f"{(str(exc).splitlines() or [''])[0]}): set data.chat_template for chat-like data"]
    return []
