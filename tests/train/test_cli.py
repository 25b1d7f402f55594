"""``hybridjet fit`` as a user runs it: a subprocess, a real kill, a resume; bad input gives one line."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

HYBRIDJET = [sys.executable, "-m", "hybridjet.cli"]
ROOT = Path(__file__).resolve().parents[2]


def _failure(result: subprocess.CompletedProcess) -> str:
    """A failed command's exception line (Inductor's can run to pages, its start is what says why) and its tail."""
    lines = result.stderr.splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("Traceback (most recent call last)")]
    header = next((line for line in lines[starts[-1] + 1:] if line and not line[0].isspace()), "") if starts else ""
    return f"{header[:800]}\n...\n{result.stderr[-1500:]}"


def _fit_args(tiny_llama, data, run_dir, *extra):
    return [*HYBRIDJET, "fit", "-c", str(ROOT / "configs" / "hybrid.yaml"), "--data.data", str(data),
            "--model.arch.model", str(tiny_llama), "--trainer.default_root_dir", str(run_dir),
            "--trainer.enable_progress_bar", "false", "--data.batch_size", "8", *extra]


def test_fit_kill_and_resume_from_last_checkpoint(tiny_llama, toy_jets_h5, tmp_path):
    run_dir = tmp_path / "run"
    last = run_dir / "checkpoints" / "last.ckpt"
    steps_per_epoch = 60  # 480 training events / batch 8
    args = _fit_args(tiny_llama, toy_jets_h5, run_dir, "--trainer.max_epochs", "30",
                     "--checkpoint_every_n_steps", "20")
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.time() + 300
    while not last.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    time.sleep(0.5)
    assert proc.poll() is None, "training ended before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    saved = torch.load(last, map_location="cpu", weights_only=True)
    step_at_kill = saved["global_step"]
    assert 0 < step_at_kill < 30 * steps_per_epoch  # last.ckpt is whole even if the kill hit a write
    assert not (run_dir / "weights.safetensors").exists()
    # a kill during a write may leave the partial temp file (nothing can clean up after SIGKILL): plant one under a
    # name no later save reuses, so the resume below must remove it whatever the kill's timing
    (run_dir / "checkpoints" / ".epoch=0-step=7.ckpt.tmp").write_bytes(b"partial")

    epochs = str(step_at_kill // steps_per_epoch + 2)  # leave a little more than an epoch to do
    resumed = subprocess.run(_fit_args(tiny_llama, toy_jets_h5, run_dir, "--trainer.max_epochs", epochs,
                                       "--ckpt_path", "last"), capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, _failure(resumed)
    logs = sorted((run_dir / "logs").glob("version_*/metrics.csv"))
    assert len(logs) == 2
    with open(logs[-1]) as f:
        steps = [int(row["step"]) for row in csv.DictReader(f)]
    assert min(steps) >= step_at_kill - 1, "the resumed run started over instead of continuing"
    assert (run_dir / "weights.safetensors").exists() and (run_dir / "scores.h5").exists()
    assert not list(run_dir.glob("checkpoints/.*.tmp")), "a partial checkpoint survived the resume"


def test_fit_with_a_missing_file_is_one_line(tiny_llama, tmp_path):
    result = subprocess.run(_fit_args(tiny_llama, tmp_path / "nope.h5", tmp_path / "run"),
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "nope.h5" in result.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "run").exists(), "a run directory was created for a run that never started"


@pytest.mark.parametrize(("option", "value", "field"), [
    ("--model.runtime.prefix_attention", "sdpa", "prefix_attention"),
    ("--model.arch.question", "<<EVENT>> and <<EVENT>>", "question"),
    ("--model.arch.numeric_embedding", "bogus", "numeric_embedding"),
])
def test_fit_with_a_bad_model_setting_is_one_line(tiny_llama, toy_jets_h5, tmp_path, option, value, field):
    """Errors raised while LightningCLI builds the model reach the user as hybridjet's one line."""
    result = subprocess.run(_fit_args(tiny_llama, toy_jets_h5, tmp_path / "run", option, value),
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, _failure(result)
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith(f"hybridjet: error: {field}:")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(("argv", "expected"), [
    (["fit", "--help"], "--data.feature_set"),
    (["fit", "-c", "configs/hybrid.yaml", "--print_config"], "n_soft_tokens: 8"),
    (["fit", "-c", "configs/text_baseline.yaml", "--model.arch.formatter", "predecessor", "--print_config"],
     "formatter: predecessor"),
])
def test_lightning_cli_behaviour(argv, expected):
    result = subprocess.run([*HYBRIDJET, *argv], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, _failure(result)
    assert expected in result.stdout


def test_early_stopping_ends_a_run_that_stopped_improving(toy_jets_h5, tmp_path):
    """Learning rates of 1e-12 (updates below float32's resolution of the weights; 0 is refused as a setting that
    cannot be meant): val_auc never improves after the first epoch, so patience 2 stops after 3 of 30 epochs."""
    run_dir = tmp_path / "run"
    result = subprocess.run(
        [*HYBRIDJET, "fit", "-c", str(ROOT / "configs" / "ablation.yaml"), "--data.data", str(toy_jets_h5),
         "--trainer.default_root_dir", str(run_dir), "--trainer.enable_progress_bar", "false",
         "--trainer.max_epochs", "30", "--model.optim.encoder_lr", "1e-12", "--model.optim.lr", "1e-12",
         "--early_stopping_patience", "2"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, _failure(result)
    with open(next((run_dir / "logs").glob("version_*/metrics.csv"))) as f:
        epochs = {int(row["epoch"]) for row in csv.DictReader(f) if row.get("val_auc")}
    assert epochs == {0, 1, 2}
    assert (run_dir / "weights.safetensors").exists() and (run_dir / "scores.h5").exists()


def test_score_command_writes_the_runs_probabilities(tiny_llama, toy_jets_h5, tmp_path):
    import lightning as L
    import numpy as np

    from hybridjet.data.datamodule import JetDataModule
    from hybridjet.eval.scores import read_scores
    from hybridjet.train.classifiers import HybridClassifier
    from hybridjet.train.recipes import train_classifier

    L.seed_everything(0, verbose=False)
    run_dir = tmp_path / "run"
    model = HybridClassifier.from_settings(model=str(tiny_llama), quantization="none", n_soft_tokens=2)
    train_classifier(model, JetDataModule(str(toy_jets_h5), batch_size=32), run_dir, max_epochs=1, progress=False)
    out = tmp_path / "scores.h5"
    result = subprocess.run([*HYBRIDJET, "score", str(run_dir), str(toy_jets_h5), "--out", str(out),
                             "--model", str(tiny_llama), "--batch-size", "50"], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, _failure(result)
    assert "scored 600 events" in result.stdout
    written = read_scores(out, "all")
    expected = HybridClassifier.from_pretrained(run_dir, model=str(tiny_llama)).predict_proba(str(toy_jets_h5))
    # same scores; on a GPU the run loads in bf16, and batches of 50 vs one of 600 round differently
    atol = 2e-3 if torch.cuda.is_available() else 1e-5
    np.testing.assert_allclose(written.score, expected, atol=atol)
    assert len(set(written.event_id.tolist())) == 600 and set(written.label.tolist()) == {0, 1}

    # several files in one call: one model load, a split per file (named after it), the earlier split kept
    second = tmp_path / "second_jets.h5"
    second.write_bytes(toy_jets_h5.read_bytes())
    both = subprocess.run([*HYBRIDJET, "score", str(run_dir), str(toy_jets_h5), str(second), "--out", str(out),
                           "--model", str(tiny_llama)], capture_output=True, text=True, timeout=300)
    assert both.returncode == 0, _failure(both)
    assert both.stdout.count("loaded ") == 1 and both.stdout.count("scored 600 events") == 2
    for split in (toy_jets_h5.name.removesuffix(".h5"), "second_jets", "all"):
        np.testing.assert_allclose(read_scores(out, split).score, expected, atol=atol)
    same_name = subprocess.run([*HYBRIDJET, "score", str(run_dir), str(second), str(second), "--out", str(out)],
                               capture_output=True, text=True, timeout=300)
    assert same_name.returncode == 2 and "'second_jets'" in same_name.stderr and "Traceback" not in same_name.stderr
    named = subprocess.run([*HYBRIDJET, "score", str(run_dir), str(toy_jets_h5), str(second), "--out", str(out),
                            "--split", "test"], capture_output=True, text=True, timeout=300)
    assert named.returncode == 2 and "--split" in named.stderr and "Traceback" not in named.stderr

    missing = subprocess.run([*HYBRIDJET, "score", str(run_dir), str(tmp_path / "nope.h5"), "--out", str(out)],
                             capture_output=True, text=True, timeout=300)
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
    assert missing.stderr.strip().count("\n") == 0 and "nope.h5" in missing.stderr

    # a bad second input is caught before the model loads: no split of the good first file written either
    bad = tmp_path / "bad_jets.h5"
    bad.write_text("not hdf5")
    fresh = tmp_path / "fresh.h5"
    bad_second = subprocess.run([*HYBRIDJET, "score", str(run_dir), str(toy_jets_h5), str(bad), "--out", str(fresh),
                                 "--model", str(tiny_llama)], capture_output=True, text=True, timeout=300)
    assert bad_second.returncode == 2 and "bad_jets.h5: not an HDF5 file" in bad_second.stderr
    assert "loaded " not in bad_second.stdout and not fresh.exists() and "Traceback" not in bad_second.stderr

    # a device this machine does not have: one line naming --device, before the model loads
    for device, message in (("bogus", "invalid device 'bogus'"), ("cuda:99", "GPU(s)" if torch.cuda.is_available()
                                                                  else "CUDA is not available")):
        bad_device = subprocess.run([*HYBRIDJET, "score", str(run_dir), str(toy_jets_h5), "--out", str(fresh),
                                     "--device", device], capture_output=True, text=True, timeout=300)
        assert bad_device.returncode == 2 and bad_device.stderr.startswith("hybridjet: error: --device: ")
        assert message in bad_device.stderr and bad_device.stderr.strip().count("\n") == 0
        assert "loaded " not in bad_device.stdout and not fresh.exists()

    not_a_run = subprocess.run([*HYBRIDJET, "score", str(tmp_path), str(toy_jets_h5), "--out", str(tmp_path / "x.h5")],
                               capture_output=True, text=True, timeout=300)
    assert not_a_run.returncode == 2 and "not a hybridjet run directory" in not_a_run.stderr
    assert "Traceback" not in not_a_run.stderr and not (tmp_path / "x.h5").exists()

    bad_batch = subprocess.run([*HYBRIDJET, "score", str(run_dir), str(toy_jets_h5), "--out", str(tmp_path / "y.h5"),
                                "--batch-size", "0"], capture_output=True, text=True, timeout=300)
    assert bad_batch.returncode == 2 and "--batch-size" in bad_batch.stderr and "Traceback" not in bad_batch.stderr
    assert bad_batch.stderr.strip().count("\n") == 0 and not (tmp_path / "y.h5").exists()


def test_bf16_autocast_is_the_default_on_a_bf16_gpu_only(monkeypatch):
    from hybridjet.train import callbacks, recipes

    assert recipes.trainer_defaults()["precision"] == ("bf16-mixed" if torch.cuda.is_available() else "32-true")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert callbacks.default_precision() == "bf16-mixed"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert callbacks.default_precision() == "32-true"


def _one_line(result: subprocess.CompletedProcess, *needles: str) -> str:
    """The command failed with exit 2 and one ``hybridjet: error:`` line holding ``needles``, no traceback."""
    assert result.returncode == 2, _failure(result)
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("hybridjet: error:") and all(n in last for n in needles), last
    return last


@pytest.mark.parametrize(("option", "value"), [("--data.batch_size", "-4"), ("--data.eval_batch_size", "0"),
                                                 ("--data.max_train_events", "0"), ("--data.feature_set", "bogus")])
def test_fit_with_a_bad_data_setting_is_one_line_before_anything_runs(toy_jets_h5, tmp_path, option, value):
    result = subprocess.run(
        [*HYBRIDJET, "fit", "-c", str(ROOT / "configs" / "ablation.yaml"), "--data.data", str(toy_jets_h5),
         "--trainer.default_root_dir", str(tmp_path / "run"), option, value], capture_output=True, text=True,
        timeout=300)
    _one_line(result, option.removeprefix("--"))
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("only", [0, 1])
def test_fit_on_a_one_class_file_is_refused_before_training(make_toy_jets, tmp_path, only):
    from hybridjet.data.store import write_jets

    arrays = make_toy_jets(200)
    arrays.label[:] = only
    data = tmp_path / "one_class.h5"
    write_jets(data, arrays, attrs={"source": "one class"})
    result = subprocess.run(
        [*HYBRIDJET, "fit", "-c", str(ROOT / "configs" / "ablation.yaml"), "--data.data", str(data),
         "--trainer.default_root_dir", str(tmp_path / "run")], capture_output=True, text=True, timeout=300)
    _one_line(result, str(data), "signal" if only else "background")
    assert not (tmp_path / "run").exists(), "a run directory was left for a run that could not train"


@pytest.fixture(scope="module")
def ablation_run(toy_jets_h5, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("bad_runs") / "ablation"
    result = subprocess.run(
        [*HYBRIDJET, "fit", "-c", str(ROOT / "configs" / "ablation.yaml"), "--data.data", str(toy_jets_h5),
         "--trainer.default_root_dir", str(run_dir), "--trainer.max_epochs", "1",
         "--trainer.enable_progress_bar", "false"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, _failure(result)
    return run_dir


@pytest.mark.parametrize("damage", ["truncated weights", "broken model.json", "model.json not an object",
                                    "unknown setting", "missing run"])
def test_score_with_a_damaged_run_is_one_line(ablation_run, toy_jets_h5, tmp_path, damage):
    import shutil

    run_dir = tmp_path / "run"
    shutil.copytree(ablation_run, run_dir)
    named = run_dir / "model.json"
    if damage == "truncated weights":
        weights = run_dir / "weights.safetensors"
        weights.write_bytes(weights.read_bytes()[:100])
        named = weights
    elif damage == "broken model.json":
        named.write_text(named.read_text()[:-40])
    elif damage == "model.json not an object":
        named.write_text("[1, 2]")
    elif damage == "unknown setting":
        meta = json.loads(named.read_text())
        meta["arch"]["n_soft_tokenz"] = 3
        named.write_text(json.dumps(meta))
    else:
        shutil.rmtree(run_dir)
        named = run_dir
    result = subprocess.run([*HYBRIDJET, "score", str(run_dir), str(toy_jets_h5), "--out", str(tmp_path / "s.h5")],
                            capture_output=True, text=True, timeout=300)
    _one_line(result, str(named))
    assert not (tmp_path / "s.h5").exists()


def test_test_with_another_runs_checkpoint_does_not_write_into_this_run(ablation_run, toy_jets_h5, tmp_path):
    """Before: 'test -c configs/ablation.yaml --ckpt_path runs/abl/checkpoints/best.ckpt' wrote abl's scores into
    the config's runs/ablation, beside that run's own model.json and weights."""
    result = subprocess.run([*HYBRIDJET, "test", "-c", str(ROOT / "configs" / "ablation.yaml"), "--data.data",
                             str(toy_jets_h5), "--trainer.default_root_dir", str(tmp_path / "other"), "--ckpt_path",
                             str(ablation_run / "checkpoints" / "best.ckpt")], capture_output=True, text=True,
                            timeout=300)
    _one_line(result, "is the checkpoint of the run", f"--trainer.default_root_dir {ablation_run}")
    assert not (tmp_path / "other").exists()


@pytest.mark.parametrize(("extra", "needle"), [
    (["--trainer.accelerator", "gpu"], "this machine has no CUDA GPU"),
    (["--ckpt_path", "/nonexistent.ckpt"], "/nonexistent.ckpt: checkpoint not found"),
    (["--model.arch.question", "x <<EVENT>> y <<EVENT>>"], "at most one '<<EVENT>>' slot"),
])
def test_settings_are_refused_before_the_model_loads(toy_jets_h5, tmp_path, extra, needle):
    if "gpu" in extra and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    result = subprocess.run([*HYBRIDJET, "fit", "-c", str(ROOT / "configs" / "hybrid.yaml"), "--data.data",
                             str(toy_jets_h5), "--model.arch.model", str(tmp_path / "no-such-model"),
                             "--trainer.default_root_dir", str(tmp_path / "run"), *extra], capture_output=True,
                            text=True, timeout=300)
    _one_line(result, needle)  # the model named does not exist: an error about it would mean it was looked at first
    assert not (tmp_path / "run").exists()


def test_repeated_event_ids_and_a_broken_metrics_json_are_refused_before_training(make_toy_jets, toy_jets_h5,
                                                                                   tmp_path):
    """Before: both trained fully, then failed (duplicates in the test split; a JSONDecodeError traceback)."""
    from hybridjet.data.store import write_jets

    jets = make_toy_jets(300)
    jets.event_id[:] = jets.event_id % 100
    write_jets(tmp_path / "dup.h5", jets)
    fit = [*HYBRIDJET, "fit", "-c", str(ROOT / "configs" / "ablation.yaml"), "--trainer.max_epochs", "1"]
    result = subprocess.run([*fit, "--data.data", str(tmp_path / "dup.h5"), "--trainer.default_root_dir",
                             str(tmp_path / "run")], capture_output=True, text=True, timeout=300)
    _one_line(result, "200 event ids repeat")
    assert "GPU available" not in result.stderr and not (tmp_path / "run").exists()
    (tmp_path / "h4").mkdir()
    (tmp_path / "h4" / "metrics.json").write_text("not json")
    result = subprocess.run([*fit, "--data.data", str(toy_jets_h5), "--trainer.default_root_dir",
                             str(tmp_path / "h4")], capture_output=True, text=True, timeout=300)
    _one_line(result, "metrics.json: not JSON")
    assert sorted(p.name for p in (tmp_path / "h4").iterdir()) == ["metrics.json"]
