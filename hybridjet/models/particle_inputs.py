"""The ``particles`` feature set's normalised columns as the sequence a particle network reads: one row per
constituent slot of every jet (jet 1's P slots, then jet 2's, ...), its normalised features and which jet it is in,
its massless four-vector in one frame for the event, and a mask of the slots that hold a particle."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from hybridjet.data.features import JET_FIELDS, Normalizer, ParticleLayout
from hybridjet.data.store import CONSTITUENT_FEATURES

_LOG_PT, _DETA, _DPHI = (CONSTITUENT_FEATURES.index(n) for n in ("log_pt", "deta", "dphi"))
_JET_ETA, _JET_DPHI = JET_FIELDS.index("eta"), JET_FIELDS.index("dphi")


@dataclass
class ParticleSequence:
    """A batch of events as particle sequences of length N = J × P."""

    features: torch.Tensor  # [B, N, 7 + J] normalised constituent features, then the jet's one-hot index
    jets: torch.Tensor  # [B, J, jet fields] the jets' normalised features
    four_vectors: torch.Tensor  # [B, N, 4] px, py, pz, E (GeV, massless) in the frame of jet 1's azimuth
    eta_phi: torch.Tensor  # [B, N, 2] η and φ in that frame
    mask: torch.Tensor  # [B, N] bool, the slots that hold a particle


class ParticleInputs(nn.Module):
    """Turns normalised ``particles`` features [B, F] into a :class:`ParticleSequence`; the training split's
    normalisation (recorded with the run) is undone for the four-vectors, which pairwise features need in GeV."""

    def __init__(self, names: list[str], normalizer: Normalizer) -> None:
        super().__init__()
        self.layout = ParticleLayout.of(names)
        self.register_buffer("mean", torch.as_tensor(normalizer.mean, dtype=torch.float32), persistent=False)
        self.register_buffer("std", torch.as_tensor(normalizer.std, dtype=torch.float32), persistent=False)

    @property
    def n_jets(self) -> int:
        return self.layout.n_jets

    @property
    def n_particles(self) -> int:
        """N, the sequence length: every constituent slot of every jet."""
        return self.layout.n_jets * self.layout.n_constituents

    @property
    def width(self) -> int:
        """Features per sequence row."""
        return len(CONSTITUENT_FEATURES) + self.layout.n_jets

    @property
    def jet_width(self) -> int:
        """Features per jet."""
        return len(self.layout.jet_fields)

    def forward(self, features: torch.Tensor) -> ParticleSequence:
        b, j, p = features.shape[0], self.layout.n_jets, self.layout.n_constituents
        jets, cons, present = self.layout.split(features)
        raw_jets, raw_cons, _ = self.layout.split(features * self.std + self.mean)
        mask = present > 0.5
        which = torch.eye(j, device=features.device, dtype=features.dtype)[:, None, :].expand(j, p, j)
        rows = torch.cat([cons, which.expand(b, j, p, j)], dim=-1).masked_fill(~mask[..., None], 0.0)
        pt = torch.exp(raw_cons[..., _LOG_PT].clamp(max=12.0))
        eta = raw_jets[..., _JET_ETA, None] + raw_cons[..., _DETA]
        phi = raw_jets[..., _JET_DPHI, None] + raw_cons[..., _DPHI]
        vectors = torch.stack([pt * torch.cos(phi), pt * torch.sin(phi), pt * torch.sinh(eta), pt * torch.cosh(eta)],
                              dim=-1).masked_fill(~mask[..., None], 0.0)
        eta_phi = torch.stack([eta, phi], dim=-1).masked_fill(~mask[..., None], 0.0)
        n = j * p
        return ParticleSequence(rows.reshape(b, n, -1), jets, vectors.reshape(b, n, 4), eta_phi.reshape(b, n, 2),
                                mask.reshape(b, n))


def present_first(seq: ParticleSequence) -> ParticleSequence:
    """The same particles with every sequence's present slots first, in their order (networks that are blind to
    order, such as ParT and ParticleNet, cut a batch's trailing padding this way)."""
    slots = seq.mask.shape[1]
    # a key unique per slot, so that an ordinary sort keeps the order (a stable sort does not export to ONNX); in
    # float32, exact for any slot count that fits (at most 2 x 700)
    key = (~seq.mask).float() * slots + torch.arange(slots, device=seq.mask.device, dtype=torch.float32)
    order = torch.argsort(key, dim=1)

    def take(x: torch.Tensor) -> torch.Tensor:
        return torch.gather(x, 1, order[..., None].expand(-1, -1, x.shape[-1]))

    return ParticleSequence(take(seq.features), seq.jets, take(seq.four_vectors), take(seq.eta_phi),
                            torch.gather(seq.mask, 1, order))


