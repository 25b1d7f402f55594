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


@pytest.mark.parametrize("own_template", [True, False], ids=["instruct", "base"])
def test_the_classifier_and_text_mode_render_a_prompt_alike(tiny_llama, own_template):
    """One chat rule: the classifiers' prompt, a text run's prompt (TextModel) and the training text agree, with the
    tokenizer's template or, without one, the plain template."""
    from types import SimpleNamespace

    from hybridjet.text.api import TextModel
    from hybridjet.text.dataset import IGNORE_INDEX, encode_example
    from hybridjet.text.formats import Example

    tok = AutoTokenizer.from_pretrained(str(tiny_llama))
    if not own_template:
        tok.chat_template = None
    question = "Signal or background?"
    prompt = chat_prompt(tok, question, "sys")
    text_model = TextModel(SimpleNamespace(tokenizer=tok), {"system_prompt": "sys", "data": {"format": "qa"}})
    assert text_model.prompt_text(question) == prompt
    example = Example("x", messages=[{"role": "user", "content": question}, {"role": "assistant", "content": "signal"}])
    enc = encode_example(example, tok, system_prompt="sys")
    trained = tok.decode(enc.input_ids)
    assert trained.startswith(prompt) and trained[len(prompt):].startswith("signal<|im_end|>")
    assert tok.decode([i for i, lab in zip(enc.input_ids, enc.labels, strict=True) if lab != IGNORE_INDEX]) == (
        "signal<|im_end|>")
    if not own_template:
        assert prompt == "### System:\nsys\n\n### User:\nSignal or background?\n\n### Assistant:\n"
