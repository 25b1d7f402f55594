"""``hybridjet fit|validate|test|predict``: LightningCLI over the event classifiers and the jets.h5 datamodule.

The run directory is ``trainer.default_root_dir`` (e.g. ``runs/hybrid``): checkpoints go to ``<run>/checkpoints``
(``last.ckpt`` + best by val AUC), CSV logs to ``<run>/logs``, and after ``fit`` the best weights are exported as
safetensors + JSON and the test split is scored into ``scores.h5`` / ``metrics.json``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lightning.pytorch import Callback, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningCLI, SaveConfigCallback

from hybridjet import checks
from hybridjet.data.datamodule import JetDataModule
from hybridjet.errors import HybridjetError
from hybridjet.quiet import quiet_training_warnings
from hybridjet.run import RunClaim, released_on_exit
from hybridjet.train.callbacks import early_stopping
from hybridjet.train.checkpoints import check_ckpt_path_run, check_cli_ckpt_path, remove_partial_checkpoints
from hybridjet.train.classifiers import EventClassifier
from hybridjet.train.recipes import trainer_defaults
from hybridjet.train.trees_cli import is_trees_config
from hybridjet.train.trees_cli import main as trees_main


class HybridjetCLI(LightningCLI):
    """LightningCLI with the run-directory conventions and a test pass after ``fit``."""

    #: the run directories this process claimed (:class:`RunClaim`), released by :func:`main`
    claims: list[RunClaim] = []

    def add_arguments_to_parser(self, parser: Any) -> None:
        parser.add_argument("--test_after_fit", type=bool, default=True,
                            help="score the test split with the best weights after fit (scores.h5, metrics.json)")
        parser.add_argument("--checkpoint_every_n_steps", type=int, default=50,
                            help="write <run>/checkpoints/last.ckpt every N optimizer steps (resume with --ckpt_path last)")
        parser.add_argument("--early_stopping_patience", type=int | None, default=None,
                            help="stop when val_auc has not improved for N validations (default: never)")

    def before_instantiate_classes(self) -> None:
        config = self.config[self.subcommand]
        checks.training_budget(config.trainer)
        checks.accelerator(config.trainer.get("accelerator"))
        for name in ("checkpoint_every_n_steps", "early_stopping_patience"):
            checks.integer(f"--{name}", config.get(name), 1 if name.startswith("checkpoint") else 0,
                           optional=name.startswith("early"))
        root = Path(config.trainer.get("default_root_dir") or "runs/default")
        check_ckpt_path_run(config.get("ckpt_path"), root, self.subcommand)
        RunClaim(root).check()  # before the model loads

    def _parse_ckpt_path(self) -> None:
        check_cli_ckpt_path(self)
        super()._parse_ckpt_path()

    def _instantiate_trainer(self, config: dict[str, Any], callbacks: list[Callback]) -> Trainer:
        root = Path(config.get("default_root_dir") or "runs/default")
        if config.get("logger") in (None, True):
            from lightning.pytorch.loggers import CSVLogger

            config["logger"] = CSVLogger(save_dir=str(root), name="logs")
        patience = self.config_init[self.subcommand].get("early_stopping_patience")
        if patience is not None:
            callbacks = [*callbacks, early_stopping(patience)]
        HybridjetCLI.claims.append(RunClaim(root).acquire())  # after every setting and the model: nothing is left
        remove_partial_checkpoints(root / "checkpoints")
        trainer = super()._instantiate_trainer(config, callbacks)
        every = self.config_init[self.subcommand].get("checkpoint_every_n_steps", 50)
        for cb in trainer.callbacks:
            if isinstance(cb, ModelCheckpoint):
                if cb.dirpath is None:
                    cb.dirpath = str(root / "checkpoints")
                if cb.save_last and cb.monitor is None:
                    cb._every_n_train_steps = every
        return trainer

    def after_fit(self) -> None:
        if self.config_init[self.subcommand].get("test_after_fit", True) and not self.trainer.interrupted:
            self.trainer.test(self.model, datamodule=self.datamodule, ckpt_path=None, verbose=True)


def main(argv: list[str]) -> int:
    """Run the LightningCLI with ``argv`` (``fit -c configs/hybrid.yaml ...``); a trees config goes to
    :mod:`hybridjet.train.trees_cli`."""
    import warnings

    if is_trees_config(argv):
        return trees_main(argv)
    warnings.filterwarnings("ignore", message=".*provide both args and command line arguments.*")
    quiet_training_warnings()
    HybridjetCLI.claims = []
    try:
        with released_on_exit(HybridjetCLI.claims):
            HybridjetCLI(
                EventClassifier,
                JetDataModule,
                subclass_mode_model=True,
                trainer_defaults=trainer_defaults(),
                save_config_callback=SaveConfigCallback,
                save_config_kwargs={"overwrite": True},
                seed_everything_default=0,
                args=argv,
                parser_kwargs={"prog": "hybridjet", "default_env": False},
            )
    except FileNotFoundError as exc:
        raise HybridjetError(f"{exc.filename}: file not found") from exc
    return 0
