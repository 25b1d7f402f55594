"""What is alive on the GPU at a process's peak of allocated memory, grouped by where it was allocated.

``bench_sft.py --memory-report PREFIX`` records the CUDA caching allocator's history from the start of a row
(``torch.cuda.memory._record_memory_history``, Python stacks), then replays the trace: every ``alloc`` adds a
block, every ``free_completed`` removes it; at the largest total the live blocks are grouped by the innermost
frames outside torch's own files and written as a table, largest first (``PREFIX.<system>.txt``). The same table
for two systems says which tensors make one peak higher than the other.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

#: frames from these files say how torch did it, not who asked: the group is named by the next frames out
INTERNAL = ("/torch/", "/contextlib.py", "/functools.py", "<frozen", "/lightning/", "/typing.py")
MAX_ENTRIES = 2_000_000


def start_recording(max_entries: int = MAX_ENTRIES) -> None:
    """Record every allocation from now on, with its Python stack."""
    import torch

    torch.cuda.memory._record_memory_history(enabled="all", context="all", stacks="python", max_entries=max_entries)


def _frame_name(frame: dict[str, Any]) -> str:
    """``folder/file.py:line function`` of one stack frame."""
    path = "/".join(str(frame.get("filename", "?")).split("/")[-2:])
    return f"{path}:{frame.get('line', '?')} {frame.get('name', '?')}"


def where(frames: Sequence[dict[str, Any]], depth: int = 3) -> str:
    """The ``depth`` innermost frames outside torch's own files, innermost first (``file:line fn``)."""
    named = [f for f in frames if not any(part in str(f.get("filename", "")) for part in INTERNAL)]
    picked = named[:depth] or list(frames[:depth])
    return " < ".join(_frame_name(f) for f in picked) or "(no stack)"


def peak_blocks(trace: Iterable[dict[str, Any]]) -> tuple[int, dict[int, dict[str, Any]]]:
    """The largest total of live allocations in ``trace`` (one device's entries, in order) and the blocks alive
    then, by address (in allocation order: the last one reached the peak). A block freed without a recorded
    allocation (made before recording) is ignored."""
    entries = list(trace)
    live: dict[int, dict[str, Any]] = {}
    total = peak = peak_at = 0
    for i, entry in enumerate(entries):
        action = entry.get("action")
        if action == "alloc":
            live[entry["addr"]] = entry
            total += int(entry["size"])
            if total > peak:
                peak, peak_at = total, i + 1
        elif action == "free_completed" and entry["addr"] in live:
            total -= int(live.pop(entry["addr"])["size"])
    blocks: dict[int, dict[str, Any]] = {}
    for entry in entries[:peak_at]:  # replay up to the peak
        if entry.get("action") == "alloc":
            blocks[entry["addr"]] = entry
        elif entry.get("action") == "free_completed":
            blocks.pop(entry["addr"], None)
    return peak, blocks


def peak_table(trace: Iterable[dict[str, Any]], rows: int = 30, depth: int = 3) -> str:
    """The blocks alive at the peak of ``trace``, grouped by :func:`where`, largest groups first, as text."""
    peak, blocks = peak_blocks(trace)
    groups: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for block in blocks.values():
        group = groups[where(block.get("frames") or [], depth)]
        group[0] += int(block["size"])
        group[1] += 1
    last = list(blocks.values())[-1] if blocks else {}
    lines = [f"peak of recorded allocations: {peak / 2**30:.3f} GiB in {len(blocks)} blocks",
             f"reached by {int(last.get('size', 0)) / 2**20:.1f} MiB at {where(last.get('frames') or [], 8)}", "",
             "   MiB  blocks  allocated at (innermost first)"]
    for name, (size, count) in sorted(groups.items(), key=lambda kv: -kv[1][0])[:rows]:
        lines.append(f"{size / 2**20:8.1f}  {count:6d}  {name}")
    return "\n".join(lines) + "\n"


def write_report(path: str) -> None:
    """Stop recording and write the peak table of device 0's trace to ``path``."""
    import torch

    snapshot = torch.cuda.memory._snapshot()
    torch.cuda.memory._record_memory_history(enabled=None)
    traces = snapshot.get("device_traces") or [[]]
    trace = traces[torch.cuda.current_device()] if len(traces) > 1 else traces[0]
    wrapped = len(trace) >= MAX_ENTRIES
    note = f"(the trace filled its {MAX_ENTRIES} entries: the earliest are lost)\n" if wrapped else ""
    with open(path, "w") as f:
        f.write(note + peak_table(trace))
