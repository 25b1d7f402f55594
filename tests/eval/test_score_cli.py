"""``hybridjet score`` and ``compare`` on what users feed them: unlabeled files, outputs onto their data, other
jet counts, a full disk, runs scored on different data."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hybridjet.data.store import JetArrays, write_jets
from hybridjet.eval.scores import read_scores

ROOT = Path(__file__).resolve().parents[2]
HYBRIDJET = [sys.executable, "-m", "hybridjet.cli"]


def _run(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([*HYBRIDJET, *argv], capture_output=True, text=True, timeout=300)


def _one_line(result: subprocess.CompletedProcess, *needles: str) -> str:
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr and "Segmentation" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("hybridjet: error:") and all(n in last for n in needles), last
    return last


@pytest.fixture(scope="module")
def runs(make_toy_jets, tmp_path_factory):
    """A trees run and a no-LLM ablation run trained on 600 toy events, and their data."""
    root = tmp_path_factory.mktemp("score_cli")
    data = root / "jets.h5"
    write_jets(data, make_toy_jets(600))
    for name, config, extra in (("gbdt", "gbdt.yaml", []), ("ablation", "ablation.yaml",
                                                             ["--trainer.max_epochs", "1"])):
        result = _run("fit", "-c", str(ROOT / "configs" / config), "--data.data", str(data),
                      "--trainer.default_root_dir", str(root / name), *extra)
        assert result.returncode == 0, result.stderr[-3000:]
    return root


@pytest.mark.parametrize("run", ["gbdt", "ablation"])
def test_an_unlabeled_file_is_scored(runs, make_toy_jets, tmp_path, run):
    """Before: what 'cluster' writes from a black box (label -1) failed after scoring, with no file named."""
    arrays = make_toy_jets(200, seed=4)
    arrays.label[:] = -1
    blind = tmp_path / "blackbox_jets.h5"
    write_jets(blind, arrays)
    out = tmp_path / "scores.h5"
    result = _run("score", str(runs / run), str(blind), "--out", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    scores = read_scores(out, "all")
    assert len(scores) == 200 and set(scores.label.tolist()) == {-1} and np.isfinite(scores.score).all()
    assert scores.split_attrs["data"] == str(blind) and len(scores.split_attrs["data_sha256"]) == 64
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "scores.h5").write_bytes(out.read_bytes())
    _one_line(_run("compare", str(tmp_path / "run"), "--split", "all", "--out", str(tmp_path / "r")),
              "200 events without a label (-1)")


def test_scores_never_replace_a_file_of_another_kind(runs, make_toy_jets, tmp_path):
    """Before: 'score RUN jets.h5 --out other_jets.h5' exited 0 and the jets were gone."""
    other = tmp_path / "other_jets.h5"
    write_jets(other, make_toy_jets(50, seed=9))
    before = other.read_bytes()
    result = _run("score", str(runs / "gbdt"), str(runs / "jets.h5"), "--out", str(other))
    _one_line(result, str(other), "exists and is not a scores file hybridjet wrote")
    assert "loaded" not in result.stdout and other.read_bytes() == before  # refused before the model loaded
    _one_line(_run("score", str(runs / "gbdt"), str(other), "--out", str(other)), "is also the input")
    assert other.read_bytes() == before


@pytest.mark.parametrize("n_jets", [1, 3])
@pytest.mark.parametrize("run", ["gbdt", "ablation"])
def test_another_number_of_jets_is_one_line_before_the_model_loads(runs, make_toy_jets, tmp_path, n_jets, run):
    """Before: 'ValueError: operands could not be broadcast'."""
    toy = make_toy_jets(40)
    pick = [0] * n_jets if n_jets < 2 else [0, 1, 1]
    jets = JetArrays(toy.jets[:, pick], toy.jet_mask[:, pick], toy.n_particles, toy.tau[:, pick], toy.label,
                     toy.event_id)
    path = tmp_path / f"jets{n_jets}.h5"
    write_jets(path, jets)
    result = _run("score", str(runs / run), str(path), "--out", str(tmp_path / "s.h5"))
    _one_line(result, str(path), f"events with {n_jets} jet slots", "expected 2 jets per event")
    assert "loaded" not in result.stdout and not (tmp_path / "s.h5").exists()


def test_repeated_event_ids_are_one_line_before_the_model_loads(runs, make_toy_jets, tmp_path):
    toy = make_toy_jets(40)
    toy.event_id[:] = 7
    path = tmp_path / "dup.h5"
    write_jets(path, toy)
    _one_line(_run("score", str(runs / "gbdt"), str(path), "--out", str(tmp_path / "s.h5")),
              "dataset 'event_id' repeats 39 id(s)")


def test_a_full_disk_is_one_line_and_leaves_nothing(runs, small_disk):
    """Before: several tracebacks from h5py's deallocators, then a segmentation fault and a temporary left."""
    import shutil

    small = small_disk("16k")
    (small / "filler").write_bytes(b"x" * (shutil.disk_usage(small).free - 4096))  # 4 kB left for the scores
    _one_line(_run("score", str(runs / "ablation"), str(runs / "jets.h5"), "--out", str(small / "s.h5")),
              str(small / "s.h5"), "no space left on device")
    assert [p.name for p in small.iterdir()] == ["filler"]


