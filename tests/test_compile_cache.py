import numpy as np
import pytest
import torch

from hybridjet import compile_cache
from hybridjet.data.features import Normalizer
from hybridjet.train.classifiers import HybridClassifier


@pytest.fixture()
def run_dir(tiny_llama, tmp_path):
    """An (untrained) hybrid run directory: all from_pretrained needs."""
    torch.manual_seed(0)
    model = HybridClassifier.from_settings(model=str(tiny_llama), quantization="none", dtype="fp32", torch_compile=False)
    names = [f"f{i}" for i in range(5)]
    model.normalizer = Normalizer.fit(np.random.default_rng(0).normal(size=(100, 5)).astype(np.float32), names)
    model.build(5)
    model.save_run(tmp_path / "run")
    return tmp_path / "run"


def _compile_and_score(run_dir, tiny_llama, features, cache_dir, monkeypatch):
    """Load the run compiled, in a fresh local compile cache and a reset Dynamo, score; the inductor counters."""
    import torch._dynamo
    from torch._dynamo.utils import counters

    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(cache_dir))
    torch._dynamo.reset()
    counters.clear()
    model = HybridClassifier.from_pretrained(run_dir, model=str(tiny_llama), torch_compile=True)
    probs = model.predict_proba(features, batch_size=8)
    return probs, dict(counters["inductor"]), model


def _kept(run_dir):
    """The artifact files this machine's cache keeps for ``run_dir``."""
    return sorted((compile_cache.artifact_folder(run_dir, torch.device("cpu")).parent).glob("*/*.bin"))


@pytest.fixture(autouse=True)
def hybridjet_cache(tmp_path, monkeypatch):
    """Each test's own hybridjet cache root (where kept kernels go)."""
    monkeypatch.setenv("HYBRIDJET_CACHE", str(tmp_path / "hybridjet-cache"))
    return tmp_path / "hybridjet-cache"


def test_a_run_keeps_its_compiled_kernels_and_a_fresh_process_reads_them(run_dir, tiny_llama, tmp_path, monkeypatch):
    features = np.random.default_rng(1).normal(size=(16, 5)).astype(np.float32)
    first, built, model = _compile_and_score(run_dir, tiny_llama, features, tmp_path / "cache_a", monkeypatch)
    kept = _kept(run_dir)
    assert built.get("fxgraph_cache_miss", 0) > 0 and kept == [model.compiled_artifacts_kept]
    assert model.compiled_artifacts_read == 0
    assert not (run_dir / compile_cache.COMPILE_CACHE_DIR).exists(), "kernels were written into the run directory"
    np.testing.assert_allclose(model.predict_proba(features, batch_size=8), first)  # warm: nothing new to keep
    assert not compile_cache._recorded_new_artifacts() and model.save_compiled_artifacts() is None
    assert kept[0].parent.name == compile_cache.software_key(model.compiled_device())  # e.g. torch2.13.0+cpu_cpu

    # empty torch caches (a new node sharing the home directory): the kept artifacts loaded before compiling
    again, read, model = _compile_and_score(run_dir, tiny_llama, features, tmp_path / "cache_b", monkeypatch)
    assert read.get("fxgraph_cache_hit", 0) > 0 and read.get("fxgraph_cache_miss", 0) == 0
    assert model.compiled_artifacts_read > 0 and model.compiled_artifacts_kept is None
    np.testing.assert_allclose(again, first, atol=1e-6)
    assert _kept(run_dir) == kept  # nothing new to keep

    # turned off: nothing read, so a third fresh cache compiles again
    monkeypatch.setenv(compile_cache.COMPILE_CACHE_ENV, "0")
    _, off, _ = _compile_and_score(run_dir, tiny_llama, features, tmp_path / "cache_c", monkeypatch)
    assert off.get("fxgraph_cache_miss", 0) > 0


def test_a_received_run_directory_runs_no_code(run_dir, tiny_llama, tmp_path, monkeypatch):
    """Compiled artifacts are pickles and generated code: ones found inside a run directory (as a run someone sent
    could carry) are never loaded, only this machine's own cache is."""
    import shutil

    features = np.random.default_rng(1).normal(size=(16, 5)).astype(np.float32)
    monkeypatch.setenv("HYBRIDJET_CACHE", str(tmp_path / "sender"))
    _compile_and_score(run_dir, tiny_llama, features, tmp_path / "cache_a", monkeypatch)
    (artifact,) = _kept(run_dir)
    shipped = run_dir / compile_cache.COMPILE_CACHE_DIR / artifact.parent.name
    shipped.mkdir(parents=True, exist_ok=True)
    shutil.copy(artifact, shipped / artifact.name)

    monkeypatch.setenv("HYBRIDJET_CACHE", str(tmp_path / "receiver"))
    _, counts, model = _compile_and_score(run_dir, tiny_llama, features, tmp_path / "cache_b", monkeypatch)
    assert model.compiled_artifacts_read == 0 and counts.get("fxgraph_cache_hit", 0) == 0


def test_damaged_artifacts_cost_a_compilation_not_the_scores(run_dir, tiny_llama, tmp_path, monkeypatch):
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")  # where the run loads
    folder = compile_cache.artifact_folder(run_dir, device)
    folder.mkdir(parents=True)
    (folder / "0000.bin").write_bytes(b"not an artifact file")
    features = np.random.default_rng(1).normal(size=(16, 5)).astype(np.float32)
    probs, _, model = _compile_and_score(run_dir, tiny_llama, features, tmp_path / "cache", monkeypatch)
    assert probs.shape == (16,) and np.isfinite(probs).all() and model.compiled_device().type == device.type
    assert model.compiled_artifacts_read == 0


def test_a_cache_that_cannot_keep_kernels_still_scores(run_dir, tiny_llama, tmp_path, monkeypatch, caplog,
                                                      hybridjet_cache):
    """A cache the artifacts cannot be written into (here its ``compiled`` is a file; read-only caches alike):
    the scores come back, a warning says the kernels were not kept, nothing is written."""
    hybridjet_cache.mkdir(parents=True)
    (hybridjet_cache / compile_cache.COMPILE_CACHE_DIR).write_text("not a folder")
    features = np.random.default_rng(1).normal(size=(16, 5)).astype(np.float32)
    with caplog.at_level("WARNING", logger=compile_cache.__name__):
        probs, _, model = _compile_and_score(run_dir, tiny_llama, features, tmp_path / "cache", monkeypatch)
    assert probs.shape == (16,) and np.isfinite(probs).all() and model.compiled_artifacts_kept is None
    assert "compiled artifacts not saved" in caplog.text
    assert (hybridjet_cache / compile_cache.COMPILE_CACHE_DIR).read_text() == "not a folder"
