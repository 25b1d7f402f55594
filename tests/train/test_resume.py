"""A run killed (SIGKILL) in its second epoch and resumed with ``--ckpt_path last`` ends exactly where the
uninterrupted run of the same seed ends: same test scores, bit for bit, on CPU."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from hybridjet.data.store import write_jets

HYBRIDJET = [sys.executable, "-m", "hybridjet.cli"]
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def jets_h5(tmp_path_factory: pytest.TempPathFactory, make_toy_jets) -> Path:
    path = tmp_path_factory.mktemp("resume") / "jets.h5"
    arrays = make_toy_jets(1200, seed=3)
    flip = np.random.default_rng(4).random(len(arrays.label)) < 0.3  # label noise: val AUC keeps moving, so the
    arrays.label[flip] = 1 - arrays.label[flip]  # best checkpoint (what scores come from) is a late one
    write_jets(path, arrays, attrs={"source": "tests/train toy"})
    return path


def _failure(result: subprocess.CompletedProcess) -> str:
    return result.stderr[-3000:]


def kill_in_second_epoch(args: list[str], last: Path, steps_per_epoch: int) -> int:
    """Start ``args``, SIGKILL it once ``last`` records a step of the second epoch; the step it recorded."""
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.time() + 600
    step = -1
    while time.time() < deadline and proc.poll() is None:
        if last.exists():
            try:
                step = int(torch.load(last, map_location="cpu", weights_only=True)["global_step"])
            except Exception:  # noqa: BLE001 - the rename raced the read: look again
                step = -1
            if steps_per_epoch < step < 2 * steps_per_epoch:
                break
        time.sleep(0.01)
    assert proc.poll() is None, f"training ended before the second epoch could be killed: {proc.stderr.read()[-2000:]}"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    step = int(torch.load(last, map_location="cpu", weights_only=True)["global_step"])
    assert steps_per_epoch < step < 2 * steps_per_epoch, f"killed at step {step}, not in the second epoch"
    return step


def assert_same_final_state(whole: Path, resumed: Path) -> None:
    """The two runs' final weights (``last.ckpt``, written at the end of training) are equal bit for bit."""
    a = torch.load(whole / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    b = torch.load(resumed / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert a["global_step"] == b["global_step"]
    assert a["state_dict"].keys() == b["state_dict"].keys()
    differ = [k for k in a["state_dict"] if not torch.equal(a["state_dict"][k], b["state_dict"][k])]
    assert not differ, f"{len(differ)} of {len(a['state_dict'])} weights differ, e.g. {differ[0]}"


@pytest.mark.parametrize("config", ["ablation", "hybrid", "text_baseline"])
def test_scores_of_a_resumed_run_equal_the_uninterrupted_run(config, jets_h5, tiny_llama, tmp_path):
    from hybridjet.eval.scores import read_scores

    # the LLM runs train on fewer events: 12 steps per epoch instead of 30
    model = [] if config == "ablation" else ["--model.arch.model", str(tiny_llama), "--data.max_train_events",
                                             "384", "--data.max_eval_events", "64"]
    steps_per_epoch = 30 if config == "ablation" else 12

    def fit(run_dir: Path, *extra: str) -> list[str]:
        return [*HYBRIDJET, "fit", "-c", str(ROOT / "configs" / f"{config}.yaml"), "--data.data", str(jets_h5),
                "--trainer.default_root_dir", str(run_dir), "--trainer.enable_progress_bar", "false", *model,
                "--trainer.max_epochs", "3", "--data.batch_size", "32", "--checkpoint_every_n_steps", "3", *extra]

    whole = subprocess.run(fit(tmp_path / "whole"), capture_output=True, text=True, timeout=600)
    assert whole.returncode == 0, _failure(whole)
    run_dir = tmp_path / "killed"
    step = kill_in_second_epoch(fit(run_dir), run_dir / "checkpoints" / "last.ckpt", steps_per_epoch)
    assert step % steps_per_epoch != 0
    resumed = subprocess.run(fit(run_dir, "--ckpt_path", "last"), capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, _failure(resumed)
    assert_same_final_state(tmp_path / "whole", run_dir)
    a, b = read_scores(tmp_path / "whole" / "scores.h5", "test"), read_scores(run_dir / "scores.h5", "test")
    assert np.array_equal(a.event_id, b.event_id)
    np.testing.assert_array_equal(a.score, b.score)


def test_a_resumed_text_fine_tune_equals_the_uninterrupted_one(tiny_llama, tmp_path):
    """``hybridjet sft fit`` killed in its second epoch and resumed: same LoRA weights at the end, same exported
    best adapter."""
    from safetensors.torch import load_file

    def fit(name: str, *extra: str) -> list[str]:
        return [*HYBRIDJET, "sft", "fit", "-c", str(ROOT / "configs" / "sft_qa.yaml"), "--model.model",
                str(tiny_llama), "--runs_root", str(tmp_path), "--name", name, "--trainer.max_steps", "-1",
                "--trainer.max_epochs", "3", "--trainer.val_check_interval", "2", "--trainer.accelerator", "cpu",
                "--trainer.enable_progress_bar", "false", "--model.lora.dropout", "0.1", *extra]

    whole = subprocess.run(fit("whole"), capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert whole.returncode == 0, _failure(whole)
    steps_per_epoch = 11  # 42 records / batch 4
    step = kill_in_second_epoch(fit("killed"), tmp_path / "killed" / "checkpoints" / "last.ckpt", steps_per_epoch)
    assert step % steps_per_epoch != 0
    resumed = subprocess.run(fit("killed", "--ckpt_path", "last"), capture_output=True, text=True, timeout=600,
                             cwd=ROOT)
    assert resumed.returncode == 0, _failure(resumed)
    assert_same_final_state(tmp_path / "whole", tmp_path / "killed")
    a = load_file(tmp_path / "whole" / "adapter" / "adapter_model.safetensors")
    b = load_file(tmp_path / "killed" / "adapter" / "adapter_model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
