"""Label masking, TextSFT training, LoRA-only checkpoints + resume, the CLI, ask and eval (tiny Llama)."""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
import pytest
import torch

from hybridjet.errors import HybridjetError
from hybridjet.llm.backbone import load_tokenizer
from hybridjet.text.datamodule import TextDataModule
from hybridjet.text.dataset import IGNORE_INDEX, encode_examples
from hybridjet.text.formats import Example, read_examples

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "data"


def _learned_text(tokenizer, input_ids: torch.Tensor, labels: torch.Tensor) -> list[str]:
    return [tokenizer.decode(ids[lab != IGNORE_INDEX].tolist()) for ids, lab in zip(input_ids, labels, strict=True)]


@pytest.mark.parametrize("pad_is_eos", [False, True])
def test_labels_are_exactly_the_responses(tiny_llama: Path, pad_is_eos: bool) -> None:
    tok = load_tokenizer(tiny_llama)
    if pad_is_eos:
        tok.pad_token = tok.eos_token
    dm = TextDataModule(str(EXAMPLES / "physics_qa.jsonl"), val_ratio=0.1, batch_size=6, system_prompt="Be brief.")
    dm.attach_tokenizer(tok)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["attention_mask"].sum(1).min() < batch["attention_mask"].shape[1]  # some rows are padded
    answers = [item.source for item in dm.datasets["train"].items[:0]]  # (shuffled loader: compare as sets)
    expected = {ex.reference() + "<|im_end|>" for ex in dm.examples["train"]}
    got = _learned_text(tok, batch["input_ids"], batch["labels"])
    assert set(got) <= expected and not answers
    # multi-turn: every assistant turn is learned, nothing else
    chats, _ = read_examples(EXAMPLES / "physics_chat.jsonl")
    (enc,) = encode_examples(chats[4:5], tok, max_length=None)
    learned = tok.decode([i for i, lab in zip(enc.input_ids, enc.labels, strict=True) if lab != IGNORE_INDEX])
    assert learned == "".join(m["content"] + "<|im_end|>" for m in chats[4].messages if m["role"] == "assistant")
    # completion: the continuation + EOS only
    (enc,) = encode_examples([Example("x", prompt="The jet has", target=" transverse momentum 1523 GeV")], tok)
    assert tok.decode([i for i, lab in zip(enc.input_ids, enc.labels, strict=True) if lab != IGNORE_INDEX]) == (
        " transverse momentum 1523 GeV<|im_end|>"
    )


