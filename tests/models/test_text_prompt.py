import lightning as L
import pytest
import torch

from hybridjet.data.datamodule import JetDataModule
from hybridjet.errors import HybridjetError
from hybridjet.models.formatters import compact, predecessor
from hybridjet.train.classifiers import TextPromptClassifier
from hybridjet.train.recipes import train_classifier


@pytest.fixture(scope="module")
def batch(toy_jets_h5):
    dm = JetDataModule(str(toy_jets_h5), batch_size=6)
    dm.setup("fit")
    return next(iter(dm.val_dataloader()))


def test_formatters(batch):
    text = compact(batch, 0)
    assert text.startswith("j1 pt=") and "| j2 pt=" in text and "dphi=" in text and text.endswith(
        f"n={int(batch['n_particles'][0])}")
    old = predecessor(batch, 0)
    px = float(batch["jets"][0, 0, 0])
    assert f"px={px:.10f}" in old and "Number of particles" in old


def test_prompts_left_padded_and_answers_masked(tiny_llama, batch):
    model = TextPromptClassifier.from_settings(model=str(tiny_llama), quantization="none")
    enc = model.net._encode(batch, with_answer=True)
    tok = model.net.tokenizer
    for row in range(len(batch["label"])):
        answer = enc["input_ids"][row][enc["target"][row]].tolist()
        word = "signal" if batch["label"][row] > 0.5 else "background"
        assert tok.decode(answer, skip_special_tokens=True) == word
        assert answer[-1] == tok.eos_token_id
        assert enc["attention_mask"][row, -1] == 1  # left padding: every row ends at the last column
    assert model.score(batch).shape == (len(batch["label"]),)


def test_predecessor_prompt_uses_inst_tags(tiny_llama, batch):
    model = TextPromptClassifier.from_settings(model=str(tiny_llama), quantization="none", formatter="predecessor", max_length=2048)
    prompt = model.net.prompts(batch)[0]
    assert "[INST]" in prompt and prompt.rstrip().endswith("[/INST]") and "px=" in prompt


def test_loss_goes_down_on_a_repeated_batch(tiny_llama, batch):
    torch.manual_seed(0)
    model = TextPromptClassifier.from_settings(model=str(tiny_llama), quantization="none", lora_r=8)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    losses = []
    for _ in range(15):
        loss = model.loss(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    # a random tiny model's logits are capped near ln(vocab) - 1.3 (small embeddings, RMS-normed states)
    assert losses[-1] < losses[0] - 0.3


def test_too_long_prompts_are_an_error_not_a_truncation(tiny_llama, batch):
    model = TextPromptClassifier.from_settings(model=str(tiny_llama), quantization="none", formatter="predecessor", max_length=20)
    with pytest.raises(HybridjetError, match="max_length"):
        model.score(batch)


def test_generation_eval_counts_unparseable(tiny_llama, toy_jets_h5, tmp_path):
    L.seed_everything(0, verbose=False)
    model = TextPromptClassifier.from_settings(model=str(tiny_llama), quantization="none", generate_eval=True)
    dm = JetDataModule(str(toy_jets_h5), batch_size=32, max_train_events=64, max_eval_events=32)
    train_classifier(model, dm, tmp_path / "text", max_epochs=1, progress=False)
    import json

    metrics = json.loads((tmp_path / "text" / "metrics.json").read_text())
    gen = metrics["generation"]
    assert gen["n"] == 32 and 0 <= gen["unparseable"] <= 32 and 0 <= gen["accuracy"] <= 1
    assert len(gen["unparseable_examples"]) == min(5, gen["unparseable"])
    assert model.net.parse_answer(" Signal.") == 1 and model.net.parse_answer("background") == 0
    assert model.net.parse_answer("maybe") is None


def test_text_run_loads_back_and_reproduces_its_test_scores(tiny_llama, toy_jets_h5, tmp_path):
    import numpy as np

    from hybridjet.data.store import read_jets
    from hybridjet.eval.scores import read_scores
    from hybridjet.train.classifiers import EventClassifier

    L.seed_everything(0, verbose=False)
    model = TextPromptClassifier.from_settings(model=str(tiny_llama), quantization="none")
    dm = JetDataModule(str(toy_jets_h5), batch_size=32, max_train_events=64, max_eval_events=40)
    train_classifier(model, dm, tmp_path / "text", max_epochs=1, progress=False)
    test = read_scores(tmp_path / "text" / "scores.h5", "test")
    loaded = EventClassifier.from_pretrained(tmp_path / "text")
    assert isinstance(loaded, TextPromptClassifier)
    arrays = read_jets(toy_jets_h5)
    rows = np.searchsorted(arrays.event_id, test.event_id)
    np.testing.assert_allclose(loaded.predict_proba(arrays.subset(rows), batch_size=16), test.score,
                               atol=1e-5 if loaded.device.type == "cpu" else 2e-3)  # bf16 on a GPU
    dense = EventClassifier.from_pretrained(tmp_path / "text", dense=True)  # LoRA merged into the base weights
    assert not any("lora_" in n for n, _ in dense.named_parameters())
    np.testing.assert_allclose(dense.predict_proba(arrays.subset(rows), batch_size=16), test.score,
                               atol=1e-4 if dense.device.type == "cpu" else 2e-3)
    with pytest.raises(HybridjetError, match="not a HybridClassifier"):
        from hybridjet.train.classifiers import HybridClassifier

        HybridClassifier.from_pretrained(tmp_path / "text")
