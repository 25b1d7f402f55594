"""The real SmolLM2-135M-Instruct: a short QA fine-tune lowers the eval loss on held-out questions (slow)."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "data"


@pytest.mark.slow
def test_short_qa_finetune_lowers_heldout_loss(smollm2_path: Path, tmp_path: Path) -> None:
    from hybridjet.runtime import Runtime
    from hybridjet.text.datamodule import TextDataModule
    from hybridjet.text.sft import TextSFT
    from hybridjet.train.optim import OptimizerSettings

    model = TextSFT(model="smollm2", runtime=Runtime(quantization="none"), optim=OptimizerSettings(lr=1e-3, warmup_steps=1))
    dm = TextDataModule(
        str(EXAMPLES / "physics_qa.jsonl"),
        val_path=str(EXAMPLES / "physics_qa_val.jsonl"),
        system_prompt="You are a concise particle-physics assistant. Answer in one sentence.",
        max_length=128,
        batch_size=4,
    )
    trainer = L.Trainer(
        max_steps=8, logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        num_sanity_val_steps=0, gradient_clip_val=1.0, default_root_dir=tmp_path, accelerator="cpu",
    )
    before = trainer.validate(model, dm, verbose=False)[0]["val_loss"]
    trainer.fit(model, dm)
    after = trainer.validate(model, dm, verbose=False)[0]["val_loss"]
    assert after < before - 0.05, (before, after)