def test_compare_refuses_runs_scored_on_different_data_with_the_same_event_ids(make_toy_jets, tmp_path):
    """Before: a paired AUC gap between runs of two files whose event ids happen to match."""
    for name, seed in (("a", 1), ("b", 2)):
        write_jets(tmp_path / f"{name}.h5", make_toy_jets(400, seed=seed))  # ids 0..399 in both
        result = _run("fit", "-c", str(ROOT / "configs" / "gbdt.yaml"), "--data.data", str(tmp_path / f"{name}.h5"),
                      "--trainer.default_root_dir", str(tmp_path / f"run_{name}"))
        assert result.returncode == 0, result.stderr[-3000:]
    _one_line(_run("compare", str(tmp_path / "run_a"), str(tmp_path / "run_b"), "--out", str(tmp_path / "r")),
              "scored their 'test' split on different data", "a.h5", "b.h5")
    assert not (tmp_path / "r").exists()
    result = _run("compare", str(tmp_path / "run_a"), str(tmp_path / "run_a"), "--out", str(tmp_path / "r"))
    assert result.returncode == 0, result.stderr[-3000:]


def test_trees_that_loop_or_point_outside_are_refused_at_load(runs, tmp_path):
    """Before: nodes pointing to themselves made 'score' loop forever; indices out of range gave IndexError."""
    import shutil

    from safetensors.numpy import load_file, save_file

    for change, needle in ((lambda a: (a["left"].fill(0), a["right"].fill(0)), "child outside its tree or before"),
                           (lambda a: a["feature_idx"].fill(99), "a split on a feature outside"),
                           (lambda a: a.__setitem__("offsets", a["offsets"][::-1].copy()), "offsets not increasing")):
        run = tmp_path / "trees"
        shutil.rmtree(run, ignore_errors=True)
        shutil.copytree(runs / "gbdt", run)
        arrays = load_file(str(run / "trees.safetensors"))
        change(arrays)
        save_file(arrays, str(run / "trees.safetensors"))
        _one_line(_run("score", str(run), str(runs / "jets.h5"), "--out", str(tmp_path / "s.h5")),
                  "trees.safetensors: not trees hybridjet wrote", needle)


def test_a_scores_file_declaring_ten_billion_events_is_one_line(runs, tmp_path):
    """Before: compare allocated 74.5 GiB for a 7 kB file."""
    import shutil

    import h5py

    run = tmp_path / "crafted"
    shutil.copytree(runs / "gbdt", run)
    with h5py.File(run / "scores.h5", "a") as f:
        for name, dtype in (("event_id", "i8"), ("score", "f4"), ("label", "i1")):
            del f["test"][name]
            f["test"].create_dataset(name, shape=(10**10,), dtype=dtype, chunks=(4096,), compression="gzip")
    _one_line(_run("compare", str(runs / "gbdt"), str(run), "--out", str(tmp_path / "r")), "declares shape")
    _one_line(_run("compare", str(runs / "gbdt"), "--bootstrap", "1000000000000", "--out", str(tmp_path / "r")),
              "--bootstrap: expected an integer in [0, 100,000]")


def test_a_metrics_field_of_the_wrong_type_is_one_line(runs, tmp_path):
    import json
    import shutil

    run = tmp_path / "typed"
    shutil.copytree(runs / "gbdt", run)
    metrics = json.loads((run / "metrics.json").read_text())
    metrics["trainable_params"] = "abc"
    (run / "metrics.json").write_text(json.dumps(metrics))
    _one_line(_run("compare", str(run), "--out", str(tmp_path / "r")), "trainable_params is 'abc'; expected a number")


@pytest.mark.parametrize("run", ["gbdt", "ablation"])
def test_the_python_api_refuses_what_cannot_be_scored(runs, run):
    """Before: batch_size=-5 returned an empty array, 0 was replaced by the default, NaN features scored."""
    import hybridjet
    from hybridjet.errors import HybridjetError

    clf = hybridjet.load_run(runs / run)
    for batch in (-5, 0):
        with pytest.raises(HybridjetError, match="batch_size: expected an integer >= 1"):
            clf.predict_proba(str(runs / "jets.h5"), batch_size=batch)
    with pytest.raises(HybridjetError, match="hold NaN or inf"):
        clf.predict_proba(np.full((3, len(clf.normalizer.names)), np.nan, np.float32))
