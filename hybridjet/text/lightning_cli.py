"""``hybridjet sft ...``: LightningCLI for :class:`TextSFT` + :class:`TextDataModule`, and ``sft eval``.

    hybridjet sft fit -c configs/sft_qa.yaml [--trainer.max_steps 40] [--ckpt_path last]
    hybridjet sft validate -c configs/sft_qa.yaml
    hybridjet sft fit -c configs/sft_qa.yaml --print_config
    hybridjet sft eval --run runs/qa --data examples/data/physics_qa.jsonl [--max-new-tokens 64]

Outputs go to ``runs/<name>/`` (``--name``, set in each config): ``config.yaml``, ``metrics.csv``,
``checkpoints/`` (best by ``val_loss`` + ``last.ckpt``, LoRA weights only), ``adapter/``, ``tokenizer/``,
``text_config.yaml``; ``sft eval`` adds ``eval.json``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from hybridjet import checks
from hybridjet.errors import HybridjetError
from hybridjet.llm.backbone import load_tokenizer
from hybridjet.llm.resolve import resolve_model
from hybridjet.quiet import quiet_training_warnings
from hybridjet.run import RunClaim, released_on_exit
from hybridjet.text.datamodule import TextDataModule
from hybridjet.text.sft import TextSFT
from hybridjet.train.callbacks import default_precision
from hybridjet.train.checkpoints import DataCheckpointIO, check_cli_ckpt_path, remove_partial_checkpoints

USAGE = ("usage: hybridjet sft {fit,validate,test} -c CONFIG [overrides] | hybridjet sft eval --run RUN --data FILE"
         " | hybridjet sft lora-study -c CONFIG [--presets qkv all-linear] [overrides]")


class SFTCLI(LightningCLI):
    """LightningCLI with a run name (``runs/<name>``), a best-by-val_loss checkpoint and a CSV logger."""

    #: the run directories this process claimed (:class:`RunClaim`), released by :func:`cli_main`'s caller
    claims: list[RunClaim] = []

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_argument("--name", type=str, default="sft", help="run name: outputs go to <runs_root>/<name>")
        parser.add_argument("--runs_root", type=str, default="runs", help="parent directory of run directories")
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.set_defaults(
            {
                "checkpoint.monitor": "val_loss",
                "checkpoint.mode": "min",
                "checkpoint.save_top_k": 1,
                "checkpoint.save_last": True,
                "checkpoint.filename": "best-{step}-{val_loss:.4f}",
                "checkpoint.auto_insert_metric_name": True,
            }
        )

    def _parse_ckpt_path(self) -> None:
        check_cli_ckpt_path(self)
        super()._parse_ckpt_path()

    def _sub_config(self) -> Any:
        return self.config[self.subcommand] if self.subcommand else self.config

    def run_dir(self) -> Path:
        """``<runs_root>/<name>``."""
        cfg = self._sub_config()
        return Path(cfg.runs_root) / cfg.name

    def before_instantiate_classes(self) -> None:
        cfg = self._sub_config()
        run_dir = self.run_dir()
        if not cfg.trainer.get("default_root_dir"):
            cfg.trainer.default_root_dir = str(run_dir)
        if not cfg.checkpoint.get("dirpath"):
            cfg.checkpoint.dirpath = str(run_dir / "checkpoints")
        if not cfg.model.get("run_dir"):
            cfg.model.run_dir = str(run_dir)
        checks.training_budget(cfg.trainer)
        checks.accelerator(cfg.trainer.get("accelerator"))
        RunClaim(run_dir).check()  # a file or someone's folder in the way: one line before the model loads
        if self.subcommand in ("fit", "validate", "test"):
            check_data_before_the_model(cfg)

    def instantiate_trainer(self, **kwargs: Any) -> Any:
        cfg = self._sub_config()
        SFTCLI.claims.append(RunClaim(self.run_dir()).acquire())  # the model loaded: the run directory is made now
        remove_partial_checkpoints(cfg.checkpoint.dirpath)
        logger = cfg.trainer.get("logger")
        if logger is None or logger is True:
            from lightning.pytorch.loggers import CSVLogger

            kwargs.setdefault("logger", CSVLogger(save_dir=str(self.run_dir()), name="", version=""))
        return super().instantiate_trainer(**kwargs)


def check_data_before_the_model(cfg: Any) -> None:
    """Read, split and tokenise the data with the model's tokenizer alone, so that bad data is one line before the
    LLM loads and before any run directory exists."""
    data = cfg.data.as_dict() if hasattr(cfg.data, "as_dict") else dict(cfg.data)
    tokenizer = load_tokenizer(resolve_model(cfg.model.model, cache_dir=cfg.model.get("cache_dir")).path)
    TextDataModule(**data).encode(tokenizer)


#: the text SFT's flat settings before they were grouped like the classifiers' -> where each went
RENAMED = {"lora_r": "lora.r", "lora_alpha": "lora.alpha", "lora_dropout": "lora.dropout",
           "quantization": "runtime.quantization", "dtype": "runtime.dtype",
           "gradient_checkpointing": "runtime.gradient_checkpointing", "torch_compile": "runtime.torch_compile",
           "optimizer": "optim.optimizer", "lr": "optim.lr", "weight_decay": "optim.weight_decay",
           "betas": "optim.betas", "scheduler": "optim.scheduler", "warmup_steps": "optim.warmup_steps"}


#: the text data module's settings grouped since -> where each went
RENAMED_DATA = {"fields": "records.fields", "prompt_words": "records.prompt_words",
                "prompt_fraction": "records.prompt_fraction", "skip_invalid": "records.skip_invalid",
                "eval_batch_size": "loading.eval_batch_size", "num_workers": "loading.num_workers",
                "packing": "loading.packing", "pack_tokens": "loading.pack_tokens"}


def check_renamed_settings(args: list[str]) -> None:
    """One line for a config file or an argument with a text SFT setting under its old flat name (a config
    written before the settings were grouped), naming where it is now."""
    renamed = {"model": RENAMED, "data": RENAMED_DATA}
    for path, config in zip(checks.config_paths(args), checks.config_files(args), strict=True):
        for section, moved in renamed.items():
            settings = config.get(section)
            if not isinstance(settings, dict):
                continue
            old = [key for key in settings if key in moved]
            if section == "model" and isinstance(settings.get("lora"), str):
                old.insert(0, "lora")
            if old:
                moves = ", ".join(f"{section}.{k} -> {section}.{moved.get(k, 'lora.preset')}" for k in old)
                raise HybridjetError(f"{path}: settings renamed when text SFT took grouped settings: {moves} "
                                     "(README, Text mode)")
    for arg in args:
        option = arg.split("=", 1)[0]
        for section, moved in renamed.items():
            key = option.removeprefix(f"--{section}.")
            if option.startswith(f"--{section}.") and key in moved:
                raise HybridjetError(f"{option}: renamed --{section}.{moved[key]} (README, Text mode)")


def cli_main(args: Sequence[str]) -> SFTCLI:
    """Run the LightningCLI on ``args`` (the arguments after ``sft``)."""
    import warnings

    warnings.filterwarnings("ignore", message=".*LightningCLI's args parameter is intended.*")
    quiet_training_warnings()
    checks.config_files(list(args))  # one line naming a missing, broken or empty config file
    check_renamed_settings(list(args))
    SFTCLI.claims = []
    with released_on_exit(SFTCLI.claims):
        return SFTCLI(
            TextSFT,
            TextDataModule,
            args=list(args),
            save_config_kwargs={"overwrite": True},
            trainer_defaults={"num_sanity_val_steps": 0, "plugins": [DataCheckpointIO()],
                              "precision": default_precision()},
            parser_kwargs={"prog": "hybridjet sft"},
        )


def eval_parser() -> argparse.ArgumentParser:
    """The parser of ``hybridjet sft eval``."""
    p = argparse.ArgumentParser(
        prog="hybridjet sft eval",
        description="Perplexity and ROUGE-L of a text run on a file, base model vs adapter; writes <run>/eval.json",
    )
    p.add_argument("--run", required=True, help="run directory (runs/<name>) written by 'hybridjet sft fit'")
    p.add_argument("--data", required=True, help="held-out JSON/JSONL/Parquet file in the run's format")
    p.add_argument("--max-new-tokens", type=int, default=128, help="generation length for ROUGE-L")
    p.add_argument("--limit", type=int, default=None, help="use only the first N records")
    p.add_argument("--batch-size", type=int, default=None, help="examples per batch (default 64 on a GPU, 8 on a CPU)")
    p.add_argument("--dense", action=argparse.BooleanOptionalAction, default=None,
                   help="score with a dense copy, the 4-bit base dequantized once (default: for a quantized model "
                        "whose dense weights take at most half the device's free memory)")
    p.add_argument("--no-base", action="store_true", help="skip the base-model (before) column")
    p.add_argument("--static-cache", action="store_true",
                   help="a fixed-size KV cache, whose decoding step transformers compiles on a GPU (large evaluations)")
    p.add_argument("--out", default=None, help="output JSON (default <run>/eval.json)")
    p.add_argument("--model", default=None, help="base model path, when the run's recorded one is not on this machine")
    p.add_argument("--progress", action="store_true", help="show a progress bar of the generation")
    return p


def main(argv: Sequence[str]) -> int:
    """Entry point for ``hybridjet sft ...`` (``argv`` starts with ``"sft"``)."""
    args = list(argv)
    if args and args[0] == "sft":
        args = args[1:]
    if not args or args[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if args else 2
    if args[0] == "eval":
        from hybridjet.text.evaluate import evaluate_run, format_table

        ns = eval_parser().parse_args(args[1:])
        result = evaluate_run(
            ns.run,
            ns.data,
            max_new_tokens=ns.max_new_tokens,
            limit=ns.limit,
            batch_size=ns.batch_size,
            include_base=not ns.no_base,
            out=ns.out,
            base_model=ns.model,
            progress=ns.progress,
            dense=ns.dense,
            static_cache=ns.static_cache,
        )
        print(format_table(result))
        return 0
    if args[0] == "lora-study":
        return lora_study(args[1:])
    cli_main(args)
    return 0


def lora_study(args: list[str]) -> int:
    """``hybridjet sft lora-study -c CONFIG [--presets qkv all-linear] [overrides]``: one ``sft fit`` per LoRA preset
    on the same data, split and seed (runs ``<name>_<preset>``), then their best eval loss and perplexity side by
    side."""
    import math

    from hybridjet.text.export import read_text_config

    presets = ["qkv", "all-linear"]
    if "--presets" in args:
        at = args.index("--presets")
        given = [a for a in args[at + 1 :] if not a.startswith("--")]
        rest = args[at + 1 + len(given) :]
        presets, args = given, args[:at] + rest
        if not presets:
            raise HybridjetError("--presets: expected LoRA presets, e.g. --presets qkv all-linear")
    names = [args[i + 1] for i, a in enumerate(args[:-1]) if a == "--name"]
    roots = [args[i + 1] for i, a in enumerate(args[:-1]) if a == "--runs_root"]
    base = names[-1] if names else next((c.get("name") for c in checks.config_files(args) if c.get("name")), "sft")
    root = Path(roots[-1]) if roots else Path("runs")
    rows = []
    for preset in presets:
        name = f"{base}_{preset}"
        print(f"=== LoRA {preset}: runs {root / name}", flush=True)
        cli_main(["fit", *args, "--name", name, "--model.lora.preset", preset])
        exported = (read_text_config(root / name).get("exported") or {})
        loss = exported.get("val_loss")
        rows.append((preset, name, loss, math.exp(min(loss, 50.0)) if loss is not None else None))
    print("\n| LoRA | run | best val loss | val perplexity |\n|:---|:---|---:|---:|")
    for preset, name, loss, ppl in rows:
        print(f"| {preset} | {name} | {'-' if loss is None else f'{loss:.4f}'} | {'-' if ppl is None else f'{ppl:.2f}'} |")
    return 0