def lorentz_pairs(pt_a: torch.Tensor, eta_a: torch.Tensor, phi_a: torch.Tensor, pt_b: torch.Tensor,
                  eta_b: torch.Tensor, phi_b: torch.Tensor, eps: float = 1e-8) -> tuple[torch.Tensor, ...]:
    """ParT's pairwise features of massless particles a and b (broadcast): ln Δ, ln kT, ln z, ln m², with Δ the
    (η, φ) distance, kT = min(pT) Δ, z = min(pT) / (pT_a + pT_b) and m² = 4 pT_a pT_b (sinh²(Δη/2) + sin²(Δφ/2)).

    m² in this form has no cancellation: from four-vectors, E² − |p|² of a collinear pair loses it to float32
    rounding (docs/HISTORY.md, 2026-12-07)."""
    deta, dphi = eta_a - eta_b, phi_a - phi_b
    wrapped = (dphi + torch.pi) % (2 * torch.pi) - torch.pi
    delta = torch.sqrt(deta**2 + wrapped**2)
    low = torch.minimum(pt_a, pt_b)
    m2 = 4 * pt_a * pt_b * (torch.sinh(deta / 2) ** 2 + torch.sin(dphi / 2) ** 2)
    return (torch.log(delta.clamp(min=eps)), torch.log((low * delta).clamp(min=eps)),
            torch.log((low / (pt_a + pt_b).clamp(min=eps)).clamp(min=eps)), torch.log(m2.clamp(min=eps)))


def weaver_pair_features(xi: torch.Tensor, xj: torch.Tensor) -> torch.Tensor:
    """What weaver's ParT computes from the four-vectors (px, py, pz, E) [B, 4, K] of pairs' two particles, [B, 4, K]
    in its order (ln kT, ln z, ln Δ, ln m²), by :func:`lorentz_pairs` (massless: rapidity = η)."""

    def pt_eta_phi(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        px, py, pz = x[:, 0:1], x[:, 1:2], x[:, 2:3]
        pt = torch.sqrt(px**2 + py**2)  # (torch.hypot does not export to ONNX)
        return pt, torch.asinh(pz / pt.clamp(min=1e-20)), torch.atan2(py, px)

    ln_delta, ln_kt, ln_z, ln_m2 = lorentz_pairs(*pt_eta_phi(xi), *pt_eta_phi(xj))
    return torch.cat([ln_kt, ln_z, ln_delta, ln_m2], dim=1)


def pair_features(seq: ParticleSequence, eps: float = 1e-8) -> tuple[torch.Tensor, torch.Tensor]:
    """ParT's pairwise interaction features of every pair of slots, [B, N, N, 4]: ln Δ, ln kT, ln z, ln m²
    (:func:`lorentz_pairs`), and the [B, N, N] mask of pairs of two present, distinct particles."""
    v, (eta, phi) = seq.four_vectors.float(), seq.eta_phi.float().unbind(-1)
    pt = torch.sqrt(v[..., 0] ** 2 + v[..., 1] ** 2)
    features = torch.stack(lorentz_pairs(pt[:, :, None], eta[:, :, None], phi[:, :, None], pt[:, None, :],
                                         eta[:, None, :], phi[:, None, :], eps), dim=-1)
    n = seq.mask.shape[1]
    mask = seq.mask[:, :, None] & seq.mask[:, None, :] & ~torch.eye(n, dtype=torch.bool, device=v.device)
    return features.masked_fill(~mask[..., None], 0.0), mask
