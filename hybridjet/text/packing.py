"""Padding-free batches: several examples per row, each attending only to itself.

A batch's examples are laid end to end in rows of at most ``row_tokens`` tokens (first fit, longest first), with
``position_ids`` restarting at 0 for each example and no attention mask: transformers then builds a
block-diagonal causal mask from the positions (when no KV cache is used), and the rotary embeddings restart per
example, so every example sees exactly what it would alone. The first label of each example is not learned (in a
row of its own nothing predicts it; packed, the previous example's last token would). Whether a model really
isolates packed examples is checked once, on the model itself (:func:`packing_is_exact`), before packing is used.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from hybridjet.llm.backbone import decoder_of
from hybridjet.text.dataset import IGNORE_INDEX, LEARNED_INDEX, Encoded, learned_index


def pack_rows(lengths: Sequence[int], row_tokens: int) -> list[list[int]]:
    """Indices of the examples in each row: first fit, longest first, rows of at most ``row_tokens`` tokens (an
    example longer than that gets a row of its own)."""
    rows: list[list[int]] = []
    room: list[int] = []
    for index in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        n = lengths[index]
        row = next((r for r, left in enumerate(room) if left >= n), None)
        if row is None:
            rows.append([index])
            room.append(row_tokens - n)
        else:
            rows[row].append(index)
            room[row] -= n
    return rows


@dataclass
class PackedCollator:
    """A batch of :class:`Encoded` examples as packed rows: ``input_ids``, ``labels`` and ``position_ids``
    [R, W] (W the longest row; a row's tail is padding with its own positions and no labels), no attention mask;
    ``n_tokens`` and :data:`~hybridjet.text.dataset.LEARNED_INDEX`."""

    pad_token_id: int
    row_tokens: int

    def __call__(self, batch: Sequence[Encoded]) -> dict[str, torch.Tensor]:
        rows = pack_rows([len(item) for item in batch], self.row_tokens)
        width = max(sum(len(batch[i]) for i in row) for row in rows)
        ids = torch.full((len(rows), width), self.pad_token_id, dtype=torch.long)
        labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
        positions = torch.zeros((len(rows), width), dtype=torch.long)
        for r, row in enumerate(rows):
            at = 0
            for i in row:
                item = batch[i]
                n = len(item)
                ids[r, at : at + n] = torch.tensor(item.input_ids)
                labels[r, at + 1 : at + n] = torch.tensor(item.labels[1:])
                positions[r, at : at + n] = torch.arange(n)
                at += n
            positions[r, at:] = torch.arange(width - at)  # the padding: one more "example" that nothing sees
        n_tokens = torch.tensor(sum(len(item) for item in batch))
        packed = {"input_ids": ids, "labels": labels, "position_ids": positions, "n_tokens": n_tokens}
        packed[LEARNED_INDEX] = learned_index(packed)
        return packed


def padding_fraction(batch: dict[str, torch.Tensor]) -> float:
    """The share of a collated batch's positions that are padding (padded rows: its attention mask; packed rows:
    its ``n_tokens``)."""
    if "attention_mask" in batch:
        return 1.0 - float(batch["attention_mask"].float().mean())
    return 1.0 - float(batch["n_tokens"]) / batch["input_ids"].numel()


@torch.no_grad()
def packing_is_exact(model: Any, tokenizer: Any, margin: float = 0.05) -> tuple[bool, str]:
    """Whether ``model`` keeps packed examples apart: the second of two short texts, packed after the first in one
    row (restarting positions, no mask, no cache), must give the hidden states it gives alone — closer to them than
    ``margin`` times the difference that seeing the first text makes (the two texts simply concatenated), so that
    rounding in half precision passes and a leak does not. Returns ``(exact, why)``."""
    first = tokenizer("Jets are collimated sprays of hadrons from quarks and gluons.",
                      add_special_tokens=False)["input_ids"]
    second = tokenizer("The W boson decays to two quarks.", add_special_tokens=False)["input_ids"]
    decoder = decoder_of(model)
    device = next(p.device for p in model.parameters())
    was_training = model.training
    model.eval()
    try:
        def hidden(ids: list[int], positions: list[int]) -> torch.Tensor:
            x = torch.tensor([ids], device=device)
            pos = torch.tensor([positions], device=device)
            return decoder(input_ids=x, position_ids=pos, use_cache=False).last_hidden_state[0].float()

        n1, n2 = len(first), len(second)
        alone = hidden(second, list(range(n2)))
        packed = hidden(first + second, list(range(n1)) + list(range(n2)))[n1:]
        joined = hidden(first + second, list(range(n1 + n2)))[n1:]
    except Exception as err:  # an architecture whose forward does not take position_ids this way
        return False, f"{type(decoder).__name__} cannot run packed rows ({type(err).__name__}: {err})"
    finally:
        model.train(was_training)
    leak, off = float((joined - alone).norm()), float((packed - alone).norm())
    implementation = getattr(getattr(model, "config", None), "_attn_implementation", "?")
    if not leak > 0 or off > margin * leak:
        return False, (f"{type(decoder).__name__} with {implementation} attention lets packed examples see each "
                       f"other (off by {off / max(leak, 1e-30):.0%} of what the other example's context changes)")
    return True, f"packed examples stay apart ({type(decoder).__name__}, {implementation} attention)"
