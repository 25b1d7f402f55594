"""``scripts/bench_anomaly_jobs.py``: the same search with each job count in a fresh process, side by side."""

import subprocess
import sys
from pathlib import Path

import yaml

from hybridjet.data.store import JetArrays, write_jets

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench_anomaly_jobs.py"


def test_prints_each_job_count_against_the_first(tmp_path, make_resonance_jets):
    write_jets(tmp_path / "jets.h5", JetArrays.concatenate(list(make_resonance_jets(300, 3000, 4))))
    config = tmp_path / "search.yaml"
    config.write_text(yaml.safe_dump({
        "data": {"jets": str(tmp_path / "jets.h5")}, "injection": {"s_over_b": [0.1]},
        "training": {"folds": 2, "seeds": [0, 1]}, "methods": {"gbdt": {"max_iter": 20}},
        "evaluation": {"min_background": 5}}))
    done = subprocess.run([sys.executable, str(SCRIPT), "-c", str(config), "--modes", "cwola", "--jobs", "1", "2",
                           "--work", str(tmp_path / "work")], capture_output=True, text=True, timeout=600,
                          cwd=SCRIPT.parents[1])
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert [line.split(":")[0] for line in lines] == ["--jobs 1", "--jobs 2"]
    assert "x1.00 against --jobs 1" in lines[0]
    assert lines[1].endswith("(1 rows, largest max SIC median difference 0.000)")  # the trees: the same runs
    assert (tmp_path / "work/jobs2/out/runs/gbdt/cwola/sb0.1/seed1/metrics.json").is_file()
