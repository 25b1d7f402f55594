"""Checkpoints are data: a checkpoint that would run code when unpickled is refused with one line, and runs
nothing; ``fit``, ``test`` and text ``sft fit`` alike."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from hybridjet.errors import InputFileError
from hybridjet.train.checkpoints import load_checkpoint_data

HYBRIDJET = [sys.executable, "-m", "hybridjet.cli"]
ROOT = Path(__file__).resolve().parents[2]


class Payload:
    """Unpickling this object runs ``open(marker, "w")``: it creates the file ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def plant(path: Path, marker: Path) -> Path:
    """A Lightning-looking checkpoint at ``path`` that carries a payload."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"epoch": 0, "global_step": 1, "state_dict": {}, "loops": {}, "extra": Payload(marker)}, path)
    return path


def test_loading_a_checkpoint_with_a_payload_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "payload-ran"
    path = plant(tmp_path / "evil.ckpt", marker)
    with pytest.raises(InputFileError, match="refused"):
        load_checkpoint_data(path)
    assert not marker.exists()
    torch.load(path, weights_only=False)  # the planted payload is real: unpickling it creates the file
    assert marker.exists()


def _one_line_refusal(result: subprocess.CompletedProcess, path: Path) -> None:
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("hybridjet: error:") and str(path) in last and "refused" in last


@pytest.mark.parametrize("how", ["last", "path"])
def test_fit_resuming_from_a_planted_checkpoint_runs_no_code(how, toy_jets_h5, tmp_path):
    run_dir, marker = tmp_path / "run", tmp_path / "payload-ran"
    evil = plant(run_dir / "checkpoints" / "last.ckpt", marker)
    result = subprocess.run(
        [*HYBRIDJET, "fit", "-c", str(ROOT / "configs" / "ablation.yaml"), "--data.data", str(toy_jets_h5),
         "--trainer.default_root_dir", str(run_dir), "--trainer.enable_progress_bar", "false",
         "--ckpt_path", "last" if how == "last" else str(evil)], capture_output=True, text=True, timeout=300)
    _one_line_refusal(result, evil)
    assert not marker.exists(), "the checkpoint's payload ran"


def test_test_command_with_a_planted_checkpoint_runs_no_code(toy_jets_h5, tmp_path):
    marker = tmp_path / "payload-ran"
    evil = plant(tmp_path / "best.ckpt", marker)
    result = subprocess.run(
        [*HYBRIDJET, "test", "-c", str(ROOT / "configs" / "ablation.yaml"), "--data.data", str(toy_jets_h5),
         "--trainer.default_root_dir", str(tmp_path / "run"), "--ckpt_path", str(evil)],
        capture_output=True, text=True, timeout=300)
    _one_line_refusal(result, evil)
    assert not marker.exists()


def test_sft_resuming_from_a_planted_checkpoint_runs_no_code(tiny_llama, tmp_path):
    marker = tmp_path / "payload-ran"
    evil = plant(tmp_path / "runs" / "qa" / "checkpoints" / "last.ckpt", marker)
    result = subprocess.run(
        [*HYBRIDJET, "sft", "fit", "-c", str(ROOT / "configs" / "sft_qa.yaml"), "--model.model", str(tiny_llama),
         "--runs_root", str(tmp_path / "runs"), "--name", "qa", "--trainer.max_steps", "2",
         "--trainer.enable_progress_bar", "false", "--ckpt_path", str(evil)],
        capture_output=True, text=True, timeout=300, cwd=ROOT)
    _one_line_refusal(result, evil)
    assert not marker.exists()
