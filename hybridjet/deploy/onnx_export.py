"""A finished run as one ONNX model, for experiment software that runs onnxruntime: raw event features in (float32
[N, F], the run's feature set as :func:`hybridjet.data.features.event_features` computes them, in the order the
model's metadata lists), the signal probability out ([N]); the run's normalisation is inside the graph.

What exports: the trees (an ``ai.onnx.ml`` TreeEnsemble built from the run's node arrays, thresholds in double
precision as the run compares them), the encoder-only ablation and the hybrid (torch's exporter; the hybrid's LLM in
its dense float32 form with LoRA merged, the sequence read in one call). The text baseline does not: it writes each
event's numbers as text and tokenizes it inside the model, and ONNX has no tokenizer."""

from __future__ import annotations

import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hybridjet import __version__
from hybridjet.errors import HybridjetError, OutputPathError
from hybridjet.io_utils import check_writable

INPUT_NAME, OUTPUT_NAME = "features", "probability"
PRODUCER = "hybridjet"
#: the ONNX operator set the nets are exported with (onnxruntime 1.17 and later run it)
OPSET = 18
ONNX_WHAT = "an ONNX model hybridjet exported"
#: the most onnxruntime's probabilities may differ from the run's (float32 through a transformer: ~1e-6)
TOLERANCE = 1e-4


@dataclass(frozen=True)
class OnnxExport:
    """What :func:`export_onnx` wrote: the file, the run's kind, its input features, and how closely onnxruntime
    reproduced the run's own probabilities on sampled inputs (``None`` without onnxruntime)."""

    path: Path
    kind: str
    feature_set: str
    features: tuple[str, ...]
    max_abs_diff: float | None


def is_hybridjet_onnx(path: Path) -> bool:
    """Whether ``path`` is an ONNX model this module wrote (the only kind of file an export replaces)."""
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception:  # noqa: BLE001 - any unreadable file is not ours
        return False
    return model.producer_name == PRODUCER


def export_onnx(run_dir: str | os.PathLike[str], out: str | os.PathLike[str], model: str | None = None,
                check_events: int = 256) -> OnnxExport:
    """Export the run in ``run_dir`` to ``out``; ``model`` is the base LLM when the run's recorded one is not on this
    machine. With onnxruntime installed, ``check_events`` sampled feature rows are scored both ways first, and an
    export that differs from the run by more than :data:`TOLERANCE` is refused; only then is ``out`` written (by a
    rename; an existing file only if hybridjet exported it, a large model's weights in ``<out>.data`` beside it)."""
    from hybridjet.api import load_run
    from hybridjet.run import read_run_metadata

    _require("onnx")
    record = read_run_metadata(run_dir)
    kind = str(record.get("model", record.get("class", "?")))
    if kind == "text":
        raise HybridjetError(f"{run_dir}: a text-baseline run cannot be exported to ONNX (it writes the numbers as "
                             "text and tokenizes them inside the model; ONNX has no tokenizer); expected a gbdt, "
                             "ablation or hybrid run")
    trees = record.get("class") == "GradientBoostedTrees"
    if not trees:
        _require("onnxscript")  # torch's exporter: checked before a model loads
    out = Path(out)
    check_writable(out, inputs=(Path(run_dir) / "model.json",), replaces=is_hybridjet_onnx, what=ONNX_WHAT)
    data = out.parent / (out.name + ".data")
    if data.exists() and not (out.is_file() and is_hybridjet_onnx(out)):
        raise OutputPathError(data, "exists beside an output hybridjet did not export; it would be replaced by the "
                                    "model's weights: choose another name or move it away")
    clf = load_run(run_dir, model=model)
    if clf.normalizer is None or clf.feature_set is None:
        raise HybridjetError(f"{run_dir}: the run records no feature set and normalisation; expected a finished run")
    names = tuple(clf.normalizer.names)
    if trees:
        from hybridjet.deploy.onnx_trees import trees_model

        onnx_model = trees_model(clf.trees, clf.normalizer)
        kind = "gbdt"
    else:
        kind = clf.model_kind if clf.model_kind != "hybrid" else \
            "hybrid" if clf.net.llm is not None else "ablation"
        onnx_model = _net_model(clf, len(names))
    _describe(onnx_model, run_dir, kind, clf.feature_set, names)
    diff = _save_checked(onnx_model, out, clf, check_events if _has("onnxruntime") else 0)
    return OnnxExport(out, kind, clf.feature_set, names, diff)


