"""Text records for SFT: each raw record (:mod:`hybridjet.text.records`) normalised into an :class:`Example`.

Formats (``format=``):

- ``qa``: question/answer pairs. Keys found automatically: ``question``/``answer``, ``instruction``/``input``/
  ``output``, ``prompt``/``response``, ``query``/``completion`` ...; or give ``fields={"question": .., "answer": ..,
  "context": ..}``.
- ``cot``: chain-of-thought records (``Question``, ``Complex_CoT``, ``Response``); the assistant turn becomes
  ``<think>COT</think><response>RESPONSE</response>``.
- ``completion``: plain text (``text`` key, or a JSON list of strings) for continued pre-training; with
  ``prompt_words`` or ``prompt_fraction`` the text is split into a prompt and the continuation to learn.
- ``chat``: multi-turn ``messages`` (role/content) or ShareGPT ``conversations`` (from/value).
- ``auto``: decided from the keys of the first record.

Problems in the input raise :class:`~hybridjet.errors.InputFileError` naming the file and record (1-based);
with ``skip_invalid=True`` bad records are skipped and counted instead.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hybridjet.errors import HybridjetError, InputFileError
from hybridjet.text.records import read_records

FORMATS = ("auto", "qa", "cot", "completion", "chat")

QUESTION_KEYS = ("question", "instruction", "prompt", "query", "input", "Question", "Instruction", "Prompt")
ANSWER_KEYS = ("answer", "output", "response", "completion", "Answer", "Output", "Response")
CONTEXT_KEYS = ("input", "context", "Input", "Context")
COT_KEYS = {"question": "Question", "cot": "Complex_CoT", "response": "Response"}
TEXT_KEYS = ("text", "abstract", "content", "Text", "Abstract")
ROLE_MAP = {
    "system": "system",
    "user": "user",
    "human": "user",
    "assistant": "assistant",
    "gpt": "assistant",
    "bot": "assistant",
    "model": "assistant",
}


@dataclass
class Example:
    """One normalised record.

    Chat-like formats (qa, cot, chat) set ``messages`` (roles system/user/assistant, without the configured system
    prompt); ``completion`` sets ``prompt`` (may be empty) and ``target`` (the text whose tokens are learned).
    """

    source: str
    messages: list[dict[str, str]] | None = None
    prompt: str = ""
    target: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def is_chat(self) -> bool:
        """Whether this example goes through the chat template."""
        return self.messages is not None

    def reference(self) -> str:
        """The text a model should produce for this example (last assistant turn, or the continuation)."""
        if self.messages is None:
            return self.target
        return self.messages[-1]["content"]

    def prompt_messages(self) -> list[dict[str, str]]:
        """The conversation up to (not including) the last assistant turn."""
        if self.messages is None:
            raise HybridjetError(f"{self.source}: a completion record has no chat messages")
        return self.messages[:-1]


@dataclass
class ReadReport:
    """What :func:`read_examples` did: records read and records skipped (with reasons)."""

    n_read: int = 0
    skipped: list[str] = field(default_factory=list)

    def summary(self, path: object) -> str:
        """One line for the log."""
        text = f"{path}: {self.n_read} records read"
        if self.skipped:
            text += f", {len(self.skipped)} skipped (first: {self.skipped[0]})"
        return text


# ------------------------------------------------------------------------------------------------- normalising


class _RecordError(Exception):
    """A problem with one record (turned into InputFileError or a counted skip)."""


def _text_field(record: Mapping[str, Any], key: str, fmt: str, required: bool = True) -> str:
    if key not in record or record[key] is None:
        if required:
            raise _RecordError(f"missing field {key!r} ({fmt} format)")
        return ""
    value = record[key]
    if not isinstance(value, str):
        if isinstance(value, (int, float)):
            value = str(value)
        else:
            raise _RecordError(f"field {key!r} should be text, got {type(value).__name__}")
    if required and not value.strip():
        raise _RecordError(f"field {key!r} is empty ({fmt} format)")
    return value


def _first_key(record: Mapping[str, Any], candidates: Sequence[str], exclude: Iterable[str] = ()) -> str | None:
    excluded = set(exclude)
    for key in candidates:
        if key in record and key not in excluded:
            return key
    return None


def detect_format(record: Any) -> str:
    """Guess the format of a record from its keys."""
    if isinstance(record, str):
        return "completion"
    if not isinstance(record, Mapping):
        raise _RecordError(f"expected a JSON object, got {type(record).__name__}")
    if "messages" in record or "conversations" in record:
        return "chat"
    if "Complex_CoT" in record or "cot" in record or "chain_of_thought" in record:
        return "cot"
    if _first_key(record, ANSWER_KEYS) is not None:
        return "qa"
    if _first_key(record, TEXT_KEYS) is not None:
        return "completion"
    raise _RecordError(
        f"cannot tell the format from keys {sorted(record)} (give format: qa|cot|completion|chat and fields)"
    )


def _qa(record: Mapping[str, Any], fields: Mapping[str, str]) -> list[dict[str, str]]:
    q_key = fields.get("question")
    a_key = fields.get("answer")
    c_key = fields.get("context")
    if a_key is None:
        a_key = _first_key(record, ANSWER_KEYS)
        if a_key is None:
            raise _RecordError(f"missing an answer field (one of {', '.join(ANSWER_KEYS[:4])}, or set fields.answer)")
    if q_key is None:
        q_key = _first_key(record, QUESTION_KEYS, exclude=[a_key])
        if q_key is None:
            raise _RecordError(
                f"missing a question field (one of {', '.join(QUESTION_KEYS[:4])}, or set fields.question)"
            )
    question = _text_field(record, q_key, "qa")
    answer = _text_field(record, a_key, "qa")
    if c_key is None and q_key in ("instruction", "Instruction"):
        c_key = _first_key(record, CONTEXT_KEYS)
    if c_key is not None and c_key != q_key:
        context = _text_field(record, c_key, "qa", required=False)
        if context.strip():
            question = f"{question}\n\n{context}"
    messages = []
    if fields.get("system") and record.get(fields["system"]):
        messages.append({"role": "system", "content": _text_field(record, fields["system"], "qa")})
    messages += [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
    return messages


def format_cot(cot: str, response: str) -> str:
    """The assistant turn of a chain-of-thought record."""
    return f"<think>{cot.strip()}</think><response>{response.strip()}</response>"


def extract_response(text: str) -> str:
    """The ``<response>...</response>`` part of a chain-of-thought answer (the whole text if there is none)."""
    start = text.find("<response>")
    if start < 0:
        return text.strip()
    end = text.find("</response>", start)
    return text[start + len("<response>") : end if end >= 0 else None].strip()


def _cot(record: Mapping[str, Any], fields: Mapping[str, str]) -> list[dict[str, str]]:
    keys = {name: fields.get(name, default) for name, default in COT_KEYS.items()}
    for name, alternatives in (("cot", ("cot", "chain_of_thought", "reasoning")), ("question", ("question",))):
        if keys[name] not in record and name not in fields:
            found = _first_key(record, alternatives)
            keys[name] = found or keys[name]
    if keys["response"] not in record and "response" not in fields:
        keys["response"] = _first_key(record, ("response", "answer")) or keys["response"]
    question = _text_field(record, keys["question"], "cot")
    cot = _text_field(record, keys["cot"], "cot")
    response = _text_field(record, keys["response"], "cot")
    return [{"role": "user", "content": question}, {"role": "assistant", "content": format_cot(cot, response)}]


def _chat(record: Mapping[str, Any]) -> list[dict[str, str]]:
    if "messages" in record:
        turns, role_key, content_key = record["messages"], "role", "content"
    elif "conversations" in record:
        turns, role_key, content_key = record["conversations"], "from", "value"
    else:
        raise _RecordError("missing field 'messages' (or ShareGPT 'conversations') (chat format)")
    if not isinstance(turns, list) or not turns:
        raise _RecordError("the conversation is empty")
    messages = []
    for i, turn in enumerate(turns, 1):
        if not isinstance(turn, Mapping):
            raise _RecordError(f"turn {i}: expected an object with {role_key!r} and {content_key!r}")
        rk = role_key if role_key in turn else ("role" if "role" in turn else "from")
        ck = content_key if content_key in turn else ("content" if "content" in turn else "value")
        raw_role = _text_field(turn, rk, "chat")
        role = ROLE_MAP.get(raw_role.strip().lower())
        if role is None:
            raise _RecordError(f"turn {i}: unknown role {raw_role!r} (expected system/user/assistant)")
        content = _text_field(turn, ck, "chat", required=role == "assistant")
        messages.append({"role": role, "content": content})
    if not any(m["role"] == "assistant" for m in messages):
        raise _RecordError("the conversation has no assistant turn to learn")
    while messages[-1]["role"] != "assistant":  # trailing user turns have nothing to learn
        messages.pop()
    return messages


def split_prompt(text: str, prompt_words: int | None, prompt_fraction: float | None) -> tuple[str, str]:
    """Split ``text`` into (prompt, continuation) after the first N words or a fraction of the words.

    The continuation keeps its leading space so that prompt + continuation == text.
    """
    if prompt_words is None and prompt_fraction is None:
        return "", text
    words = text.split()
    if prompt_words is not None:
        n = int(prompt_words)
    else:
        n = round(len(words) * float(prompt_fraction))  # type: ignore[arg-type]
    n = max(1, min(n, len(words) - 1))
    # find the character offset after the n-th word
    pos = 0
    for word in words[:n]:
        pos = text.index(word, pos) + len(word)
    return text[:pos], text[pos:]


def _completion(
    record: Any, fields: Mapping[str, str], prompt_words: int | None, prompt_fraction: float | None
) -> tuple[str, str]:
    if isinstance(record, str):
        text = record
    elif isinstance(record, Mapping):
        key = fields.get("text") or _first_key(record, TEXT_KEYS)
        if key is None:
            raise _RecordError(f"missing a text field (one of {', '.join(TEXT_KEYS[:3])}, or set fields.text)")
        text = _text_field(record, key, "completion")
        if fields.get("prompt") and fields.get("completion"):
            prompt = _text_field(record, fields["prompt"], "completion")
            return prompt, _text_field(record, fields["completion"], "completion")
    else:
        raise _RecordError(f"expected a JSON object or a string, got {type(record).__name__}")
    if not text.strip():
        raise _RecordError("the text is empty")
    if prompt_words is not None or prompt_fraction is not None:
        if len(text.split()) < 2:
            raise _RecordError("the text has fewer than 2 words: cannot split it into prompt and continuation")
    return split_prompt(text, prompt_words, prompt_fraction)


def normalise_record(
    record: Any,
    fmt: str,
    source: str,
    fields: Mapping[str, str] | None = None,
    prompt_words: int | None = None,
    prompt_fraction: float | None = None,
) -> Example:
    """Turn one raw record into an :class:`Example` (raises ``ValueError`` subclasses for bad records)."""
    fields = dict(fields or {})
    if fmt == "auto":
        fmt = detect_format(record)
    if fmt != "completion" and not isinstance(record, Mapping):
        raise _RecordError(f"expected a JSON object, got {type(record).__name__}")
    if fmt == "qa":
        return Example(source, messages=_qa(record, fields), meta={"format": "qa"})
    if fmt == "cot":
        return Example(source, messages=_cot(record, fields), meta={"format": "cot"})
    if fmt == "chat":
        return Example(source, messages=_chat(record), meta={"format": "chat"})
    if fmt == "completion":
        prompt, target = _completion(record, fields, prompt_words, prompt_fraction)
        return Example(source, prompt=prompt, target=target, meta={"format": "completion"})
    raise HybridjetError(f"unknown text format {fmt!r} (expected one of {', '.join(FORMATS)})")


def read_examples(
    path: str | os.PathLike[str],
    format: str = "auto",
    fields: Mapping[str, str] | None = None,
    prompt_words: int | None = None,
    prompt_fraction: float | None = None,
    skip_invalid: bool = False,
    hf_split: str | None = None,
) -> tuple[list[Example], ReadReport]:
    """Read and normalise every record of ``path``; bad records raise (or are counted skips if ``skip_invalid``)."""
    if format not in FORMATS:
        raise HybridjetError(f"unknown text format {format!r} (expected one of {', '.join(FORMATS)})")
    if prompt_fraction is not None and not 0.0 < float(prompt_fraction) < 1.0:
        raise HybridjetError(f"prompt_fraction must be between 0 and 1, got {prompt_fraction}")
    records = read_records(path, hf_split=hf_split)
    report = ReadReport(n_read=len(records))
    fmt = format
    examples = []
    for i, record in enumerate(records, 1):
        source = f"{path}:record {i}"
        try:
            if fmt == "auto":
                fmt = detect_format(record)
            examples.append(normalise_record(record, fmt, source, fields, prompt_words, prompt_fraction))
        except _RecordError as exc:
            if not skip_invalid:
                raise InputFileError(path, f"record {i}: {exc}") from None
            report.skipped.append(f"record {i}: {exc}")
    if not examples:
        raise InputFileError(path, f"no usable records ({len(report.skipped)} skipped: {report.skipped[:1]})")
    return examples, report
