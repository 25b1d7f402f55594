"""Text mode on base models (no chat template): completion as plain text, chat-like data through the plain template
with the eos learned, the ``data.chat_template`` setting, and the template recorded with a run so that ``TextModel``
and ``hybridjet ask`` prompt as training did (tiny Gemma 3 / Qwen2 GGUF files, converted into a temporary cache)."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import yaml

from hybridjet.errors import HybridjetError
from hybridjet.llm.backbone import load_tokenizer
from hybridjet.llm.chat import PLAIN_TEMPLATE, adds_bos, render_chat
from hybridjet.llm.resolve import resolve_model
from hybridjet.llm.tiny_gguf import make_family_gguf
from hybridjet.text.datamodule import TextDataModule
from hybridjet.text.dataset import IGNORE_INDEX, encode_example
from hybridjet.text.formats import Example

QA = Example("qa", messages=[{"role": "user", "content": "What is the Z mass?"},
                             {"role": "assistant", "content": "About 91.2 GeV."}])


@pytest.fixture(scope="module")
def gemma_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny base Gemma 3 GGUF (no chat template; its tokenizer adds bos), converted: the HF directory."""
    root = tmp_path_factory.mktemp("gemma_base")
    gguf = make_family_gguf(root / "gemma3-base.gguf", "gemma3", instruct=False)
    return Path(resolve_model(gguf, cache_dir=root / "cache").path)


def _learned(tok, enc) -> str:
    return tok.decode([i for i, lab in zip(enc.input_ids, enc.labels, strict=True) if lab != IGNORE_INDEX])


def test_chat_like_data_of_a_base_model_uses_the_plain_template_and_learns_the_eos(gemma_base: Path) -> None:
    tok = load_tokenizer(gemma_base)
    assert not tok.chat_template and adds_bos(tok)  # by its post-processor (add_bos_token is lost on reload)
    enc = encode_example(QA, tok, system_prompt="Be brief.")
    text = tok.decode(enc.input_ids)
    assert text == ("<bos>### System:\nBe brief.\n\n### User:\nWhat is the Z mass?\n\n"
                    "### Assistant:\nAbout 91.2 GeV.<eos>\n\n")
    assert enc.input_ids.count(tok.bos_token_id) == 1
    assert _learned(tok, enc) == "About 91.2 GeV.<eos>"  # the answer and its eos, nothing of the prompt
    # completion stays plain text: no template, the continuation + eos learned
    enc = encode_example(Example("c", prompt="The jet has", target=" 1523 GeV"), tok)
    assert tok.decode(enc.input_ids) == "<bos>The jet has 1523 GeV<eos>" and _learned(tok, enc) == " 1523 GeV<eos>"


def test_the_chat_template_setting(tiny_llama: Path, tmp_path: Path) -> None:
    tok = load_tokenizer(tiny_llama)  # an instruct tokenizer (ChatML): kept by default
    assert "<|im_start|>assistant" in render_chat(tok, QA.messages)
    plain = TextDataModule("unused.jsonl", chat_template="plain").chat_template
    assert plain == PLAIN_TEMPLATE and render_chat(tok, QA.messages, template=plain).startswith("### User:\n")
    jinja = "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    (tmp_path / "t.jinja").write_text(jinja)
    for setting in (jinja, str(tmp_path / "t.jinja")):
        template = TextDataModule("unused.jsonl", chat_template=setting).chat_template
        assert render_chat(tok, QA.messages, template=template) == "user: What is the Z mass?\nassistant: About 91.2 GeV.\n"
    for bad in ("no-such-template.jinja", ""):
        with pytest.raises(HybridjetError, match="data.chat_template: "):
            TextDataModule("unused.jsonl", chat_template=bad)


@pytest.mark.parametrize("setting", [None, "{% for m in messages %}<{{ m['role'] }}> {{ m['content'] }}{% if "
                                             "m['role'] == 'assistant' %}{{ eos_token }}{% endif %}\n{% endfor %}"
                                             "{% if add_generation_prompt %}<assistant> {% endif %}"])
def test_a_base_model_run_records_its_template_and_asks_with_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                setting: str | None) -> None:
    from hybridjet.llm.lora import LoraSpec
    from hybridjet.runtime import Runtime
    from hybridjet.text.api import TextModel
    from hybridjet.text.sft import TextSFT
    from hybridjet.train.optim import OptimizerSettings

    monkeypatch.setenv("HYBRIDJET_CACHE", str(tmp_path / "cache"))
    gguf = make_family_gguf(tmp_path / "qwen2-base.gguf", "qwen2", instruct=False)
    data = tmp_path / "qa.jsonl"
    data.write_text('{"question": "What is the Z mass?", "answer": "About 91.2 GeV."}\n' * 8)
    model = TextSFT(model=str(gguf), lora=LoraSpec(dropout=0.0), runtime=Runtime(quantization="none"),
                    optim=OptimizerSettings(lr=1e-2))
    dm = TextDataModule(str(data), val_ratio=0.25, batch_size=4, system_prompt="Be brief.", chat_template=setting)
    trainer = L.Trainer(max_steps=2, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, num_sanity_val_steps=0, default_root_dir=tmp_path / "run")
    trainer.fit(model, dm)
    recorded = yaml.safe_load((tmp_path / "run" / "text_config.yaml").read_text())["data"]["chat_template"]
    assert recorded == (setting or PLAIN_TEMPLATE)  # the plain default is written out, not left implicit
    trained_on = model.tokenizer.decode(dm.datasets["train"].items[0].input_ids)
    tm = TextModel.from_pretrained(tmp_path / "run")
    prompt = tm.prompt_text("What is the Z mass?")
    assert trained_on.startswith(prompt) and trained_on[len(prompt):].startswith("About 91.2 GeV.<|endoftext|>")
    assert isinstance(tm.ask("What is the Z mass?", max_new_tokens=3), str)
