"""Parsing of every text format, splits, and bad-input errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hybridjet.errors import HybridjetError, InputFileError
from hybridjet.text.dataset import split_examples
from hybridjet.text.formats import read_examples, split_prompt

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "data"


def _jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_shipped_examples_parse() -> None:
    sizes = {"physics_qa.jsonl": ("qa", 40), "physics_cot.jsonl": ("cot", 20), "abstracts.jsonl": ("completion", 30),
             "physics_chat.jsonl": ("chat", 15)}
    for name, (fmt, n) in sizes.items():
        examples, report = read_examples(EXAMPLES / name)
        assert examples[0].meta["format"] == fmt
        assert len(examples) >= n and not report.skipped


@pytest.mark.parametrize(
    "row,question,answer",
    [
        ({"question": "Q?", "answer": "A."}, "Q?", "A."),
        ({"instruction": "Do", "input": "ctx", "output": "out"}, "Do\n\nctx", "out"),
        ({"instruction": "Do", "input": "", "output": "out"}, "Do", "out"),
        ({"prompt": "P", "response": "R"}, "P", "R"),
    ],
)
def test_qa_layouts(tmp_path: Path, row: dict, question: str, answer: str) -> None:
    (ex,), _ = read_examples(_jsonl(tmp_path / "d.jsonl", [row]))
    assert ex.messages == [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]


def test_custom_fields_json_array(tmp_path: Path) -> None:
    path = tmp_path / "d.json"
    path.write_text(json.dumps([{"q": "Mass of Z?", "a": "91 GeV"}]), encoding="utf-8")
    (ex,), _ = read_examples(path, format="qa", fields={"question": "q", "answer": "a"})
    assert ex.reference() == "91 GeV"


def test_cot_chat_sharegpt_completion(tmp_path: Path) -> None:
    (cot,), _ = read_examples(_jsonl(tmp_path / "c.jsonl", [{"Question": "Q", "Complex_CoT": "think", "Response": "R"}]))
    assert cot.reference() == "<think>think</think><response>R</response>"
    rows = [
        {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]},
        {"conversations": [{"from": "human", "value": "a"}, {"from": "gpt", "value": "b"}, {"from": "human", "value": "c"}]},
    ]
    chats, _ = read_examples(_jsonl(tmp_path / "m.jsonl", rows))
    assert chats[1].messages == [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]
    (plain,), _ = read_examples(_jsonl(tmp_path / "t.jsonl", [{"text": "one two three four"}]), prompt_words=2)
    assert (plain.prompt, plain.target) == ("one two", " three four")
    assert split_prompt("a b c d e f g h i j", None, 0.3) == ("a b c", " d e f g h i j")


def test_splits_seeded(tmp_path: Path) -> None:
    examples, _ = read_examples(EXAMPLES / "physics_qa.jsonl")
    a = split_examples(examples, 0.15, 0.15, seed=1)
    b = split_examples(examples, 0.15, 0.15, seed=1)
    assert [e.source for e in a["val"]] == [e.source for e in b["val"]]
    assert len(a["train"]) + len(a["val"]) + len(a["test"]) == len(examples) and len(a["test"]) >= 1
    first = split_examples(examples, val_first=5)
    assert [e.source for e in first["val"]] == [e.source for e in examples[:5]]


def test_bad_inputs(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(InputFileError, match="empty"):
        read_examples(empty)
    missing = _jsonl(tmp_path / "m.jsonl", [{"question": "Q", "answer": "A"}, {"question": "Q2"}])
    with pytest.raises(InputFileError, match=r"record 2: missing an answer field"):
        read_examples(missing, format="qa")
    cot = _jsonl(tmp_path / "c.jsonl", [{"Question": "Q", "Complex_CoT": "x"}])
    with pytest.raises(InputFileError, match=r"record 1: missing field 'Response'"):
        read_examples(cot, format="cot")
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b'{"text": "caf\xe9"}\n')
    with pytest.raises(InputFileError, match=r"bad.jsonl: not UTF-8 text: invalid byte 0xe9 at byte offset 13"):
        read_examples(bad)
    with pytest.raises(HybridjetError, match="unknown text format"):
        read_examples(missing, format="nope")
    parquet = tmp_path / "x.parquet"
    parquet.write_bytes(b"PAR1 not really")
    with pytest.raises(InputFileError, match="x.parquet: (reading Parquet needs pyarrow|cannot read Parquet)"):
        read_examples(parquet)


def test_skip_invalid_counts(tmp_path: Path) -> None:
    rows = [{"Question": "Q", "Complex_CoT": "c", "Response": "R"}, {"Question": "Q", "Complex_CoT": "c"}]
    examples, report = read_examples(_jsonl(tmp_path / "c.jsonl", rows), skip_invalid=True)
    assert len(examples) == 1 and len(report.skipped) == 1 and "Response" in report.skipped[0]
    with pytest.raises(InputFileError, match="no usable records"):
        read_examples(_jsonl(tmp_path / "d.jsonl", rows[1:]), format="cot", skip_invalid=True)
