"""Installs are reproducible and the extras honest: what runs the tests is what constraints.txt pins, the package's
lower bounds hold for the pinned versions, and a run scores with none of the optional dependencies installed."""

from __future__ import annotations

import importlib.metadata
import os
import re
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
#: the packages each extra adds (their own dependencies come with them); absent, a run must still load and score
OPTIONAL = ("pythia8mc", "fastjet", "awkward", "awkward_cpp", "hdf5plugin", "scikit_learn", "sklearn", "matplotlib",
            "rouge_score", "pandas", "tables", "pyarrow", "datasets", "dask", "distributed")


def _pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, version = line.split("==")
            pins[re.sub(r"[-_.]+", "-", name).lower()] = version.strip()
    return pins


def test_the_environment_is_what_constraints_pins():
    pins = _pins()
    site = [sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]]  # not setuptools' vendored copies
    installed = {re.sub(r"[-_.]+", "-", d.metadata["Name"]).lower(): d.version
                 for d in importlib.metadata.distributions(path=site)}
    installed.pop("hybridjet", None)
    for tool in ("pip", "setuptools", "wheel"):
        installed.pop(tool, None)
    unpinned = sorted(set(installed) - set(pins))
    assert not unpinned, f"installed but not in constraints.txt (run scripts/lock_env.sh): {unpinned}"
    differ = {n: (v, pins[n]) for n, v in installed.items() if Version(v.split("+")[0]) != Version(pins[n])}
    assert not differ, f"installed versions differ from constraints.txt: {differ}"


def test_the_package_ranges_admit_the_pinned_versions():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = [*project["dependencies"], *(r for extra in project["optional-dependencies"].values() for r in extra)]
    pins = _pins()
    for text in requirements:
        req = Requirement(text)
        name = re.sub(r"[-_.]+", "-", req.name).lower()
        if name == "hybridjet":
            continue
        assert name in pins, f"{req.name} is required but not pinned"
        assert req.specifier.contains(pins[name], prereleases=True), f"{text} excludes the pinned {pins[name]}"
        assert any(s.operator in (">=", "==") for s in req.specifier), f"{text}: no lower bound"


def _core_site(tmp_path: Path) -> Path:
    """A site-packages view of this environment without the optional packages (links to the rest)."""
    site = Path(sysconfig.get_paths()["purelib"])
    core = tmp_path / "core-site"
    core.mkdir()
    for entry in site.iterdir():
        stem = re.split(r"[-.]", entry.name, maxsplit=1)[0].lower()
        if stem in OPTIONAL or entry.name.startswith("__editable__"):
            continue
        (core / entry.name).symlink_to(entry)
    return core


def test_a_run_loads_and_scores_without_the_optional_dependencies(tiny_llama, toy_jets_h5, tmp_path):
    import lightning as L

    from hybridjet.data.datamodule import JetDataModule
    from hybridjet.train.classifiers import HybridClassifier
    from hybridjet.train.recipes import train_classifier

    L.seed_everything(0, verbose=False)
    run_dir = tmp_path / "run"
    model = HybridClassifier.from_settings(model=str(tiny_llama), quantization="none", n_soft_tokens=2)
    train_classifier(model, JetDataModule(str(toy_jets_h5), batch_size=64), run_dir, max_epochs=1, progress=False)
    code = (
        "import importlib.util, sys, hybridjet\n"
        f"missing = [m for m in {list(OPTIONAL)!r} if importlib.util.find_spec(m) is not None]\n"
        "assert not missing, missing\n"
        f"print(len(hybridjet.load_run({str(run_dir)!r}).predict_proba({str(toy_jets_h5)!r})))\n"
        f"assert not [m for m in {list(OPTIONAL)!r} if m in sys.modules]\n"
    )
    env = {**os.environ, "PYTHONPATH": f"{_core_site(tmp_path)}{os.pathsep}{ROOT}"}
    result = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "600"


@pytest.mark.parametrize(("argv", "extra"), [
    (["compare", "RUN", "--out", "REPORT"], "plots"),
    (["cluster", "JETS", "--out", "OUT"], "cluster"),
])
def test_a_command_whose_extra_is_missing_says_which_to_install(argv, extra, toy_jets_h5, tmp_path):
    from hybridjet.data.datamodule import JetDataModule
    from hybridjet.train.recipes import train_gbdt

    run_dir = tmp_path / "gbdt"
    train_gbdt(JetDataModule(str(toy_jets_h5)), run_dir, max_iter=5)
    names = {"RUN": str(run_dir), "REPORT": str(tmp_path / "report"), "JETS": str(toy_jets_h5),
             "OUT": str(tmp_path / "out.h5")}
    env = {**os.environ, "PYTHONPATH": f"{_core_site(tmp_path)}{os.pathsep}{ROOT}"}
    result = subprocess.run([sys.executable, "-S", "-m", "hybridjet.cli", *(names.get(a, a) for a in argv)],
                            capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].endswith(f"pip install 'hybridjet[{extra}]'")
