"""Numeric encoder: normalised event features -> k soft-prompt vectors in the LLM's embedding space."""

from __future__ import annotations

import torch
from torch import nn

from hybridjet.data.features import get_feature_set
from hybridjet.models.particle_inputs import ParticleInputs, pair_features


class ResidualBlock(nn.Module):
    """Pre-norm residual MLP block."""

    def __init__(self, width: int, dropout: float) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.LayerNorm(width), nn.Linear(width, 2 * width), nn.GELU(), nn.Dropout(dropout), nn.Linear(2 * width, width)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.net(x)


NUMERIC_EMBEDDINGS = ("none", "periodic")

def default_periodic_sigma(feature_set: str | None) -> float:
    """The periodic embedding's initial frequency spread for a feature set (``periodic_sigma=None``): its record's
    (:data:`hybridjet.data.features.FEATURE_SETS`); a net built from bare features, with no set, takes fourvec's."""
    return get_feature_set(feature_set or "fourvec").periodic_sigma


class PeriodicEmbedding(nn.Module):
    """Per-feature periodic embedding (Gorishniy et al. 2022, "PLR"): x_f -> ReLU(W_f [cos 2πc_f x_f, sin 2πc_f x_f]).

    Each standardised feature gets its own learned frequencies c_f (initialised ~ N(0, sigma)), so narrow structures
    such as a resonance's mass peak become easy for the MLP behind it to cut on, as trees do.
    """

    def __init__(self, n_features: int, n_frequencies: int = 16, dim: int = 16, sigma: float = 1.0) -> None:
        super().__init__()
        self.frequencies = nn.Parameter(torch.randn(n_features, n_frequencies) * sigma)
        self.weight = nn.Parameter(torch.randn(n_features, 2 * n_frequencies, dim) / (2 * n_frequencies) ** 0.5)
        self.bias = nn.Parameter(torch.zeros(n_features, dim))
        self.out_features = n_features * dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[B, F] -> [B, F * dim]."""
        angle = 2 * torch.pi * x.unsqueeze(-1) * self.frequencies
        periodic = torch.cat([torch.cos(angle), torch.sin(angle)], dim=-1)
        return torch.relu(torch.einsum("bfk,fkd->bfd", periodic, self.weight) + self.bias).flatten(1)


class SoftPromptEncoder(nn.Module):
    """Residual MLP over event features producing ``n_tokens`` vectors of size ``embed_dim``.

    Each output token is RMS-normalised and scaled by a learned gain initialised to the RMS of the LLM's own
    token embeddings, so soft tokens start on the same scale as the words around them.  ``numeric_embedding=
    "periodic"`` puts a :class:`PeriodicEmbedding` in front of the MLP (``"none"``: features enter it directly).
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
        numeric_embedding: str = "none",
        periodic_sigma: float = 1.0,
    ) -> None:
        super().__init__()
        if numeric_embedding not in NUMERIC_EMBEDDINGS:
            raise ValueError(f"numeric_embedding: expected one of {NUMERIC_EMBEDDINGS}, got {numeric_embedding!r}")
        self.n_tokens, self.embed_dim = n_tokens, embed_dim
        self.embed_features: nn.Module = (PeriodicEmbedding(n_features, sigma=periodic_sigma)
                                          if numeric_embedding == "periodic" else nn.Identity())
        width_in = self.embed_features.out_features if numeric_embedding == "periodic" else n_features
        self.stem = nn.Linear(width_in, hidden)
        self.blocks = nn.Sequential(*[ResidualBlock(hidden, dropout) for _ in range(max(layers - 1, 0))])
        self.norm = nn.LayerNorm(hidden)
        self.project = nn.Linear(hidden, n_tokens * embed_dim)
        self.token_offset = nn.Parameter(torch.randn(n_tokens, embed_dim) * 0.02)
        self.gain = nn.Parameter(torch.full((n_tokens, 1), float(embed_rms)))

    def trunk(self, features: torch.Tensor) -> torch.Tensor:
        """[B, F] features -> [B, hidden] event representation (before the projection to soft tokens)."""
        return self.norm(self.blocks(self.stem(self.embed_features(features))))

    def tokens(self, h: torch.Tensor) -> torch.Tensor:
        """[B, hidden] event representation -> [B, n_tokens, embed_dim] soft tokens."""
        tokens = self.project(h).view(-1, self.n_tokens, self.embed_dim) + self.token_offset
        rms = tokens.pow(2).mean(dim=-1, keepdim=True).add(1e-6).rsqrt()
        return tokens * rms * self.gain

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """[B, F] features -> [B, n_tokens, embed_dim] soft tokens (float32)."""
        return self.tokens(self.trunk(features))


