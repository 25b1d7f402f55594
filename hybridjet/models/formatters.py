"""How an event is written out as text for the text-prompt baseline. Pluggable: register new formatters here."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from hybridjet.errors import HybridjetError

# formatter(batch, row) -> the event text of one event
Formatter = Callable[[dict[str, torch.Tensor], int], str]


def compact(batch: dict[str, torch.Tensor], row: int) -> str:
    """Fair default: rounded pT, η, m (GeV) per jet, the jets' azimuthal separation and the particle count.

    The same information as the hybrid's ``fourvec`` features (an event's absolute φ carries none), e.g.
    ``j1 pt=1523 eta=0.41 m=487 | j2 pt=1234 eta=-0.33 m=98 | dphi=3.05 n=312``.
    """
    kin, mask = batch["kinematics"][row], batch["jet_mask"][row]
    parts = [f"j{j + 1} pt={kin[j, 0]:.0f} eta={kin[j, 1]:.2f} m={kin[j, 3]:.0f}"
             for j in range(len(mask)) if bool(mask[j])]
    tail = f"n={int(batch['n_particles'][row])}"
    if len(mask) > 1 and bool(mask[0]) and bool(mask[1]):
        dphi = abs((float(kin[1, 2]) - float(kin[0, 2]) + math.pi) % (2 * math.pi) - math.pi)
        tail = f"dphi={dphi:.2f} {tail}"
    return " | ".join(parts + [tail])


def predecessor(batch: dict[str, torch.Tensor], row: int) -> str:
    """The Mistral-7B notebook's format: each jet's px, py, pz, E with 10 decimals, then the particle count."""
    jets, mask = batch["jets"][row].double(), batch["jet_mask"][row]
    parts = [
        f"Jet {j + 1}: px={jets[j, 0]:.10f}, py={jets[j, 1]:.10f}, pz={jets[j, 2]:.10f}, E={jets[j, 3]:.10f}."
        for j in range(len(mask)) if bool(mask[j])
    ]
    return " ".join(parts + [f"Number of particles: {int(batch['n_particles'][row])}."])


FORMATTERS: dict[str, Formatter] = {"compact": compact, "predecessor": predecessor}

# The predecessor wrapped its prompt in Mistral's instruction tags instead of the tokenizer's chat template.
PREDECESSOR_TEMPLATE = "[INST] Classify this collider event as signal or background. {event} [/INST]"


def get_formatter(name: str) -> Formatter:
    """The formatter registered as ``name``."""
    if name not in FORMATTERS:
        raise HybridjetError(f"formatter: expected one of {', '.join(FORMATTERS)}, got {name!r}")
    return FORMATTERS[name]
