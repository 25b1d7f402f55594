"""Deep Sets / Particle Flow Network (Zaheer et al. 2017; Komiske, Metodiev, Thaler, JHEP 01 (2019) 121): a shared
per-particle network Φ, a sum over the event's particles, a network F on the sum."""

from __future__ import annotations

import torch
from torch import nn


def _mlp(sizes: list[int], dropout: float, last_activation: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2 or last_activation:
            layers += [nn.ReLU(), nn.Dropout(dropout)]
    return nn.Sequential(*layers)


class ParticleFlowNetwork(nn.Module):
    """PFN: ``phi_sizes`` per particle (the last is the latent dimension), masked sum, ``f_sizes`` then one logit
    (``n_outputs`` values, more than one: a summary for a later layer)."""

    def __init__(self, n_inputs: int, phi_sizes: tuple[int, ...] = (100, 100, 128),
                 f_sizes: tuple[int, ...] = (100, 100, 100), dropout: float = 0.0, n_outputs: int = 1) -> None:
        super().__init__()
        self.phi = _mlp([n_inputs, *phi_sizes], dropout, last_activation=True)
        self.f = _mlp([phi_sizes[-1], *f_sizes, n_outputs], dropout, last_activation=False)

    def forward(self, particles: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """particles [B, N, C], mask [B, N] -> logits [B]."""
        latent = (self.phi(particles) * mask[..., None].to(particles.dtype)).sum(dim=1)
        out = self.f(latent)
        return out.squeeze(-1) if out.shape[-1] == 1 else out
