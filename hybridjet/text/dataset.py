"""Tokenise :class:`~hybridjet.text.formats.Example` records with label masking; splits; padding collator.

Labels are ``-100`` everywhere except on the tokens a model should learn: the assistant turns (including the
end-of-turn token, e.g. ``<|im_end|>`` for ChatML) or the continuation of a completion record.  Masking is done by
character spans of the rendered chat template (offset mapping), never by token id, so an EOS that doubles as the
pad token is still learned; padding is masked from the attention mask.  Chat-like examples are rendered by the one
rule of :func:`hybridjet.llm.chat.render_chat`: the run's ``data.chat_template``, else the tokenizer's own, else
the plain ``### User:`` / ``### Assistant:`` template (a base model without one).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from hybridjet.errors import HybridjetError
from hybridjet.llm.backbone import ensure_pad_token
from hybridjet.llm.chat import adds_bos, render_chat
from hybridjet.text.formats import Example

IGNORE_INDEX = -100
#: a collated batch's flat [B*T] indices of the positions whose next token is learned (:func:`learned_index`), made
#: on the host with the batch, so that the loss gathers those positions without a device synchronisation
LEARNED_INDEX = "learned_index"


@dataclass
class Encoded:
    """One tokenised example: ``input_ids`` and ``labels`` (same length, -100 = not learned)."""

    input_ids: list[int]
    labels: list[int]
    source: str

    def __len__(self) -> int:
        return len(self.input_ids)

    def learned_tokens(self) -> int:
        """The next-token targets the loss counts: learned labels after the first position (which nothing predicts)."""
        return sum(1 for label in self.labels[1:] if label != IGNORE_INDEX)


def with_system(messages: list[dict[str, str]], system_prompt: str | None) -> list[dict[str, str]]:
    """Prepend ``system_prompt`` unless the conversation already starts with a system turn."""
    if system_prompt and not (messages and messages[0]["role"] == "system"):
        return [{"role": "system", "content": system_prompt}, *messages]
    return list(messages)


def _assistant_spans(tokenizer: Any, messages: list[dict[str, str]],
                     template: str | None = None) -> tuple[str, list[tuple[int, int]]]:
    """Rendered text of the conversation (:func:`hybridjet.llm.chat.render_chat`, ``template`` as there) and the
    character spans of each assistant turn (with its end token)."""
    rendered = render_chat(tokenizer, messages, template=template)
    full = rendered
    eos = tokenizer.eos_token or ""
    spans = []
    shift = 0  # characters inserted into ``full`` so far (explicit EOS tokens)
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        before = render_chat(tokenizer, messages[:i], add_generation_prompt=True, template=template)
        upto = render_chat(tokenizer, messages[: i + 1], template=template)
        if not rendered.startswith(upto) or not upto.startswith(before):
            raise HybridjetError("the chat template does not render conversations incrementally; cannot mask turns")
        start = len(before) + shift
        content = message["content"].strip()
        content_at = upto.find(content, len(before))
        if content_at < 0:
            raise HybridjetError("the chat template changes the assistant text; cannot mask turns")
        end = len(upto.rstrip())  # trailing newline after the end-of-turn token is not learned
        if eos and eos not in upto[content_at + len(content) : end + 1]:
            # a template without an end-of-turn token: learn the EOS explicitly
            full = full[: end + shift] + eos + full[end + shift :]
            shift += len(eos)
        spans.append((start, end + shift))
    return full, spans


def _tokenise_with_spans(tokenizer: Any, text: str, spans: Sequence[tuple[int, int]]) -> tuple[list[int], list[int]]:
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids = list(enc["input_ids"])
    labels = [IGNORE_INDEX] * len(ids)
    for j, (start, end) in enumerate(enc["offset_mapping"]):
        if end <= start:
            continue
        for s, e in spans:
            if s <= start < e:
                labels[j] = ids[j]
                break
    return ids, labels


def encode_example(
    example: Example, tokenizer: Any, system_prompt: str | None = None, train_on_prompt: bool = False,
    chat_template: str | None = None,
) -> Encoded:
    """Tokenise one example; labels only on assistant turns / continuation unless ``train_on_prompt``;
    ``chat_template``: the template text of chat-like examples (None: the tokenizer's, else the plain one)."""
    if not getattr(tokenizer, "is_fast", False):
        raise HybridjetError("text SFT needs a fast tokenizer (offset mapping) for label masking")
    if example.is_chat:
        text, spans = _assistant_spans(tokenizer, with_system(example.messages or [], system_prompt), chat_template)
    else:
        eos = tokenizer.eos_token or ""
        text = example.prompt + example.target + eos
        spans = [(len(example.prompt), len(text))]
    if train_on_prompt:
        spans = [(0, spans[-1][1])]
    ids, labels = _tokenise_with_spans(tokenizer, text, spans)
    bos = tokenizer.bos_token_id
    if not example.is_chat and bos is not None and adds_bos(tokenizer) and ids[:1] != [bos]:
        ids, labels = [bos, *ids], [IGNORE_INDEX, *labels]
    return Encoded(ids, labels, example.source)


def encode_examples(
    examples: Sequence[Example],
    tokenizer: Any,
    max_length: int | None = None,
    system_prompt: str | None = None,
    train_on_prompt: bool = False,
    name: str = "data",
    log: Any = print,
    chat_template: str | None = None,
) -> list[Encoded]:
    """Tokenise ``examples``; drop (and count) those longer than ``max_length`` or with nothing to learn."""
    kept: list[Encoded] = []
    too_long = no_target = 0
    for ex in examples:
        enc = encode_example(ex, tokenizer, system_prompt, train_on_prompt, chat_template)
        if max_length is not None and len(enc) > max_length:
            too_long += 1
            continue
        if all(label == IGNORE_INDEX for label in enc.labels):
            no_target += 1
            continue
        kept.append(enc)
    if too_long or no_target:
        parts = []
        if too_long:
            parts.append(f"{too_long} longer than max_length={max_length} tokens")
        if no_target:
            parts.append(f"{no_target} with no tokens to learn")
        log(f"{name}: dropped {too_long + no_target} of {len(examples)} records ({', '.join(parts)})")
    if not kept:
        raise HybridjetError(
            f"{name}: every one of the {len(examples)} records was dropped (longest allowed: {max_length} tokens);"
            " raise max_length"
        )
    return kept


def split_examples(
    examples: Sequence[Example],
    val_ratio: float = 0.1,
    test_ratio: float = 0.0,
    val_first: int | None = None,
    seed: int = 0,
) -> dict[str, list[Example]]:
    """Split into train/val(/test): by ratio after a seeded shuffle, or the first ``val_first`` records as val."""
    items = list(examples)
    if val_first is not None:
        if not 0 < val_first < len(items):
            raise HybridjetError(f"val_first={val_first} must be between 1 and {len(items) - 1} (records: {len(items)})")
        return {"train": items[val_first:], "val": items[:val_first], "test": []}
    if val_ratio < 0 or test_ratio < 0 or val_ratio + test_ratio >= 1:
        raise HybridjetError(f"val_ratio + test_ratio must be in [0, 1), got {val_ratio} + {test_ratio}")
    order = list(range(len(items)))
    random.Random(seed).shuffle(order)
    n_val = round(len(items) * val_ratio)
    n_test = round(len(items) * test_ratio)
    if val_ratio > 0:
        n_val = max(1, n_val)
    if test_ratio > 0:
        n_test = max(1, n_test)
    if n_val + n_test >= len(items):
        raise HybridjetError(f"{len(items)} records are too few for val_ratio={val_ratio}, test_ratio={test_ratio}")
    val = [items[i] for i in order[:n_val]]
    test = [items[i] for i in order[n_val : n_val + n_test]]
    train = [items[i] for i in order[n_val + n_test :]]
    return {"train": train, "val": val, "test": test}


class SFTDataset(torch.utils.data.Dataset):
    """A list of :class:`Encoded` examples."""

    def __init__(self, items: Sequence[Encoded]) -> None:
        self.items = list(items)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> Encoded:
        return self.items[index]


def next_token_targets(batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """[B, T-1]: the label each position predicts (the next token's), ``IGNORE_INDEX`` where not learned.

    Not learned: labels ``IGNORE_INDEX``, padded targets (``attention_mask`` 0) and, with ``position_ids``,
    the first token of each packed example (its position does not continue the previous one, as transformers
    detects packed examples), which has no context in its own example.
    """
    targets = batch["labels"][:, 1:]
    keep = targets != IGNORE_INDEX
    mask = batch.get("attention_mask")
    if mask is not None:
        keep = keep & (mask[:, 1:] != 0)
    positions = batch.get("position_ids")
    if positions is not None:
        keep = keep & (positions[:, 1:] == positions[:, :-1] + 1)
    return targets.masked_fill(~keep, IGNORE_INDEX)


def learned_index(batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The flat indices ``b * T + t`` (row-major) of the positions ``(b, t)`` of ``batch`` [B, T] whose next token
    is learned (:func:`next_token_targets`); the target of index ``i`` is ``labels.flatten()[i + 1]``."""
    rows, cols = (next_token_targets(batch) != IGNORE_INDEX).nonzero(as_tuple=True)
    return rows * batch["input_ids"].size(1) + cols


@dataclass
class SFTCollator:
    """Pad a batch of :class:`Encoded`: right padding for training, left padding for generation; with the
    batch's :data:`LEARNED_INDEX`."""

    pad_token_id: int
    padding_side: str = "right"
    pad_to_multiple_of: int | None = None

    def __call__(self, batch: Sequence[Encoded]) -> dict[str, torch.Tensor]:
        length = max(len(item) for item in batch)
        if self.pad_to_multiple_of:
            m = self.pad_to_multiple_of
            length = (length + m - 1) // m * m
        ids = torch.full((len(batch), length), self.pad_token_id, dtype=torch.long)
        labels = torch.full((len(batch), length), IGNORE_INDEX, dtype=torch.long)
        mask = torch.zeros((len(batch), length), dtype=torch.long)
        for row, item in enumerate(batch):
            n = len(item)
            sl = slice(0, n) if self.padding_side == "right" else slice(length - n, length)
            ids[row, sl] = torch.tensor(item.input_ids)
            labels[row, sl] = torch.tensor(item.labels)
            mask[row, sl] = 1
        batch = {"input_ids": ids, "attention_mask": mask, "labels": labels}
        batch[LEARNED_INDEX] = learned_index(batch)
        return batch


def pad_token_id(tokenizer: Any) -> int:
    """The pad id to use: the tokenizer's, set by :func:`hybridjet.llm.backbone.ensure_pad_token` (the one pad
    rule) when it has none; padding is masked by the attention mask."""
    ensure_pad_token(tokenizer)
    if tokenizer.pad_token_id is None:
        raise HybridjetError("the tokenizer has neither a pad nor an EOS token")
    return int(tokenizer.pad_token_id)
