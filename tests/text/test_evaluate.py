"""``sft eval`` and the dense inference copy of a text run: merged adapter, same losses and greedy answers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from hybridjet.errors import HybridjetError
from hybridjet.llm.dense import quantized_layer_count
from hybridjet.text.formats import read_examples

ROOT = Path(__file__).resolve().parents[2]
VAL = ROOT / "examples" / "data" / "physics_qa_val.jsonl"


@pytest.fixture(scope="module")
def fitted_run(tiny_llama: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A text run of the tiny Llama, 4 steps at a large learning rate (its LoRA update is far from zero)."""
    from hybridjet.text.lightning_cli import main

    root = tmp_path_factory.mktemp("runs")
    main([
        "sft", "fit", "-c", str(ROOT / "configs" / "sft_qa.yaml"), "--model.model", str(tiny_llama),
        "--model.runtime.quantization", "none", "--runs_root", str(root), "--name", "t", "--trainer.max_steps", "4",
        "--trainer.accelerator", "cpu", "--trainer.enable_progress_bar", "false", "--data.max_length", "512",
        "--data.batch_size", "8", "--model.optim.lr", "0.01",
    ])
    return root / "t"


@pytest.mark.parametrize("quantization", ["nf4", "none"])
def test_dense_copy_scores_and_answers_like_the_adapter(fitted_run: Path, quantization: str) -> None:
    from hybridjet.text.api import TextModel

    tm = TextModel.from_pretrained(fitted_run, quantization=quantization, dtype=torch.float32)
    assert (quantized_layer_count(tm.model) > 0) == (quantization == "nf4")
    examples = read_examples(VAL)[0][:6]
    prompts = [ex.prompt_messages() for ex in examples]
    loss = tm.loss_on_examples(examples, batch_size=3)["loss"]
    answers = tm.generate_batch(prompts, max_new_tokens=6, batch_size=3)
    with tm.base_model():
        base_loss = tm.loss_on_examples(examples, batch_size=3)["loss"]
    assert abs(base_loss - loss) > 1e-3  # the adapter changes the model: merging it is tested below

    tm.densify_for_inference()
    assert tm.dense and quantized_layer_count(tm.model) == 0
    assert not any(".lora_" in name for name, _ in tm.model.named_parameters())
    assert tm.loss_on_examples(examples, batch_size=3)["loss"] == pytest.approx(loss, rel=1e-4)
    assert tm.generate_batch(prompts, max_new_tokens=6, batch_size=3) == answers
    with pytest.raises(HybridjetError, match="base model is gone"):
        with tm.base_model():
            pass


def test_a_bf16_dense_copy_keeps_the_base_model(fitted_run: Path) -> None:
    """In bf16 the adapter stays a branch of the dense copy: switched off, the base model answers, so that sft eval
    scores both columns on the dense copy."""
    from hybridjet.text.api import TextModel

    tm = TextModel.from_pretrained(fitted_run, dtype=torch.bfloat16)
    examples = read_examples(VAL)[0][:6]
    adapter = tm.loss_on_examples(examples, batch_size=3)["loss"]
    with tm.base_model():
        base = tm.loss_on_examples(examples, batch_size=3)["loss"]
    tm.densify_for_inference()
    assert tm.dense
    assert tm.loss_on_examples(examples, batch_size=3)["loss"] == pytest.approx(adapter, rel=5e-3)
    with tm.base_model():
        assert tm.loss_on_examples(examples, batch_size=3)["loss"] == pytest.approx(base, rel=5e-3)
    assert tm.loss_on_examples(examples, batch_size=3)["loss"] == pytest.approx(adapter, rel=5e-3)  # on again
    assert abs(base - adapter) > 2e-2 * abs(adapter)  # far beyond the tolerance above
    assert not any(p.requires_grad for p in tm.model.parameters())


