"""One optimiser step of text SFT, saving the gradient it takes (run by test_sft_weighting.py as a user would run
training: a script, and under DDP one process per rank).

    python tests/text/sft_grad_probe.py MODEL DATA OUT BATCH ACCUMULATE DEVICES [module|plain]

``plain``: the batches come from a user's own ``DataLoader`` over the examples, not from TextDataModule.
"""

from __future__ import annotations

import sys

import lightning as L
from lightning.pytorch import Callback
from safetensors.torch import save_file

from hybridjet.llm.lora import LoraSpec
from hybridjet.runtime import Runtime
from hybridjet.text.datamodule import TextDataModule
from hybridjet.text.sft import TextSFT


class SaveGradients(Callback):
    """Writes the trainable parameters' gradients (all-reduced under DDP) before the first optimiser step."""

    def __init__(self, out: str) -> None:
        self.out = out

    def on_before_optimizer_step(self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer) -> None:
        if trainer.is_global_zero and trainer.global_step == 0:
            grads = {n: p.grad.detach().clone().contiguous() for n, p in pl_module.named_parameters()
                     if p.requires_grad and p.grad is not None}
            save_file(grads, self.out)


def main() -> None:
    model_path, data, out, batch, accumulate, devices = sys.argv[1:7]
    loader = sys.argv[7] if len(sys.argv) > 7 else "module"
    L.seed_everything(0, verbose=False)
    model = TextSFT(model=model_path, lora=LoraSpec(dropout=0.0), runtime=Runtime(quantization="none", dtype="fp32"))
    dm = TextDataModule(train_path=data, format="qa", val_ratio=0.0, batch_size=int(batch), max_length=2048)
    trainer = L.Trainer(max_steps=1, accumulate_grad_batches=int(accumulate), accelerator="cpu",
                        devices=int(devices), strategy="ddp" if int(devices) > 1 else "auto",
                        limit_val_batches=0, num_sanity_val_steps=0, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, callbacks=[SaveGradients(out)])
    if loader == "module":
        trainer.fit(model, datamodule=dm)
        return
    from torch.utils.data import DataLoader

    dm.tokenizer = model.tokenizer
    dm.setup("fit")  # tokenised examples; the batches below are the user's own
    items = dm.datasets["train"].items
    trainer.fit(model, train_dataloaders=DataLoader(items, batch_size=int(batch), shuffle=False,
                                                    collate_fn=dm.collator("right")))


if __name__ == "__main__":
    main()
