"""The README's sequence as a new user types it: ``hybridjet fit`` each run type from its config, ``hybridjet
score`` the run, ``load_run`` / ``from_pretrained`` + ``predict_proba`` in Python, ``hybridjet compare``; and
``hybridjet sft fit`` then ``hybridjet ask``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

HYBRIDJET = [sys.executable, "-m", "hybridjet.cli"]
ROOT = Path(__file__).resolve().parents[1]
RUN_TYPES = ("hybrid", "text_baseline", "ablation", "gbdt")


def _run(args: list[str], **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(args, capture_output=True, text=True, timeout=900, **kwargs)
    assert result.returncode == 0, f"{' '.join(args[2:])}\n{result.stderr[-3000:]}"
    return result


def _strict_json(path: Path) -> dict:
    def refuse(name: str) -> None:
        raise ValueError(f"{path}: {name} is not JSON")

    return json.loads(path.read_text(), parse_constant=refuse)


@pytest.fixture(scope="module")
def runs(tiny_llama, tmp_path_factory, make_toy_jets) -> dict[str, Path]:
    """Each run type trained by ``hybridjet fit -c configs/<type>.yaml`` on one jets.h5 (one epoch, tiny LLM)."""
    from hybridjet.data.store import write_jets

    root = tmp_path_factory.mktemp("readme")
    jets = root / "jets.h5"
    write_jets(jets, make_toy_jets(400, seed=5), attrs={"source": "tests toy"})
    out = {"jets": jets}
    for kind in RUN_TYPES:
        run_dir = root / "runs" / kind
        extra = [] if kind == "gbdt" else ["--trainer.max_epochs", "1", "--trainer.enable_progress_bar", "false"]
        if kind in ("hybrid", "text_baseline"):
            extra += ["--model.arch.model", str(tiny_llama)]
        _run([*HYBRIDJET, "fit", "-c", str(ROOT / "configs" / f"{kind}.yaml"), "--data.data", str(jets),
              "--trainer.default_root_dir", str(run_dir), *extra], cwd=root)
        out[kind] = run_dir
    return out


@pytest.mark.parametrize("kind", RUN_TYPES)
def test_a_cli_run_scores_reloads_and_predicts_the_same(kind, runs, tmp_path):
    import hybridjet
    from hybridjet.eval.scores import read_scores

    run_dir, jets = runs[kind], runs["jets"]
    assert (run_dir / "model.json").is_file()
    _strict_json(run_dir / "metrics.json")
    _run([*HYBRIDJET, "score", str(run_dir), str(jets), "--out", str(tmp_path / "scores.h5")])
    scored = read_scores(tmp_path / "scores.h5", "all")
    clf = hybridjet.load_run(run_dir)
    probs = clf.predict_proba(str(jets))
    assert len(probs) == 400 and np.isfinite(probs).all()
    np.testing.assert_allclose(probs, scored.score, atol=1e-5)
    if kind != "gbdt":
        assert type(hybridjet.EventClassifier.from_pretrained(run_dir)) is type(clf)
    # the run's own test-split scores are those of its saved weights
    test = read_scores(run_dir / "scores.h5", "test")
    np.testing.assert_allclose(probs[test.event_id], test.score, atol=1e-5)


def test_compare_reads_every_run_type(runs, tmp_path):
    report = tmp_path / "report"
    result = _run([*HYBRIDJET, "compare", *(str(runs[k]) for k in RUN_TYPES), "--out", str(report)])
    rows = _strict_json(report / "comparison.json")["rows"]
    assert sorted(r["name"] for r in rows) == sorted(RUN_TYPES)
    assert all(0.0 <= r["auc"] <= 1.0 for r in rows) and "| gbdt |" in result.stdout


def test_sft_fit_then_ask(tiny_llama, tmp_path):
    _run([*HYBRIDJET, "sft", "fit", "-c", str(ROOT / "configs" / "sft_qa.yaml"), "--model.model", str(tiny_llama),
          "--runs_root", str(tmp_path), "--trainer.max_steps", "4", "--trainer.val_check_interval", "2",
          "--trainer.enable_progress_bar", "false"], cwd=ROOT)
    run_dir = tmp_path / "qa"
    assert (run_dir / "adapter").is_dir() and (run_dir / "text_config.yaml").is_file()
    answer = _run([*HYBRIDJET, "ask", "--run", str(run_dir), "--max-new-tokens", "5", "What is a jet?"])
    assert "Traceback" not in answer.stderr  # a random tiny model may answer with its end token at once


def test_particles_from_cluster_to_fit_score_and_reload(tmp_path, make_events):
    """The README's particles path typed as a user does: ``hybridjet cluster --constituents`` (the written file keeps
    the user's umask), ``hybridjet fit -c configs/part.yaml``, ``hybridjet score``, then ``from_pretrained`` and
    ``predict_proba`` giving the scores ``score`` wrote."""
    import os

    import hybridjet
    from hybridjet.data.lhco import write_lhco
    from hybridjet.eval.scores import read_scores

    write_lhco(tmp_path / "events.h5", *make_events(300, seed=8))
    jets, run_dir = tmp_path / "jets_c8.h5", tmp_path / "runs" / "part"
    _run([*HYBRIDJET, "cluster", str(tmp_path / "events.h5"), "--out", str(jets), "--constituents", "8",
          "--no-progress"], preexec_fn=lambda: os.umask(0o027))
    assert jets.stat().st_mode & 0o777 == 0o640
    _run([*HYBRIDJET, "fit", "-c", str(ROOT / "configs" / "part.yaml"), "--data.data", str(jets),
          "--trainer.default_root_dir", str(run_dir), "--trainer.max_epochs", "1",
          "--trainer.enable_progress_bar", "false", "--model.arch.width", "16", "--model.arch.depth", "1",
          "--model.arch.heads", "2"], cwd=tmp_path)
    _run([*HYBRIDJET, "score", str(run_dir), str(jets), "--out", str(tmp_path / "scores.h5")])
    clf = hybridjet.EventClassifier.from_pretrained(run_dir)
    assert clf.model_kind == "part" and clf.feature_set == "particles"
    np.testing.assert_allclose(clf.predict_proba(str(jets)), read_scores(tmp_path / "scores.h5", "all").score,
                               atol=1e-5)
