"""The fixed text around the soft tokens (hybrid) or the serialised event (text baseline)."""

from __future__ import annotations

from typing import Any

from hybridjet.errors import HybridjetError
from hybridjet.llm.chat import adds_bos, render_chat

EVENT_SLOT = "<<EVENT>>"
# Short on purpose: every prompt token costs a full transformer pass per event (the soft tokens carry the physics).
DEFAULT_SYSTEM = "You classify LHC collision events."
DEFAULT_QUESTION = "Event: " + EVENT_SLOT + "\nSignal or background?"
# The hybrid's: no slot, so its soft tokens follow the whole chat prompt (after the answer header).  All the text is
# then the prefix every event shares (run once per batch), and per event only the k soft tokens run (8 positions
# instead of 19), at the same AUC.
DEFAULT_HYBRID_QUESTION = "Signal or background?"


def chat_prompt(tokenizer: Any, user_text: str, system: str | None = DEFAULT_SYSTEM) -> str:
    """The user turn after the system turn, ready for the answer, by the one chat rule of text mode
    (:func:`hybridjet.llm.chat.render_chat`: the tokenizer's chat template, else the plain one)."""
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": user_text}]
    return render_chat(tokenizer, messages, add_generation_prompt=True)


def split_around_event(tokenizer: Any, question: str = DEFAULT_QUESTION,
                       system: str | None = DEFAULT_SYSTEM) -> tuple[list[int], list[int]]:
    """Token ids of the text before and after the event slot of the chat-formatted question.

    A question without the slot puts the event after the whole prompt (the chat template's answer header
    included): nothing follows it."""
    if question.count(EVENT_SLOT) > 1:
        raise HybridjetError(f"question: at most one {EVENT_SLOT!r} slot, got {question.count(EVENT_SLOT)}")
    text = chat_prompt(tokenizer, question, system)
    before, after = text.split(EVENT_SLOT) if EVENT_SLOT in question else (text, "")
    ids_before = tokenizer(before, add_special_tokens=False)["input_ids"]
    ids_after = tokenizer(after, add_special_tokens=False)["input_ids"]
    bos = getattr(tokenizer, "bos_token_id", None)
    if bos is not None and adds_bos(tokenizer) and (not ids_before or ids_before[0] != bos):
        ids_before = [bos] + ids_before
    return ids_before, ids_after


def split_around_features(tokenizer: Any, names: list[str], question: str = DEFAULT_HYBRID_QUESTION,
                          system: str | None = DEFAULT_SYSTEM) -> list[list[int]]:
    """Token ids of the text around the value tokens of a named-token prompt, ``len(names) + 1`` segments: the
    event is written as ``name 1: <v1>, name 2: <v2>, ...`` (each name in words), in the question's event slot or,
    without one, on a line of its own before the question; segment 0 is all the text before the first value."""
    marks = [f"<<VALUE{i}>>" for i in range(len(names))]
    event = ", ".join(f"{name}: {mark}" for name, mark in zip(names, marks, strict=True))
    if question.count(EVENT_SLOT) > 1:
        raise HybridjetError(f"question: at most one {EVENT_SLOT!r} slot, got {question.count(EVENT_SLOT)}")
    user = question.replace(EVENT_SLOT, event) if EVENT_SLOT in question else f"Event: {event}.\n{question}"
    text = chat_prompt(tokenizer, user, system)
    segments, rest = [], text
    for mark in marks:
        before, rest = rest.split(mark, 1)
        segments.append(before)
    segments.append(rest)
    ids = [tokenizer(s, add_special_tokens=False)["input_ids"] for s in segments]
    bos = getattr(tokenizer, "bos_token_id", None)
    if bos is not None and adds_bos(tokenizer) and (not ids[0] or ids[0][0] != bos):
        ids[0] = [bos] + ids[0]
    return ids