def _require(module: str) -> None:
    if not _has(module):
        raise HybridjetError(f"export-onnx needs {module} (pip install 'hybridjet[onnx]')")


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def _net_model(clf: Any, n_features: int) -> Any:
    """The ablation's or the hybrid's ONNX graph: normalisation, the net (its plain path), sigmoid."""
    _require("onnxscript")
    if getattr(clf.net, "backbone", None) is not None:
        clf = clf.to("cpu").densify_for_inference(torch.float32)
    if hasattr(clf.net, "prepare_export"):
        clf.net.prepare_export()
    wrapper = _Probability(clf.net, clf.normalizer).eval()
    example = torch.from_numpy(_sample_features(clf.normalizer, 4, seed=0))
    batch = torch.export.Dim.DYNAMIC
    # the exporter's notes of operators it skips (torchvision's, absent here) are not the user's concern
    logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        try:
            program = torch.onnx.export(wrapper, (example,), dynamo=True, opset_version=OPSET,
                                        dynamic_shapes={INPUT_NAME: {0: batch}}, input_names=[INPUT_NAME],
                                        output_names=[OUTPUT_NAME], verbose=False)
        except Exception as err:  # noqa: BLE001 - torch's exporter raises many kinds; one line says which
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise HybridjetError(f"export-onnx: torch's ONNX exporter could not take this run's net "
                                 f"({type(err).__name__}: {first[:200]})") from None
    return program.model_proto


class _Probability(torch.nn.Module):
    """Raw features [N, F] -> signal probability [N]: the run's normalisation, the net's plain path, sigmoid."""

    def __init__(self, net: torch.nn.Module, normalizer: Any) -> None:
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.from_numpy(np.asarray(normalizer.mean, np.float32)))
        self.register_buffer("std", torch.from_numpy(np.asarray(normalizer.std, np.float32)))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.net((features - self.mean) / self.std, plain=True).float())


def _sample_features(normalizer: Any, n: int, seed: int) -> np.ndarray:
    """Plausible raw feature rows: the training split's mean plus Gaussian steps of its standard deviation."""
    rng = np.random.default_rng(seed)
    mean, std = np.asarray(normalizer.mean, np.float32), np.asarray(normalizer.std, np.float32)
    return (mean + std * rng.standard_normal((n, len(mean))).astype(np.float32)).astype(np.float32)


def _describe(onnx_model: Any, run_dir: Any, kind: str, feature_set: str, names: tuple[str, ...]) -> None:
    """Name the producer and record what the input is, so that the file says how to feed it."""
    onnx_model.producer_name, onnx_model.producer_version = PRODUCER, str(__version__)
    props = {"hybridjet.run": str(run_dir), "hybridjet.kind": kind, "hybridjet.feature_set": feature_set,
             "hybridjet.features": ",".join(names),
             "hybridjet.input": "raw event features (hybridjet.data.features.event_features), float32 [N, F], in "
                                "the order of hybridjet.features; the normalisation is inside the model",
             "hybridjet.output": "signal probability [N]"}
    del onnx_model.metadata_props[:]
    for key, value in props.items():
        entry = onnx_model.metadata_props.add()
        entry.key, entry.value = key, value


def _save_checked(onnx_model: Any, out: Path, clf: Any, check_events: int) -> float | None:
    """Write the model into a folder of its own beside ``out`` (one file, or past protobuf's 2 GB limit the weights
    in ``<out>.data`` too), check it against the run on ``check_events`` rows (0: no check), then move it into
    place; returns the largest difference. Nothing is left behind on failure."""
    import shutil
    import tempfile

    import onnx

    large = onnx_model.ByteSize() > 1_800_000_000
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        model_file = staging / out.name
        if large:  # the weights' path is relative to the model's folder: the same name once moved
            onnx.save_model(onnx_model, str(model_file), save_as_external_data=True, all_tensors_to_one_file=True,
                            location=out.name + ".data")
        else:
            onnx.save_model(onnx_model, str(model_file))
        diff = _check_against_run(clf, model_file, check_events) if check_events else None
        if diff is not None and not diff <= TOLERANCE:
            raise HybridjetError(f"export-onnx: onnxruntime's probabilities differ from the run's by {diff:.2e} "
                                 f"(more than {TOLERANCE:g}) on sampled inputs; the export is not written")
        if large:
            (staging / (out.name + ".data")).replace(out.parent / (out.name + ".data"))
        model_file.replace(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return diff


def _check_against_run(clf: Any, out: Path, n: int) -> float:
    """The largest |onnxruntime − predict_proba| over ``n`` sampled feature rows."""
    import onnxruntime as ort

    x = _sample_features(clf.normalizer, n, seed=1)
    try:
        session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
        got = session.run([OUTPUT_NAME], {INPUT_NAME: x})[0]
    except Exception as err:  # noqa: BLE001 - onnxruntime's errors are many kinds; one line says which
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise HybridjetError(f"export-onnx: onnxruntime cannot run the exported model ({first[:200]}); the export "
                             "is not written") from None
    want = clf.predict_proba(x)
    return float(np.abs(np.asarray(got, np.float64) - want).max()) if n else 0.0
