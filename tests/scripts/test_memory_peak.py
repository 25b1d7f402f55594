"""``scripts/memory_peak.py``: the blocks alive at the peak of an allocator trace, grouped by who allocated them."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))

from memory_peak import peak_blocks, peak_table, where  # noqa: E402


def frame(filename: str, line: int, name: str) -> dict:
    return {"filename": filename, "line": line, "name": name}


LOSS = [frame("/site/torch/nn/functional.py", 10, "linear"), frame("/repo/hybridjet/text/loss.py", 70, "_chunk_loss")]
LAYER = [frame("/site/transformers/models/llama/modeling_llama.py", 200, "forward")]


def trace() -> list[dict]:
    return [
        {"action": "alloc", "addr": 1, "size": 100, "frames": LAYER},
        {"action": "alloc", "addr": 2, "size": 300, "frames": LOSS},
        {"action": "alloc", "addr": 3, "size": 50, "frames": LOSS},
        {"action": "free_requested", "addr": 2, "size": 300},  # still allocated until completed
        {"action": "free_completed", "addr": 2, "size": 300},
        {"action": "alloc", "addr": 4, "size": 200, "frames": LAYER},  # 350 live: below the 450 before
        {"action": "free_completed", "addr": 99, "size": 10},  # allocated before recording: ignored
    ]


def test_the_peak_is_the_largest_live_total_with_its_blocks():
    peak, blocks = peak_blocks(trace())
    assert peak == 450
    assert sorted(blocks) == [1, 2, 3]  # block 4 came after the peak, block 2 was freed after it


def test_groups_are_named_by_the_frames_outside_torch_and_sorted_by_size():
    assert where(LOSS).startswith("text/loss.py:70 _chunk_loss")
    table = peak_table(trace()).splitlines()
    assert table[0].startswith("peak of recorded allocations: 0.000 GiB in 3 blocks")
    assert "reached by 0.0 MiB at text/loss.py:70 _chunk_loss" in table[1]  # block 3, the last before the peak
    assert "loss.py:70 _chunk_loss" in table[4] and table[4].split()[1] == "2"  # 350 bytes in 2 blocks first
    assert "modeling_llama.py:200 forward" in table[5]
