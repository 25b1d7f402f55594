"""Numeric encoder: normalised event features -> k soft-prompt vectors in the LLM's embedding space."""

from __future__ import annotations

import torch
from torch import nn


class ResidualBlock(nn.Module):
    """Pre-norm residual MLP block."""

    def __init__(self, width: int, dropout: float) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.LayerNorm(width), nn.Linear(width, 2 * width), nn.GELU(), nn.Dropout(dropout), nn.Linear(2 * width, width)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.net(x)


class SoftPromptEncoder(nn.Module):
    """Residual MLP over event features producing ``n_tokens`` vectors of size ``embed_dim``.

    Each output token is RMS-normalised and scaled by a learned gain initialised to the RMS of the LLM's own
    token embeddings, so soft tokens start on the same scale as the words around them.
    """

    def __init__(
        self,
        n_features: int,
        n_tokens: int,
        embed_dim: int,
        hidden: int = 256,
        layers: int = 3,
        dropout: float = 0.1,
        embed_rms: float = 1.0,
    ) -> None:
        super().__init__()
        self.n_tokens, self.embed_dim = n_tokens, embed_dim
        self.stem = nn.Linear(n_features, hidden)
        self.blocks = nn.Sequential(*[ResidualBlock(hidden, dropout) for _ in range(max(layers - 1, 0))])
        self.norm = nn.LayerNorm(hidden)
        self.project = nn.Linear(hidden, n_tokens * embed_dim)
        self.token_offset = nn.Parameter(torch.randn(n_tokens, embed_dim) * 0.02)
        self.gain = nn.Parameter(torch.full((n_tokens, 1), float(embed_rms)))

    def trunk(self, features: torch.Tensor) -> torch.Tensor:
        """[B, F] features -> [B, hidden] event representation (before the projection to soft tokens)."""
        return self.norm(self.blocks(self.stem(features)))

    def tokens(self, h: torch.Tensor) -> torch.Tensor:
        """[B, hidden] event representation -> [B, n_tokens, embed_dim] soft tokens."""
        tokens = self.project(h).view(-1, self.n_tokens, self.embed_dim) + self.token_offset
        rms = tokens.pow(2).mean(dim=-1, keepdim=True).add(1e-6).rsqrt()
        return tokens * rms * self.gain

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """[B, F] features -> [B, n_tokens, embed_dim] soft tokens (float32)."""
        return self.tokens(self.trunk(features))