def test_train_on_prompt_and_length_filter(tiny_llama: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tok = load_tokenizer(tiny_llama)
    examples, _ = read_examples(EXAMPLES / "physics_qa.jsonl")
    enc = encode_examples(examples[:2], tok, train_on_prompt=True)
    assert all(lab != IGNORE_INDEX for lab in enc[0].labels[:-1])
    lengths = sorted(len(e) for e in encode_examples(examples, tok))
    kept = encode_examples(examples, tok, max_length=lengths[len(lengths) // 2])
    assert 0 < len(kept) < len(examples)
    assert f"dropped {len(examples) - len(kept)} of {len(examples)} records" in capsys.readouterr().out
    with pytest.raises(HybridjetError, match="every one of the"):
        encode_examples(examples, tok, max_length=5)


class _Losses(L.Callback):
    def __init__(self) -> None:
        self.losses: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.losses.append(float(outputs["loss"]))


def test_fit_lowers_loss_on_repeated_batch(tiny_llama: Path, tmp_path: Path) -> None:
    from hybridjet.llm.lora import LoraSpec
    from hybridjet.runtime import Runtime
    from hybridjet.text.sft import TextSFT
    from hybridjet.train.optim import OptimizerSettings

    rows = [{"question": "What is the Z mass?", "answer": "About 91.2 GeV."}] * 8
    path = tmp_path / "rep.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    model = TextSFT(model=str(tiny_llama), lora=LoraSpec(dropout=0.0), runtime=Runtime(quantization="none"),
                    optim=OptimizerSettings(lr=2e-2))
    dm = TextDataModule(str(path), val_ratio=0.25, batch_size=4)
    cb = _Losses()
    trainer = L.Trainer(max_steps=3, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, num_sanity_val_steps=0, callbacks=[cb],
                        default_root_dir=tmp_path / "run")
    trainer.fit(model, dm)
    assert len(cb.losses) == 3 and cb.losses[-1] < cb.losses[0]
    assert (tmp_path / "run" / "adapter").is_dir() and (tmp_path / "run" / "text_config.yaml").is_file()


def _cli_fit(tiny_llama: Path, root: Path, steps: int, *extra: str) -> None:
    from hybridjet.text.lightning_cli import main

    main([
        "sft", "fit", "-c", str(Path(__file__).resolve().parents[2] / "configs" / "sft_qa.yaml"),
        "--model.model", str(tiny_llama), "--model.runtime.quantization", "none", "--runs_root", str(root), "--name", "t",
        "--trainer.max_steps", str(steps), "--trainer.val_check_interval", "2", "--trainer.accelerator", "cpu",
        "--trainer.enable_progress_bar", "false", "--data.max_length", "512", "--data.batch_size", "8",
        "--model.optim.lr", "0.01", *extra,
    ])


def test_cli_checkpoint_resume_ask_eval(tiny_llama: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from hybridjet.cli import main as hybridjet_main
    from hybridjet.text.api import TextModel
    from hybridjet.text.evaluate import evaluate_run

    run = tmp_path / "t"
    _cli_fit(tiny_llama, tmp_path, 4)
    last = run / "checkpoints" / "last.ckpt"
    ckpt = torch.load(last, map_location="cpu", weights_only=False)
    assert ckpt["global_step"] == 4 and ckpt["state_dict"]
    assert all(".lora_A." in k or ".lora_B." in k for k in ckpt["state_dict"])  # the frozen base is not saved
    assert any(p.name.startswith("best-") for p in (run / "checkpoints").iterdir())
    assert "val_loss" in (run / "metrics.csv").read_text() and (run / "config.yaml").is_file()
    # resume after an interruption: continue from last.ckpt to step 6
    _cli_fit(tiny_llama, tmp_path, 6, "--ckpt_path", "last")
    assert torch.load(last, map_location="cpu", weights_only=False)["global_step"] == 6

    tm = TextModel.from_pretrained(run)
    question = "What is the mass of the Z boson?"
    answer = tm.ask(question, max_new_tokens=6)
    assert isinstance(answer, str) and question not in answer and "assistant" not in answer
    # left padding: a batch gives the same greedy answers as one at a time
    prompts = ["Hi?", question, "What is a jet in collider physics, and how is it found?"]
    assert tm.generate_batch(prompts, max_new_tokens=5) == [tm.ask(p, max_new_tokens=5) for p in prompts]
    assert tm.perplexity(["The jet has transverse momentum 1523 GeV."]) > 1.0
    capsys.readouterr()
    assert hybridjet_main(["ask", "--run", str(run), "--max-new-tokens", "6", question]) == 0
    assert capsys.readouterr().out.strip() == answer

    result = evaluate_run(run, EXAMPLES / "physics_qa_val.jsonl", max_new_tokens=4, limit=3, model=tm)
    assert set(result) >= {"base", "adapter"} and result["adapter"]["loss"] != result["base"]["loss"]
    assert json.loads((run / "eval.json").read_text())["adapter"]["rougeL"] >= 0.0
    # before: 'sft eval --out val.jsonl' replaced the data with the results
    data = tmp_path / "val.jsonl"
    data.write_bytes((EXAMPLES / "physics_qa_val.jsonl").read_bytes())
    with pytest.raises(HybridjetError, match="is also the input"):
        evaluate_run(run, data, max_new_tokens=4, limit=3, model=tm, out=data)
    (tmp_path / "notes.json").write_text('{"mine": 1}')
    with pytest.raises(HybridjetError, match="not an evaluation hybridjet wrote"):
        evaluate_run(run, data, max_new_tokens=4, limit=3, model=tm, out=tmp_path / "notes.json")
    assert data.read_bytes() == (EXAMPLES / "physics_qa_val.jsonl").read_bytes()
    assert hybridjet_main(["ask", "--run", str(tmp_path / "nope"), "x"]) == 2


@pytest.mark.parametrize(("records", "option", "needle"), [
    ('{"question": "What?"}\n', [], "record 1"),
    ('{"question": "What is a jet?", "answer": "A spray of hadrons."}\n' * 8, ["--data.max_length", "3"],
     "max_length"),
    ('{"question": "What?", "answer": "This."}\n' * 8, ["--data.batch_size", "0"], "data.batch_size"),
    ('{"question": "What?", "answer": "This."}\n' * 8, ["--data.chat_template", "no-such.jinja"],
     "no-such.jinja: data.chat_template: no such file"),
    # before: the model loaded, then a traceback, and config.yaml was left behind
    ('{"question": "What?", "answer": "This."}\n' * 8, ["--model.optim.lr", "-0.1"], "optim.lr: expected a finite number > 0"),
    # before: an untrained adapter saved as a finished run
    ('{"question": "What?", "answer": "This."}\n' * 8, ["--trainer.max_steps", "0"],
     "trainer.max_steps: expected an integer >= 1"),
])
def test_sft_bad_data_is_one_line_before_the_model_loads(tiny_llama: Path, tmp_path: Path, records: str,
                                                          option: list[str], needle: str) -> None:
    import subprocess
    import sys

    data = tmp_path / "data.jsonl"
    data.write_text(records)
    result = subprocess.run(
        [sys.executable, "-m", "hybridjet.cli", "sft", "fit", "-c", str(ROOT / "configs" / "sft_qa.yaml"),
         "--model.model", str(tiny_llama), "--data.train_path", str(data), "--data.val_path", "null",
         "--data.val_ratio", "0.25", "--runs_root", str(tmp_path / "runs"), *option],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr and "GPU available" not in result.stderr  # no Trainer was built
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("hybridjet: error:") and needle in last, last
    assert not (tmp_path / "runs").exists(), "a run directory was left for a run that never started"


def test_lora_study_fits_each_preset_and_prints_both_perplexities(tiny_llama: Path, tmp_path: Path) -> None:
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "hybridjet.cli", "sft", "lora-study", "-c", str(ROOT / "configs" / "sft_completion.yaml"),
         "--model.model", str(tiny_llama), "--runs_root", str(tmp_path), "--trainer.max_steps", "2",
         "--trainer.val_check_interval", "1", "--trainer.enable_progress_bar", "false", "--data.batch_size", "4",
         "--presets", "qkv", "all-linear"], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [line for line in result.stdout.splitlines() if line.startswith("| qkv") or line.startswith("| all-linear")]
    assert len(rows) == 2 and all(float(row.split("|")[4]) > 1.0 for row in rows)  # a perplexity for each
    assert (tmp_path / "abstracts_qkv" / "adapter").is_dir() and (tmp_path / "abstracts_all-linear" / "adapter").is_dir()


@pytest.mark.parametrize(("argv", "needle"), [
    (["--temperature", "nan"], "temperature: expected a finite number >= 0"),  # before: rc 0 and an empty answer
    (["--temperature", "-1"], "temperature: expected a finite number >= 0"),
    (["--top-p", "5"], "top_p: expected a number in (0, 1]"),
    (["--max-new-tokens", "100000000"], "max_new_tokens: expected an integer in [1, 65,536]"),
])
def test_ask_checks_its_settings_before_the_model_loads(tmp_path: Path, argv: list[str], needle: str,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    """The run does not exist: an error about the settings shows they were checked before anything loaded."""
    from hybridjet.cli import main as hybridjet_main

    assert hybridjet_main(["ask", "--run", str(tmp_path / "no-such-run"), *argv, "hi"]) == 2
    assert needle in capsys.readouterr().err


def test_generation_and_perplexity_settings_are_checked(tiny_llama: Path) -> None:
    """Before: perplexity with batch_size -1 returned 1.0 (a perfect model), temperature NaN an empty text."""
    from hybridjet.llm.backbone import load_backbone
    from hybridjet.text.api import TextModel, check_generation

    tm = TextModel(load_backbone(tiny_llama, quantization="none", lora="qkv"), {}, None)
    with pytest.raises(HybridjetError, match="batch_size: expected an integer >= 1"):
        tm.perplexity(["hello world"], batch_size=-1)
    for settings in ({"temperature": float("nan")}, {"temperature": float("inf")}, {"max_new_tokens": 1.5}):
        with pytest.raises(HybridjetError):
            check_generation(**settings)


def test_a_config_with_the_old_flat_settings_is_one_line_naming_where_they_went(tmp_path: Path) -> None:
    """Before: a config of the previous release (``lora: all-linear``, ``lora_r``, ``lr`` flat under ``model``)
    printed the whole usage of ``hybridjet sft fit`` and a parser error about dot import paths."""
    import subprocess
    import sys

    old = tmp_path / "old_qa.yaml"
    old.write_text((ROOT / "configs" / "sft_qa.yaml").read_text().split("\nmodel:\n")[0]
                   + "\nmodel:\n  model: smollm2\n  lora: all-linear\n  lora_r: 16\n  lr: 2.0e-4\n")
    for argv in (["-c", str(old)], ["-c", str(ROOT / "configs" / "sft_qa.yaml"), "--model.lr", "0.01"]):
        result = subprocess.run([sys.executable, "-m", "hybridjet.cli", "sft", "fit", *argv,
                                 "--runs_root", str(tmp_path / "runs")], capture_output=True, text=True, timeout=300)
        assert result.returncode == 2, result.stderr[-2000:]
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "usage" not in result.stderr, result.stderr[-2000:]
        assert "--model.optim.lr" in lines[0] if argv[-1] == "0.01" else \
            "model.lora -> model.lora.preset, model.lora_r -> model.lora.r, model.lr -> model.optim.lr" in lines[0]
    old = tmp_path / "old_completion.yaml"
    old.write_text((ROOT / "configs" / "sft_completion.yaml").read_text().replace(
        "  records:\n    prompt_words: 12", "  prompt_words: 12"))
    result = subprocess.run([sys.executable, "-m", "hybridjet.cli", "sft", "fit", "-c", str(old), "--runs_root",
                             str(tmp_path / "runs")], capture_output=True, text=True, timeout=300)
    assert result.returncode == 2 and "data.prompt_words -> data.records.prompt_words" in result.stderr
    assert not (tmp_path / "runs").exists()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="the recipes' GPU settings: bf16-mixed, 4-bit, compiled")
@pytest.mark.parametrize("config", ["sft_chat.yaml", "sft_completion.yaml", "sft_cot.yaml", "sft_qa.yaml"])
def test_each_recipe_trains_on_the_gpu_with_its_own_trainer_settings(tiny_llama: Path, tmp_path: Path,
                                                                     config: str) -> None:
    """The shipped recipes as a user runs them on a GPU (gradient clipping and accumulation under bf16-mixed, the
    optimiser they name, NF4, compiled layers): two optimiser steps and an exported adapter. Lightning refuses
    clipping with an optimiser that unscales its own gradients (fused AdamW), which only a GPU run shows."""
    from hybridjet.text.lightning_cli import main

    main(["sft", "fit", "-c", str(Path(__file__).resolve().parents[2] / "configs" / config),
          "--model.model", str(tiny_llama), "--runs_root", str(tmp_path), "--name", "gpu",
          "--trainer.max_steps", "2", "--trainer.enable_progress_bar", "false"])
    assert (tmp_path / "gpu" / "adapter").is_dir()
