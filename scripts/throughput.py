"""Throughput measurement shared by the benchmark scripts (imported by them from this folder): training and scoring events/s, tokens per event."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

import torch

from hybridjet.train.classifiers import EventClassifier


@dataclass
class Throughput:
    """Events per second for training steps (forward + backward + optimizer) and for scoring."""

    train_events_per_s: float
    infer_events_per_s: float
    tokens_per_event: float

    @property
    def train_tokens_per_s(self) -> float:
        return self.train_events_per_s * self.tokens_per_event

    @property
    def infer_tokens_per_s(self) -> float:
        return self.infer_events_per_s * self.tokens_per_event


def _sync(model: EventClassifier) -> None:
    if model.device.type == "cuda":
        torch.cuda.synchronize(model.device)


def tokens_per_event(model: EventClassifier, batch: dict[str, torch.Tensor]) -> float:
    """Sequence positions the LLM processes per event (0 for models without an LLM)."""
    net = model.net
    if hasattr(net, "sequence_length"):
        return float(net.sequence_length)
    if hasattr(net, "_encode"):
        return float(net._encode(batch, with_answer=False)["attention_mask"].sum()) / len(batch["label"])
    return 0.0


def _on_device(model: EventClassifier, batches: Iterable[dict[str, torch.Tensor]]) -> list[dict[str, torch.Tensor]]:
    """The batches moved to the model's device once, before any timing."""
    return [{k: v.to(model.device) for k, v in b.items()} for b in batches]


def _timed(step, batches: list[dict[str, torch.Tensor]], model: EventClassifier, warmup: int,
           pipelined: bool) -> float:
    """Events/s of ``step`` over ``batches[warmup:]``: each step synchronised on its own, or (``pipelined``) one
    synchronisation for all of them, so the host queues a step while the GPU still runs the previous one."""
    for batch in batches[:warmup]:
        step(batch)
    timed = batches[warmup:]
    n = sum(len(b["label"]) for b in timed)
    seconds = 0.0
    _sync(model)
    start = time.perf_counter()
    for batch in timed:
        step(batch)
        if not pipelined:
            _sync(model)
            seconds, start = seconds + time.perf_counter() - start, time.perf_counter()
    if pipelined:
        _sync(model)
        seconds = time.perf_counter() - start
    return n / max(seconds, 1e-9)


def measure(model: EventClassifier, batches: Iterable[dict[str, torch.Tensor]], warmup: int = 1,
            pipelined: bool = False) -> Throughput:
    """Time training steps and scoring over ``batches`` (the first ``warmup`` batches are not timed); see
    ``_timed`` for ``pipelined``."""
    batches = _on_device(model, batches)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-5)

    def train_step(batch: dict[str, torch.Tensor]) -> None:
        loss = model.loss(batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def score_step(batch: dict[str, torch.Tensor]) -> None:
        model.score(batch)

    model.train()
    train = _timed(train_step, batches, model, warmup, pipelined)
    model.eval()
    with torch.no_grad():
        infer = _timed(score_step, batches, model, warmup, pipelined)
    return Throughput(train, infer, tokens_per_event(model, batches[0]))


def measure_scoring(model: EventClassifier, batches: Iterable[dict[str, torch.Tensor]], warmup: int = 1,
                    pipelined: bool = False) -> float:
    """Scoring events/s over ``batches`` (the first ``warmup`` not timed), the model in eval mode, no gradients."""
    batches = _on_device(model, batches)
    model.eval()
    with torch.no_grad():
        return _timed(model.score, batches, model, warmup, pipelined)
