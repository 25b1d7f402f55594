import pytest
from transformers import AutoTokenizer

from hybridjet.errors import HybridjetError
from hybridjet.models.prompt import EVENT_SLOT, chat_prompt, split_around_event


@pytest.fixture(scope="module")
def tokenizer(tiny_llama):
    return AutoTokenizer.from_pretrained(str(tiny_llama))


def test_the_slot_splits_the_chat_prompt(tokenizer):
    question = f"Event: {EVENT_SLOT}\nSignal or background?"
    before, after = split_around_event(tokenizer, question, "sys")
    text = chat_prompt(tokenizer, question, "sys")
    assert tokenizer.decode(before) + EVENT_SLOT + tokenizer.decode(after) == text
    assert after and tokenizer.decode(after).startswith("\nSignal or background?")


def test_question_first_leaves_only_the_template_after_the_event(tokenizer):
    _, middle = split_around_event(tokenizer, f"Event: {EVENT_SLOT}\nSignal or background?", "sys")
    _, last = split_around_event(tokenizer, f"Signal or background? Event: {EVENT_SLOT}", "sys")
    assert 0 < len(last) < len(middle)
    assert "Signal" not in tokenizer.decode(last)


def test_a_question_without_slot_puts_the_event_after_the_whole_prompt(tokenizer):
    before, after = split_around_event(tokenizer, "Signal or background?", "sys")
    assert after == []
    assert tokenizer.decode(before) == chat_prompt(tokenizer, "Signal or background?", "sys")


def test_two_slots_are_refused_naming_the_field(tokenizer):
    with pytest.raises(HybridjetError, match="^question: at most one"):
        split_around_event(tokenizer, f"{EVENT_SLOT} and {EVENT_SLOT}", "sys")
