"""Training batches whose order is a function of (seed, epoch) alone, so a killed run resumes mid-epoch exactly.

A resumed run must see the batches the uninterrupted run would have seen: the same permutation for the epoch it
stopped in, from the batch after the last one it finished. :class:`EpochBatches` computes each epoch's
permutation from ``(seed, epoch)`` (nothing carried over from earlier epochs) and asks a *position* function,
when iteration begins, which epoch this is and how many of its batches are done; under a Lightning trainer that is
the trainer's own progress (:func:`trainer_position`), which Lightning restores from the checkpoint before the
first batch is drawn. Under data parallelism each rank takes every ``world_size``-th batch of the same order (the
batch count padded to a multiple of the ranks by repeating the first batches), so no sampler is injected.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch


@dataclass(frozen=True)
class Position:
    """Where a pass over the training batches starts: ``epoch``, batches of it already ``done`` (on this rank),
    this process's ``rank`` among ``world_size`` data-parallel ranks, and the micro-batches each optimiser step
    accumulates (``accumulate``)."""

    epoch: int = 0
    done: int = 0
    rank: int = 0
    world_size: int = 1
    accumulate: int = 1


def trainer_position(trainer: Any) -> Position:
    """The position of a Lightning trainer's fit loop: its current epoch and the batches of it already trained
    (restored from the checkpoint on a resume; 0 at an epoch's start)."""
    done = int(trainer.fit_loop.epoch_loop.batch_progress.current.ready)
    return Position(int(trainer.current_epoch), done, int(trainer.global_rank), int(trainer.world_size),
                    int(trainer.accumulate_grad_batches))


class EpochBatches(torch.utils.data.IterableDataset):
    """Shuffled batches of ``n_rows`` rows, each made by ``make_batch(rows)``; resumable mid-epoch.

    Args:
        n_rows: rows to draw from (indices ``0 .. n_rows-1``).
        batch_size: rows per batch (the last batch of an epoch may be shorter).
        seed: the permutation of epoch ``e`` is drawn from ``numpy.random.default_rng([seed, e])``.
        make_batch: turns an index array into a batch (a dict of tensors, a collated text batch ...).
        position: where a pass starts (called when iteration begins); ``None``: epoch 0, 1, 2 ... one per pass.
    """

    def __init__(self, n_rows: int, batch_size: int, seed: int, make_batch: Callable[[np.ndarray], Any],
                 position: Callable[[], Position] | None = None) -> None:
        super().__init__()
        if n_rows < 1 or batch_size < 1:
            raise ValueError(f"EpochBatches needs rows and a positive batch size, got {n_rows} and {batch_size}")
        self.n_rows, self.batch_size, self.seed = n_rows, batch_size, seed
        self.make_batch = make_batch
        self.position = position
        self._passes = 0

    def epoch_batches(self, epoch: int) -> list[np.ndarray]:
        """Every batch of ``epoch`` (all ranks), as row indices."""
        order = np.random.default_rng([self.seed, epoch]).permutation(self.n_rows)
        return [order[i : i + self.batch_size] for i in range(0, self.n_rows, self.batch_size)]

    def _where(self) -> Position:
        if self.position is not None:
            return self.position()
        return Position(epoch=self._passes)

    def _padded(self, epoch: int, world: int) -> list[np.ndarray]:
        """The epoch's batches, their count padded to a multiple of the ranks by repeating the first ones."""
        batches = self.epoch_batches(epoch)
        padded = -(-len(batches) // world) * world
        return [batches[i % len(batches)] for i in range(padded)]

    def rank_batches(self, position: Position) -> list[np.ndarray]:
        """The batches of ``position.epoch`` that ``position.rank`` trains on, in order."""
        world = max(position.world_size, 1)
        return self._padded(position.epoch, world)[position.rank :: world]

    def __len__(self) -> int:
        world = max(self._where().world_size, 1)
        n_batches = -(-self.n_rows // self.batch_size)
        return -(-n_batches // world)

    def __iter__(self) -> Iterator[Any]:
        # a generator: the position is read at the first batch, after a resumed trainer restored its progress
        position = self._where()
        self._passes += 1
        batches = self.rank_batches(position)
        for j in range(position.done, len(batches)):
            yield self.make_batch(batches[j])
