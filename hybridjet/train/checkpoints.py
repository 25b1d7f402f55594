"""Checkpoints are data: written atomically, read without unpickling anything but tensors and plain containers."""

from __future__ import annotations

import io
import os
import pickle
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from torch import nn

from hybridjet.errors import HybridjetError, InputFileError
from hybridjet.io_utils import atomic_path


def trainable_state(module: nn.Module) -> dict[str, torch.Tensor]:
    """The entries of ``module``'s state dict that training changes: its trainable parameters and the running
    statistics of its batch norms (ParticleNet's, ParT's). What checkpoints and runs hold (never the frozen base
    weights, which come from the base model)."""
    names = {name for name, param in module.named_parameters() if param.requires_grad}
    for prefix, child in module.named_modules():
        if isinstance(child, nn.modules.batchnorm._BatchNorm) and any(p.requires_grad for p in child.parameters()):
            names.update(f"{prefix}.{name}" for name, _ in child.named_buffers(recurse=False))
    return OrderedDict((k, v) for k, v in module.state_dict().items() if k in names)


def check_trainable_state(module: nn.Module, state: Mapping[str, Any], where: str) -> None:
    """One line when ``state`` lacks one of ``module``'s trainable weights or holds a name ``module`` does not
    have (a checkpoint of another model or of other LoRA settings)."""
    expected = set(trainable_state(module))
    missing = sorted(expected - set(state))
    unexpected = sorted(set(state) - set(module.state_dict()))
    if missing or unexpected:
        raise HybridjetError(f"{where} does not match the model: {len(missing)} trainable weights missing (e.g. "
                             f"{missing[:1]}), {len(unexpected)} unexpected (e.g. {unexpected[:1]}); written by the "
                             "same model and LoRA settings?")


def load_trainable_state(module: nn.Module, state: Mapping[str, Any], where: str) -> None:
    """Load the trainable weights ``state`` into ``module`` after :func:`check_trainable_state`."""
    check_trainable_state(module, state, where)
    module.load_state_dict(dict(state), strict=False)


def load_checkpoint_data(path: str | os.PathLike[str], map_location: Any = "cpu") -> dict[str, Any]:
    """A checkpoint's content, read with ``torch.load(weights_only=True)`` only: a file that needs more (pickled
    objects, code) is refused with one line naming it, never unpickled."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(path, "checkpoint not found")
    try:
        data = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        reason = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
        raise InputFileError(path, "refused: the checkpoint holds Python objects beyond tensors and plain data, "
                                   f"and checkpoints are read as data only ({reason[:160]})") from None
    except (RuntimeError, EOFError, ValueError, OSError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise InputFileError(path, f"not a readable checkpoint ({first[:160]})") from None
    if not isinstance(data, dict):
        raise InputFileError(path, f"not a Lightning checkpoint (holds a {type(data).__name__}, expected a dict)")
    return data


class DataCheckpointIO(TorchCheckpointIO):
    """Checkpoints written through :func:`~hybridjet.io_utils.atomic_path` (a kill never leaves a half-written
    ``.ckpt``; a SIGKILL mid-write can leave the writer's temporary, never read and removed when a run starts), and
    read as data only (:func:`load_checkpoint_data`)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        # serialised in memory, then one plain write: torch.save straight to a full disk fails with a RuntimeError
        # about its zip writer's position, which names no disk (checkpoints hold the trainable weights only)
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        with atomic_path(path) as tmp:
            tmp.write_bytes(buffer.getbuffer())

    def load_checkpoint(self, path: Any, map_location: Any = None, weights_only: bool | None = None) -> dict[str, Any]:
        return load_checkpoint_data(path, map_location or "cpu")


def remove_partial_checkpoints(checkpoint_dir: str | Path) -> list[Path]:
    """Delete the ``.NAME.ckpt…tmp`` temporaries a killed run left in ``checkpoint_dir`` (called by the process
    holding the run directory's claim, so no other writer is at work there); returns what was removed."""
    removed = sorted(Path(checkpoint_dir).glob(".*.ckpt*.tmp"))
    for partial in removed:
        partial.unlink(missing_ok=True)
    return removed


def check_ckpt_path_run(ckpt_path: str | None, run_dir: Path, subcommand: str) -> None:
    """Before the model loads: a ``--ckpt_path`` file must exist, and a checkpoint of another run's
    ``checkpoints/`` must not write its scores into this run directory (``test``/``validate``/``predict`` write
    ``scores.h5`` and ``metrics.json`` into ``trainer.default_root_dir``, beside another model's record)."""
    if not ckpt_path or ckpt_path in ("last", "best", "hpc", "registry"):
        return
    path = Path(ckpt_path)
    if not path.is_file():
        raise InputFileError(path, "checkpoint not found")
    owner = path.resolve().parent
    if subcommand != "fit" and owner.name == "checkpoints" and owner.parent != run_dir.resolve():
        raise HybridjetError(f"--ckpt_path: {path} is the checkpoint of the run {owner.parent}, but its scores would "
                             f"go to {run_dir}; pass --trainer.default_root_dir {owner.parent}")


def check_cli_ckpt_path(cli: Any) -> None:
    """Before LightningCLI reads the hyperparameters of a ``--ckpt_path`` file (its ``_parse_ckpt_path``, which
    runs before any hook or checkpoint plugin), check that the file is data (one line otherwise)."""
    config = cli.config
    subcommand = config.get("subcommand")
    ckpt_path = config[subcommand].get("ckpt_path") if subcommand else None
    if ckpt_path and Path(ckpt_path).is_file():
        load_checkpoint_data(ckpt_path)
