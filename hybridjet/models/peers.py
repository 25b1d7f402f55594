"""The particle-level peers the hybrid on constituents is measured against, trained by the same recipe on the same
``particles`` inputs: ParT and ParticleNet (weaver-core's own model classes, used as a library) and a Deep Sets /
Particle Flow Network (:mod:`hybridjet.models.deepsets`). A peer is one record of :data:`PEERS`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from hybridjet import checks
from hybridjet.data.features import Normalizer, get_feature_set
from hybridjet.errors import HybridjetError
from hybridjet.models.config import ArchConfig
from hybridjet.models.deepsets import ParticleFlowNetwork
from hybridjet.models.particle_inputs import (
    ParticleInputs,
    ParticleSequence,
    present_first,
    weaver_pair_features,
)
from hybridjet.runtime import Runtime


def _weaver(name: str) -> Any:
    """A model class of weaver-core, or one line saying how to install it."""
    try:
        if name == "ParticleTransformer":
            from weaver.nn.model.ParticleTransformer import ParticleTransformer as cls
        else:
            from weaver.nn.model.ParticleNet import ParticleNet as cls
    except ImportError as err:
        raise HybridjetError(f"{name} comes from weaver-core: pip install --no-deps weaver-core==0.5.3 (its model "
                             f"classes need torch only; scripts/setup_env.sh installs it); import failed: {err}") from None
    return cls


class _ParT(nn.Module):
    """ParT (Qu, Li, Qian, ICML 2022): particle self-attention with the pairwise Lorentz features (ln Δ, ln kT, ln z,
    ln m²) of every pair as attention biases, class-attention blocks, one logit."""

    def __init__(self, n_inputs: int, c: PeerConfig, n_outputs: int = 1) -> None:
        super().__init__()
        self.net = _weaver("ParticleTransformer")(
            input_dim=n_inputs, num_classes=n_outputs, pair_input_dim=4, embed_dims=(c.width, 4 * c.width, c.width),
            pair_embed_dims=(c.width // 2,) * 3, num_heads=c.heads, num_layers=c.depth, num_cls_layers=2,
            block_params={"dropout": c.dropout, "attn_dropout": c.dropout, "activation_dropout": c.dropout},
            fc_params=())
        # the same four pair features, computed without weaver's E² − |p|² cancellation (lorentz_pairs)
        self.net.pair_embed.pairwise_lv_fts = weaver_pair_features

    def forward(self, seq: ParticleSequence) -> torch.Tensor:
        seq = present_first(seq)
        # an event without a particle (no jet passed the cuts) leaves the particle attention nothing to attend to:
        # fused attention returns zeros, the matrix products of the export path NaN. It reads its first, empty slot
        # (zero features, a zero four-vector) as its one particle, the same on both paths
        no_particle = ~seq.mask.any(dim=1, keepdim=True)
        first = torch.arange(seq.mask.shape[1], device=seq.mask.device) == 0
        mask = (seq.mask | (no_particle & first))[:, None, :]
        out = self.net(seq.features.transpose(1, 2), v=seq.four_vectors.transpose(1, 2), mask=mask)
        return out.squeeze(-1) if out.shape[-1] == 1 else out


class _ParticleNet(nn.Module):
    """ParticleNet (Qu, Gouskos, PRD 101 (2020) 056019): EdgeConv blocks over k-nearest neighbours, first in (η, φ),
    then in the learned features; global average pooling, one logit. Every sequence keeps its full length (weaver's
    trimming to a batch's longest event would leave fewer than k + 1 slots in a batch of small events)."""

    def __init__(self, n_inputs: int, c: PeerConfig, n_outputs: int = 1) -> None:
        super().__init__()
        convs = [(c.neighbours, (c.width * 2**i,) * 3) for i in range(c.depth)]
        self.net = _weaver("ParticleNet")(input_dims=n_inputs, num_classes=n_outputs, conv_params=convs,
                                          fc_params=[(4 * c.width, c.dropout)], use_fusion=True, trim=False)

    def forward(self, seq: ParticleSequence) -> torch.Tensor:
        seq = present_first(seq)
        mask = seq.mask[:, None, :].to(seq.features.dtype)
        out = self.net(seq.eta_phi.transpose(1, 2), seq.features.transpose(1, 2), mask=mask)
        return out.squeeze(-1) if out.shape[-1] == 1 else out


#: the PFN's latent dimension (Komiske et al.'s ℓ)
LATENT = 128


class _DeepSets(nn.Module):
    def __init__(self, n_inputs: int, c: PeerConfig, n_outputs: int = 1) -> None:
        super().__init__()
        width, depth = c.sizes()
        self.net = ParticleFlowNetwork(n_inputs, (width,) * (depth - 1) + (LATENT,), (width,) * depth, c.dropout,
                                       n_outputs)

    def forward(self, seq: ParticleSequence) -> torch.Tensor:
        return self.net(seq.features, seq.mask)


@dataclass(frozen=True)
class PeerRecord:
    """One peer: how it is built from (input width, config, outputs: 1 for a logit, more for a summary vector) and
    its sizes by default (the paper's)."""

    build: Callable[[int, PeerConfig, int], nn.Module]
    width: int
    depth: int
    description: str


#: every peer, by name: the one place methods, configs and runs read them from
PEERS: dict[str, PeerRecord] = {
    "part": PeerRecord(_ParT, 128, 8, "ParT, weaver-core's ParticleTransformer (8 blocks of 128, pairwise features)"),
    "particlenet": PeerRecord(_ParticleNet, 64, 3, "ParticleNet, weaver-core's (EdgeConv 64/128/256, k=16)"),
    "deepsets": PeerRecord(_DeepSets, 100, 3, "Deep Sets / PFN (Phi 100-100-128, F 100-100-100)"),
}


@dataclass(frozen=True)
class PeerConfig(ArchConfig):
    """A peer's architecture: ``architecture`` (a name of :data:`PEERS`); ``width``, ``depth``: its sizes (``None``:
    the paper's); ``heads`` (ParT), ``neighbours`` (ParticleNet's k), ``dropout``; ``jets``: the jets' own features
    (kinematics, and τ ratios on ``particles_substructure``) join the net's summary of the particles (``width``
    values instead of its logit) in a last MLP, as the hybrid's jet tokens give it them."""

    architecture: str = "part"
    width: int | None = None
    depth: int | None = None
    heads: int = 8
    neighbours: int = 16
    dropout: float = 0.1
    jets: bool = False

    def __post_init__(self) -> None:
        if self.architecture not in PEERS:
            raise HybridjetError(f"architecture: expected one of {', '.join(PEERS)}, got {self.architecture!r}")
        checks.integer("width", self.width, 2, 65536, optional=True)
        checks.integer("depth", self.depth, 1, 64, optional=True)
        checks.integer("heads", self.heads, 1, 256)
        checks.integer("neighbours", self.neighbours, 1, 1024)
        checks.fraction("dropout", self.dropout, include_one=False)
        if not isinstance(self.jets, bool):
            raise HybridjetError(f"jets: expected true or false, got {self.jets!r}")
        if self.architecture == "part" and self.sizes()[0] % self.heads:
            raise HybridjetError(f"width: ParT's width {self.sizes()[0]} must be a multiple of heads {self.heads}")

    def sizes(self) -> tuple[int, int]:
        """(width, depth) as built."""
        record = PEERS[self.architecture]
        return (self.width or record.width, self.depth or record.depth)

    def built(self) -> PeerConfig:
        """This config with its sizes filled in."""
        width, depth = self.sizes()
        return PeerConfig(self.architecture, width, depth, self.heads, self.neighbours, self.dropout, self.jets)


class PeerNet(nn.Module):
    """A peer over the ``particles`` features: normalised columns [B, F] -> particle sequence -> logit [B]."""

    def __init__(self, config: PeerConfig, runtime: Runtime | None = None) -> None:
        super().__init__()
        self.config, self.runtime = config, runtime or Runtime()
        self.inputs: ParticleInputs | None = None
        self.model: nn.Module | None = None
        self.jet_head: nn.Module | None = None

    def build(self, n_features: int, feature_set: str | None, names: list[str] | None,
              normalizer: Normalizer | None) -> None:
        """Create the layers for the ``particles`` columns ``names`` (once)."""
        if self.model is not None:
            return
        if feature_set is None or not get_feature_set(feature_set).needs_constituents or names is None or \
                normalizer is None:
            raise HybridjetError(f"{self.config.architecture}: reads jet constituents; expected feature_set "
                                 f"'particles', got {feature_set!r}")
        self.inputs = ParticleInputs(names, normalizer)
        if self.config.architecture == "particlenet" and self.config.neighbours >= self.inputs.n_particles:
            raise HybridjetError(f"neighbours: ParticleNet's k = {self.config.neighbours} needs more than k constituent "
                                 f"slots per event; the events hold {self.inputs.n_particles} (expected k < "
                                 f"{self.inputs.n_particles}, or more constituents per jet)")
        built = self.config.built()
        if not built.jets:
            self.model = PEERS[built.architecture].build(self.inputs.width, built, 1)
            return
        width = built.sizes()[0]
        self.model = PEERS[built.architecture].build(self.inputs.width, built, width)
        self.jet_head = nn.Sequential(nn.ReLU(), nn.Linear(width + self.inputs.n_jets * self.inputs.jet_width, width),
                                      nn.ReLU(), nn.Dropout(built.dropout), nn.Linear(width, 1))

    def prepare_export(self) -> None:
        """Run as torch's ONNX exporter can trace, with the same scores: every sequence at its full length (weaver's
        trimming cuts a batch's trailing padding by a length that depends on the data), ParT's pair embedding over
        all pairs (its sparse path gathers the present pairs, a data-dependent shape) and its attention as matrix
        products (the exporter's decomposition of fused attention fails on weaver's layout)."""
        for module in self.modules():
            kind = type(module).__name__
            if kind == "SequenceTrimmer":
                module.enabled = False
            elif kind == "PairEmbed":
                module.sparse_eval = (False, False)
            elif hasattr(module, "use_sdpa"):
                module.use_sdpa = False

    def forward(self, features: torch.Tensor, plain: bool = False) -> torch.Tensor:
        """Logits [B] of normalised ``particles`` features [B, F] (``plain``: as an ONNX export traces it; the same
        path, the nets having no execution plans)."""
        if self.inputs is None or self.model is None:
            raise HybridjetError("model: not built yet (train it or load a run with hybridjet.load_run)")
        seq = self.inputs(features)
        if self.jet_head is None:
            return self.model(seq)
        summary = torch.cat([self.model(seq), seq.jets.flatten(1).to(features.dtype)], dim=-1)
        return self.jet_head(summary).squeeze(-1)
