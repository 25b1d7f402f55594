"""``hybridjet fit -c configs/gbdt.yaml``: the trees baseline from the same kind of config as the LLM classifiers.

The config has the classifiers' ``data:`` section and ``trainer.default_root_dir`` (the run directory); its
``model:`` names :class:`hybridjet.models.classical.GradientBoostedTrees` and its settings. Overrides work as for
the other configs (``--data.data jets.h5``, ``--model.init_args.max_iter 200``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jsonargparse import ActionConfigFile, ArgumentParser

from hybridjet import checks
from hybridjet.data.datamodule import JetDataModule
from hybridjet.errors import HybridjetError
from hybridjet.models.classical import GradientBoostedTrees
from hybridjet.train.recipes import train_gbdt

TREES_CLASS = f"{GradientBoostedTrees.__module__}.{GradientBoostedTrees.__name__}"


def is_trees_config(argv: list[str]) -> bool:
    """Whether the configs of ``argv`` (``fit -c FILE ...``) name the trees model."""
    for config in checks.config_files(argv):  # one line for a missing, broken or empty file
        model = config.get("model")
        if isinstance(model, dict) and model.get("class_path") in (TREES_CLASS, "GradientBoostedTrees"):
            return True
    return False


def parser() -> ArgumentParser:
    """The trees' argument parser: ``--config``, ``seed_everything``, ``trainer.default_root_dir``, ``model``,
    ``data``."""
    p = ArgumentParser(prog="hybridjet fit", default_env=False,
                       description="Fit gradient-boosted trees into a run directory and score its test split.")
    p.add_argument("-c", "--config", action=ActionConfigFile, help="a YAML config such as configs/gbdt.yaml")
    p.add_argument("--seed_everything", type=int, default=0, help="seed of the trees (the split has data.seed)")
    p.add_argument("--trainer.default_root_dir", type=str, default="runs/gbdt", help="the run directory")
    p.add_subclass_arguments(GradientBoostedTrees, "model", required=True)
    p.add_class_arguments(JetDataModule, "data")
    return p


def main(argv: list[str]) -> int:
    """``fit`` of a trees config; ``validate``/``test``/``predict`` point to ``hybridjet score``."""
    if argv[0] != "fit":
        raise HybridjetError(f"{argv[0]}: the trees train and score in 'hybridjet fit' "
                             "(score other files with 'hybridjet score RUN JETS_H5 --out FILE')")
    config = parser().parse_args(argv[1:])
    init: dict[str, Any] = dict(config.model.init_args)
    init.setdefault("seed", config.seed_everything)
    datamodule = JetDataModule(**dict(config.data))
    run_dir = Path(config.trainer.default_root_dir)
    metrics = train_gbdt(datamodule, run_dir, **init)
    test = metrics["test"]
    print(f"gbdt: {metrics['iterations']} iterations in {metrics['train_time_s']:.1f} s; test AUC {test['auc']:.4f} "
          f"on {test['n_events']} events -> {run_dir}")
    return 0