class FeatureTokenEncoder(nn.Module):
    """One token per feature for a named-token prompt (each feature's value after its name in words): the feature's
    periodic embedding through a small MLP shared by the features, plus a learned vector per feature, RMS-scaled to
    the LLM's own token embeddings as :class:`SoftPromptEncoder`'s tokens are."""

    def __init__(self, n_features: int, embed_dim: int, hidden: int = 256, dropout: float = 0.1,
                 embed_rms: float = 1.0, periodic_sigma: float = 1.0) -> None:
        super().__init__()
        self.embed_features = PeriodicEmbedding(n_features, sigma=periodic_sigma)
        width = self.embed_features.out_features // n_features
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, embed_dim))
        self.feature_offset = nn.Parameter(torch.randn(n_features, embed_dim) * 0.02)
        self.gain = nn.Parameter(torch.full((n_features, 1), float(embed_rms)))
        self.n_features = n_features

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """[B, F] features -> [B, F, embed_dim] value tokens (float32)."""
        per_feature = self.embed_features(features).view(features.shape[0], self.n_features, -1)
        tokens = self.mlp(per_feature) + self.feature_offset
        rms = tokens.pow(2).mean(dim=-1, keepdim=True).add(1e-6).rsqrt()
        return tokens * rms * self.gain


class ParticleTokenEncoder(nn.Module):
    """One token per jet and one per constituent slot for the hybrid on ``particles``: each jet's features and each
    constituent's (its normalised features and which jet holds it) through an MLP shared by all jets / all
    constituents, RMS-scaled to the LLM's own token embeddings as :class:`SoftPromptEncoder`'s tokens are."""

    def __init__(self, inputs: ParticleInputs, embed_dim: int, hidden: int = 256, dropout: float = 0.1,
                 embed_rms: float = 1.0, pairs: bool = False) -> None:
        super().__init__()
        self.inputs = inputs

        def mlp(width_in: int) -> nn.Sequential:
            return nn.Sequential(nn.Linear(width_in, hidden), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(hidden, hidden), nn.GELU(), nn.Linear(hidden, embed_dim))

        # with ``pairs``: each constituent also sees the mean, over the event's other constituents, of an MLP of
        # their pairwise features (ParT's ln Δ, ln kT, ln z, ln m²)
        self.pair = nn.Sequential(nn.Linear(4, hidden // 4), nn.GELU(), nn.Linear(hidden // 4, hidden // 4)) \
            if pairs else None
        self.particle = mlp(inputs.width + (hidden // 4 if pairs else 0))
        self.jet = mlp(inputs.jet_width)
        self.gain = nn.Parameter(torch.full((2, 1), float(embed_rms)))  # jets', constituents'

    @staticmethod
    def _scaled(tokens: torch.Tensor, gain: torch.Tensor) -> torch.Tensor:
        return tokens * tokens.pow(2).mean(dim=-1, keepdim=True).add(1e-6).rsqrt() * gain

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """[B, F] -> jet tokens [B, J, D], constituent tokens [B, J, P, D], their mask [B, J, P] (float32)."""
        seq = self.inputs(features)
        b, j = features.shape[0], self.inputs.n_jets
        rows = seq.features
        if self.pair is not None:
            pairs, mask = pair_features(seq)
            weight = mask.to(rows.dtype)[..., None]
            summary = (self.pair(pairs.to(rows.dtype)) * weight).sum(2) / weight.sum(2).clamp(min=1.0)
            rows = torch.cat([rows, summary], dim=-1)
        particles = self._scaled(self.particle(rows), self.gain[1]).view(b, j, -1, self.particle[-1].out_features)
        jets = self._scaled(self.jet(seq.jets), self.gain[0])
        return jets, particles, seq.mask.view(b, j, -1)