def test_eval_dense_gives_the_same_table_and_says_how_it_ran(fitted_run: Path, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    from hybridjet.text.lightning_cli import main

    got = {}
    for flag in ("--no-dense", "--dense", None):  # None: the default, no dense copy of an unquantized model
        out = tmp_path / f"eval{flag}.json"
        assert main(["sft", "eval", "--run", str(fitted_run), "--data", str(VAL), "--limit", "5",
                     "--max-new-tokens", "5", "--out", str(out), *([flag] if flag else [])]) == 0
        got[flag] = json.loads(out.read_text())
        printed = capsys.readouterr().out
        assert "on cpu, batch 8" in printed and ("dense copy" in printed) == (flag == "--dense")
    assert got[None]["dense"] is False
    plain, dense = got["--no-dense"], got["--dense"]
    assert (plain["dense"], dense["dense"], dense["batch_size"]) == (False, True, 8)
    for column in ("base", "adapter"):  # the base model is scored before the merge
        assert dense[column]["loss"] == pytest.approx(plain[column]["loss"], rel=1e-4)
        assert dense[column]["rougeL"] == pytest.approx(plain[column]["rougeL"], abs=1e-9)
    assert [s["adapter"] for s in dense["samples"]] == [s["adapter"] for s in plain["samples"]]


@pytest.mark.parametrize("batch_size", [-1, 0])
def test_eval_bad_batch_size_is_one_line(fitted_run: Path, batch_size: int) -> None:
    from hybridjet.text.evaluate import evaluate_run

    with pytest.raises(HybridjetError, match="--batch-size: expected a positive integer"):
        evaluate_run(fitted_run, VAL, batch_size=batch_size)


def test_batches_of_similar_lengths_answer_in_the_given_order(fitted_run: Path) -> None:
    from hybridjet.text.api import TextModel

    tm = TextModel.from_pretrained(fitted_run)
    prompts = ["What is a jet in collider physics, and how is it found with the anti-kT algorithm?", "Hi?",
               "What is the mass of the Z boson?", "Why?", "Which force does the gluon carry between quarks?"]
    one_by_one = [tm.ask(p, max_new_tokens=5) for p in prompts]
    assert tm.generate_batch(prompts, max_new_tokens=5, batch_size=2) == one_by_one


def test_static_cache_runs_every_batch_in_one_shape(fitted_run: Path) -> None:
    """Prompts of different lengths, a last batch short of full: the static cache still sees one input shape (one
    compilation of the decoding step on a GPU), and the answers are the one-by-one answers."""
    from hybridjet.text.api import TextModel

    tm = TextModel.from_pretrained(fitted_run)
    prompts = ["What is a jet in collider physics, and how is it found with the anti-kT algorithm?", "Hi?",
               "What is the mass of the Z boson?", "Why?", "Which force does the gluon carry between quarks?"]
    one_by_one = [tm.ask(p, max_new_tokens=5) for p in prompts]
    shapes = []
    generate = tm.model.generate

    def recording(**kwargs):
        shapes.append(tuple(kwargs["input_ids"].shape))
        return generate(**kwargs)

    tm.model.generate = recording
    assert tm.generate_batch(prompts, max_new_tokens=5, batch_size=2, static_cache=True) == one_by_one
    assert len(shapes) == 3 and len(set(shapes)) == 1


def test_min_new_tokens_makes_answers_of_fixed_length(fitted_run: Path) -> None:
    from hybridjet.text.api import TextModel

    tm = TextModel.from_pretrained(fitted_run)
    prompts = ["Hi?", "What is the mass of the Z boson?"]
    first = tm.model.generate(**tm.tokenizer([tm.prompt_text(prompts[0])], return_tensors="pt"), max_new_tokens=1,
                              do_sample=False)[0, -1].item()
    tm._stop_ids = lambda: [first]  # the tiny model never ends a turn: make its first answer token the stop
    lengths = []
    generate = tm.model.generate

    def recording(**kwargs):
        out = generate(**kwargs)
        lengths.append(out.shape[1] - kwargs["input_ids"].shape[1])
        return out

    tm.model.generate = recording
    tm.generate_batch(prompts[:1], max_new_tokens=7, batch_size=1)
    assert lengths == [1]
    tm.generate_batch(prompts, max_new_tokens=7, batch_size=1, min_new_tokens=7)
    assert lengths[1:] == [7, 7]


@pytest.mark.parametrize(("settings", "needle"), [
    ({"max_new_tokens": 0}, r"max_new_tokens: expected an integer in \[1, 65,536\]"),
    ({"batch_size": 0}, "batch_size: expected an integer >= 1"),
    ({"min_new_tokens": -1}, r"min_new_tokens: expected an integer in \[0, 8"),
    ({"min_new_tokens": 9, "max_new_tokens": 8}, r"min_new_tokens: expected an integer in \[0, 8\], got 9"),
])
def test_generate_batch_refuses_impossible_lengths_in_one_line(fitted_run: Path, settings: dict, needle: str) -> None:
    from hybridjet.text.api import TextModel

    with pytest.raises(HybridjetError, match=needle):
        TextModel.from_pretrained(fitted_run).generate_batch(["Hi?"], **{"max_new_tokens": 8, **settings})


def test_static_cache_generates_the_same_answers(fitted_run: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    from hybridjet.text.lightning_cli import main

    got = {}
    for flags in ([], ["--static-cache"]):
        out = tmp_path / f"eval{len(flags)}.json"
        assert main(["sft", "eval", "--run", str(fitted_run), "--data", str(VAL), "--limit", "5", "--no-base",
                     "--max-new-tokens", "6", "--batch-size", "2", "--out", str(out), *flags]) == 0
        got[bool(flags)] = json.loads(out.read_text())
        assert ("static KV cache" in capsys.readouterr().out) == bool(flags)
    assert got[True]["static_cache"] and not got[False]["static_cache"]
    assert [s["adapter"] for s in got[True]["samples"]] == [s["adapter"] for s in got[False]["samples"]]
    assert got[True]["adapter"]["rougeL"] == got[False]["adapter"]["rougeL"]
