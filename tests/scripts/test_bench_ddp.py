"""``scripts/bench_ddp.py --task text`` as run on a GPU machine, here on 1 and 2 gloo CPU ranks of the tiny Llama."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench_ddp.py"


@pytest.mark.slow
def test_text_sft_on_one_and_two_ranks(tiny_llama, tmp_path):
    out = tmp_path / "rows.jsonl"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--task", "text", "--model", str(tiny_llama), "--devices", "1", "2",
         "--batch-size", "2", "--steps", "4", "--warmup", "1", "--max-tokens", "64", "--min-tokens", "16",
         "--accelerator", "cpu", "--out-json", str(out)],
        capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["devices"] for r in rows] == [1, 2]
    for r in rows:
        assert r["packed"] and r["timed_steps"] == 3 and r["tokens_per_s"] > 0
        assert len(r["tokens_per_rank"]) == r["devices"] and all(t > 0 for t in r["tokens_per_rank"])
        assert len(r["losses"]) == 4 and all(0 < x < 20 for x in r["losses"])
    assert "speed-up" in done.stdout and "loss per step, 2 device(s)" in done.stdout
