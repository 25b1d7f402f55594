"""Lightning DDP on CPU (gloo, 2 processes): data split across ranks, evaluation gathered, files written once.

One ``hybridjet fit`` subprocess with ``--trainer.strategy ddp --trainer.devices 2``, then a resume from ``last``.
The eval batch (7) does not divide the 60 test events: 9 batches over 2 ranks, so the sampler repeats one batch
and the ranks hold different numbers of events; scores.h5 must still hold every test event exactly once.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from hybridjet.data.datamodule import JetDataModule
from hybridjet.eval.scores import read_scores

ROOT = Path(__file__).resolve().parents[2]
STEPS_PER_EPOCH = 30  # 480 training events / batch 8 / 2 ranks


def _fit(tiny_llama: Path, data: Path, run_dir: Path, *extra: str, config: str = "hybrid.yaml",
         command: str = "fit") -> subprocess.CompletedProcess[str]:
    args = [sys.executable, "-m", "hybridjet.cli", command, "-c", str(ROOT / "configs" / config),
            "--data.data", str(data), "--model.arch.model", str(tiny_llama),
            "--trainer.default_root_dir", str(run_dir), "--trainer.enable_progress_bar", "false",
            "--trainer.strategy", "ddp", "--trainer.devices", "2", "--trainer.accelerator", "cpu",
            "--data.batch_size", "8", "--data.eval_batch_size", "7", "--checkpoint_every_n_steps", "10", *extra]
    return subprocess.run(args, capture_output=True, text=True, timeout=600, cwd=ROOT)


def _test_event_ids(data: Path, split: str = "test") -> np.ndarray:
    dm = JetDataModule(data=str(data), split=(0.8, 0.1, 0.1), seed=0)
    dm.setup("test")
    return dm.splits[split].tensors["event_id"].numpy()


def _check_run(run_dir: Path, expected_ids: np.ndarray, global_step: int) -> None:
    scores = read_scores(run_dir / "scores.h5", "test")
    assert len(scores.event_id) == len(expected_ids) == 60  # gathered from both ranks, duplicates dropped
    np.testing.assert_array_equal(np.sort(scores.event_id), np.sort(expected_ids))
    names = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    # one last.ckpt, best checkpoint(s) by val AUC, no per-rank copies or leftover temporary files
    assert names[-1] == "last.ckpt" and all(n.startswith("best") and n.endswith(".ckpt") for n in names[:-1])
    last = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert last["global_step"] == global_step  # each rank saw half of the training batches
    assert (run_dir / "weights.safetensors").exists() and (run_dir / "model.json").exists()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert 0.0 <= metrics["test"]["auc"] <= 1.0


def test_ddp_two_cpu_processes_gather_write_once_and_resume(tiny_llama, toy_jets_h5, tmp_path):
    run_dir = tmp_path / "run"
    expected = _test_event_ids(toy_jets_h5)
    first = _fit(tiny_llama, toy_jets_h5, run_dir, "--trainer.max_epochs", "1")
    assert first.returncode == 0, first.stderr[-3000:]
    _check_run(run_dir, expected, STEPS_PER_EPOCH)
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["best.ckpt", "last.ckpt"]
    assert len(list((run_dir / "logs").glob("version_*"))) == 1  # rank 0 logs; no second version from rank 1

    # predict on 2 ranks: one scores.h5 split with every val event once (rank 0 writes the gathered predictions)
    predicted = _fit(tiny_llama, toy_jets_h5, run_dir, "--ckpt_path", str(run_dir / "checkpoints" / "last.ckpt"),
                     "--data.predict_split", "val", command="predict")
    assert predicted.returncode == 0, predicted.stderr[-3000:]
    val = read_scores(run_dir / "scores.h5", "val")
    assert len(val.event_id) == 60  # 9 batches of 7 over 2 ranks: one repeated, counted once
    np.testing.assert_array_equal(val.event_id, np.sort(_test_event_ids(toy_jets_h5, "val")))
    assert ((val.score >= 0) & (val.score <= 1)).all()

    resumed = _fit(tiny_llama, toy_jets_h5, run_dir, "--trainer.max_epochs", "2", "--ckpt_path", "last")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    _check_run(run_dir, expected, 2 * STEPS_PER_EPOCH)
    assert len(list((run_dir / "logs").glob("version_*"))) == 3  # fit, predict, resumed fit: rank 0's only


def test_ddp_generation_accuracy_counts_every_test_event_once(tiny_llama, toy_jets_h5, tmp_path):
    """The predecessor's generated-answer accuracy under DDP: both ranks' answers, repeated events counted once."""
    run_dir = tmp_path / "text"
    result = _fit(tiny_llama, toy_jets_h5, run_dir, "--trainer.max_epochs", "1", "--data.max_train_events", "32",
                  config="text_baseline_predecessor.yaml")
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    generation, test = metrics["generation"], metrics["test"]
    assert generation["n"] == test["n_events"] == 60  # rank 0 alone counted 32 before
    assert 0 <= generation["unparseable"] <= 60 and 0.0 <= generation["accuracy"] <= 1.0
