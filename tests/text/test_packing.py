"""Padding-free packing: examples laid end to end in rows learn exactly what they learn alone, the model is checked
once for keeping them apart, and a model that cannot is trained on padded rows with a note."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from hybridjet.llm.backbone import load_backbone
from hybridjet.text.datamodule import LoaderSettings
from hybridjet.text.dataset import IGNORE_INDEX, SFTCollator, encode_examples, pad_token_id
from hybridjet.text.formats import Example
from hybridjet.text.packing import PackedCollator, pack_rows, packing_is_exact, padding_fraction
from hybridjet.text.sft import token_loss_sum


def test_rows_are_filled_first_fit_longest_first():
    rows = pack_rows([5, 9, 2, 7, 3], row_tokens=10)
    assert sorted(i for row in rows for i in row) == [0, 1, 2, 3, 4]
    assert all(sum([5, 9, 2, 7, 3][i] for i in row) <= 10 for row in rows)
    assert rows[0][0] == 1 and len(rows) == 3  # 9 | 7+3 | 5+2
    assert pack_rows([12, 3], row_tokens=10) == [[0], [1]]  # too long for a row: a row of its own


@pytest.fixture(scope="module")
def encoded(tiny_llama):
    bb = load_backbone(tiny_llama, quantization="none", dtype="fp32", device="cpu")  # fp32 exactness, on CPU
    examples = [Example(messages=[{"role": "user", "content": f"Question {i}: " + "what is a jet? " * (3 * i + 1)},
                                  {"role": "assistant", "content": "A spray of hadrons. " * (2 * i + 1)}],
                        source=f"r{i}") for i in range(5)]
    return bb, encode_examples(examples, bb.tokenizer, max_length=1024)


def test_each_packed_example_has_its_unpacked_loss(encoded):
    torch.manual_seed(0)
    bb, items = encoded
    model = bb.model.eval()
    packed = PackedCollator(pad_token_id(bb.tokenizer), row_tokens=sum(len(i) for i in items) // 2)(items)
    assert packed["input_ids"].shape[0] >= 2 and "attention_mask" not in packed
    assert padding_fraction(packed) < padding_fraction(SFTCollator(pad_token_id(bb.tokenizer))(items))
    starts = (packed["position_ids"] == 0).sum()
    assert int(starts) >= len(items)  # every example restarts its positions (plus the rows' padding)
    with torch.no_grad():
        alone = [token_loss_sum(model, SFTCollator(pad_token_id(bb.tokenizer))([item])) for item in items]
        total, count = token_loss_sum(model, packed)
        assert int(count) == sum(int(n) for _, n in alone) == sum(item.learned_tokens() for item in items)
        torch.testing.assert_close(total, sum(s for s, _ in alone), atol=1e-5, rtol=1e-5)
        # each example on its own inside the packed row: the others' labels masked
        for i, item in enumerate(items):
            mine = dict(packed)
            row, start = _find(packed, item)
            keep = torch.zeros_like(packed["labels"], dtype=torch.bool)
            keep[row, start : start + len(item)] = True
            mine["labels"] = packed["labels"].masked_fill(~keep, IGNORE_INDEX)
            torch.testing.assert_close(token_loss_sum(model, mine)[0], alone[i][0], atol=1e-5, rtol=1e-5)


def _find(packed: dict[str, torch.Tensor], item) -> tuple[int, int]:
    ids = torch.tensor(item.input_ids)
    for r in range(packed["input_ids"].shape[0]):
        row = packed["input_ids"][r]
        for s in range(row.numel() - len(ids) + 1):
            if packed["position_ids"][r, s] == 0 and torch.equal(row[s : s + len(ids)], ids):
                return r, s
    raise AssertionError("example not found in the packed rows")


def test_the_model_is_checked_for_keeping_packed_examples_apart(tiny_llama, tmp_path):
    bb = load_backbone(tiny_llama, quantization="none", dtype="fp32", device="cpu")  # fp32 exactness, on CPU
    exact, why = packing_is_exact(bb.model, bb.tokenizer)
    assert exact, why
    # OPT takes learned positions from position_ids but builds its mask without them: packed examples leak
    from transformers import OPTConfig, OPTForCausalLM

    opt = OPTForCausalLM(OPTConfig(vocab_size=bb.tokenizer.vocab_size + 16, hidden_size=32, num_hidden_layers=2,
                                   num_attention_heads=2, ffn_dim=64, max_position_embeddings=128))
    exact, why = packing_is_exact(opt, bb.tokenizer)
    assert not exact and "see each other" in why or "cannot run packed" in why


def test_sft_fit_packs_where_exact_and_says_when_not(tiny_llama, tmp_path, capsys):
    import lightning as L

    from hybridjet.runtime import Runtime
    from hybridjet.text.datamodule import TextDataModule
    from hybridjet.text.sft import TextSFT

    data = tmp_path / "qa.jsonl"
    data.write_text("".join(json.dumps({"question": f"Q{i}? " * (i + 1), "answer": "A. " * (3 * i + 1)}) + "\n"
                            for i in range(12)))
    L.seed_everything(0, verbose=False)
    model = TextSFT(model=str(tiny_llama), runtime=Runtime(quantization="none"))
    dm = TextDataModule(train_path=str(data), format="qa", val_ratio=0.25, batch_size=4)
    trainer = L.Trainer(max_steps=2, accelerator="auto", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                        default_root_dir=str(tmp_path / "run"))
    trainer.fit(model, datamodule=dm)
    assert dm.packs and "position_ids" in next(iter(dm.train_dataloader()))
    off = TextDataModule(train_path=str(data), format="qa", val_ratio=0.25, batch_size=4,
                         loading=LoaderSettings(packing=False))
    off.trainer = trainer
    off.setup("fit")
    assert not off.packs and "attention_mask" in next(iter(off.val_dataloader()))
    model._packing = (False, "a test's model that cannot keep packed examples apart")
    fallback = TextDataModule(train_path=str(data), format="qa", val_ratio=0.25, batch_size=4)
    fallback.trainer = trainer
    capsys.readouterr()
    fallback.setup("fit")
    assert not fallback.packs and "padded rows, not packed: a test's model" in capsys.readouterr().out
    assert Path(tmp_path / "run").exists()
