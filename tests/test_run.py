"""The run directory's owner (``hybridjet.run.RunClaim``): one training at a time, someone's folder left alone,
a failed try tidied, an interrupted one kept for its resume."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest

from hybridjet.data.datamodule import JetDataModule
from hybridjet.errors import HybridjetError, OutputPathError
from hybridjet.run import RUN_LOCK, RunClaim

ROOT = Path(__file__).resolve().parents[1]


def _fit(toy_jets_h5: Path, run: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "hybridjet.cli", "fit", "-c", str(ROOT / "configs" / "ablation.yaml"),
         "--data.data", str(toy_jets_h5), "--trainer.default_root_dir", str(run), "--trainer.max_epochs", "1",
         "--trainer.enable_progress_bar", "false", *extra], capture_output=True, text=True, timeout=300)


def test_a_second_training_into_a_run_directory_is_refused(toy_jets_h5, tmp_path):
    """Before: two fits into one run directory at once left a corrupt last.ckpt that could not be resumed."""
    run = tmp_path / "run"
    with RunClaim(run):  # another process's training, as far as the command can tell
        result = _fit(toy_jets_h5, run)
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"hybridjet: error: {run}: another hybridjet process (pid ") and "training" in last
    assert sorted(p.name for p in run.iterdir()) == [RUN_LOCK]
    result = _fit(toy_jets_h5, run)  # the holder is gone: its lock holds nothing
    assert result.returncode == 0, result.stderr[-3000:]
    assert (run / "checkpoints" / "last.ckpt").is_file() and (run / "model.json").is_file()


@pytest.mark.parametrize("where", ["someone's folder", "a file", "under a file"])
def test_a_run_directory_that_cannot_be_one_is_refused_before_the_model_loads(toy_jets_h5, tmp_path, where):
    target = tmp_path / "target"
    if where == "someone's folder":
        target.mkdir()
        (target / "notes.txt").write_text("keep")
        needle = "holds 1 entry (notes.txt) and none of a run directory's"
    elif where == "a file":
        target.write_text("keep")
        needle = "exists and is not a folder"
    else:
        (tmp_path / "file").write_text("keep")
        target = tmp_path / "file" / "run"
        needle = "it is a file"
    result = _fit(toy_jets_h5, target)
    assert result.returncode == 2 and "GPU available" not in result.stderr  # no trainer was built
    assert needle in result.stderr.strip().splitlines()[-1]
    assert sorted(p.name for p in tmp_path.iterdir()) == (["target"] if where != "under a file" else ["file"])


class _Fails(L.Callback):
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == 3:
            raise self.exc


def _train(toy_jets_h5: Path, run: Path, exc: BaseException) -> None:
    from hybridjet.train.classifiers import HybridClassifier
    from hybridjet.train.recipes import train_classifier

    model = HybridClassifier.from_settings(use_llm=False, n_soft_tokens=2, ablation_width=16, encoder_hidden=32)
    train_classifier(model, JetDataModule(str(toy_jets_h5), batch_size=32), run, max_epochs=2, progress=False,
                     checkpoint_every_n_steps=2, callbacks=[_Fails(exc)])


def test_a_failed_try_removes_what_it_added_and_an_interrupted_one_keeps_it(toy_jets_h5, tmp_path):
    """Before: failing fits left runs/X/logs/version_0 (and a half run directory) behind."""
    run = tmp_path / "new_run"
    with pytest.raises(RuntimeError, match="boom"):
        _train(toy_jets_h5, run, RuntimeError("boom"))
    assert (run / "checkpoints" / "last.ckpt").is_file()  # written at step 2: the try can be resumed, so it stays
    assert len(list((run / "logs").iterdir())) == 1
    earlier = tmp_path / "earlier"
    earlier.mkdir()
    (earlier / "metrics.json").write_text("{}")  # an earlier run's file stays
    with pytest.raises(RuntimeError):
        _train(toy_jets_h5, earlier, RuntimeError("boom"))
    assert (earlier / "metrics.json").read_text() == "{}"
    kept = tmp_path / "interrupted"
    with pytest.raises(SystemExit):  # Lightning turns Ctrl-C into sys.exit(1)
        _train(toy_jets_h5, kept, KeyboardInterrupt())
    assert (kept / "logs").is_dir() and (kept / "checkpoints" / "last.ckpt").is_file()


def test_a_try_that_fails_before_any_checkpoint_leaves_no_run_directory(toy_jets_h5, tmp_path):
    claim = RunClaim(tmp_path / "run").acquire()
    (tmp_path / "run" / "logs" / "version_0").mkdir(parents=True)
    (tmp_path / "run" / "config.yaml").write_text("x")
    claim.release(failed=True)
    assert not (tmp_path / "run").exists()


def test_a_folder_of_someone_else_is_never_claimed(tmp_path):
    (tmp_path / "data.h5").write_text("x")
    with pytest.raises(OutputPathError, match="none of a run directory's"):
        RunClaim(tmp_path).acquire()
    with pytest.raises(HybridjetError):
        RunClaim(tmp_path / "data.h5").acquire()


def test_a_fit_on_a_full_disk_is_one_line_and_leaves_no_half_run(toy_jets_h5, small_disk):
    """Before: a traceback from torch's zip writer ('unexpected pos'), and a half run directory."""
    small = small_disk("2m")
    result = _fit(toy_jets_h5, small / "run", "--trainer.max_epochs", "2")
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-3000:]
    assert "no space left on device" in result.stderr.strip().splitlines()[-1]
    assert list(small.iterdir()) == []
