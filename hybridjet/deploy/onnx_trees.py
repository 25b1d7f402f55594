"""The trees of a gbdt run as an ONNX graph: ``ai.onnx.ml`` TreeEnsembleRegressor (the operator scikit-learn's
converters emit for the same boosted trees), built from the run's node arrays with thresholds and leaf values in
double precision, so that a row goes down the same branch as in :meth:`TreeEnsemble.raw`."""

from __future__ import annotations

from typing import Any

import numpy as np

from hybridjet.deploy.onnx_export import INPUT_NAME, OUTPUT_NAME
from hybridjet.models.classical import TreeEnsemble

#: ai.onnx.ml's version with double-precision thresholds (``nodes_values_as_tensor``)
ML_OPSET = 3
OPSET = 18


def trees_model(trees: TreeEnsemble, normalizer: Any) -> Any:
    """Raw features float32 [N, F] -> normalised (float32, as the run computes them) -> double -> the sum of the
    trees' leaves plus the baseline -> sigmoid -> probability [N]."""
    from onnx import TensorProto, helper, numpy_helper

    a = trees.arrays
    offsets = np.asarray(a["offsets"], np.int64)
    n = len(a["value"])
    tree_of = np.searchsorted(offsets, np.arange(n), side="right") - 1
    local = np.arange(n) - offsets[tree_of]
    leaf = np.asarray(a["is_leaf"]).astype(bool)
    modes = np.where(leaf, "LEAF", "BRANCH_LEQ").tolist()
    true_ids = np.where(leaf, 0, np.asarray(a["left"], np.int64))   # x <= threshold goes left
    false_ids = np.where(leaf, 0, np.asarray(a["right"], np.int64))
    leaves = np.flatnonzero(leaf)
    ensemble = helper.make_node(
        "TreeEnsembleRegressor", ["normalised_double"], ["raw"], domain="ai.onnx.ml",
        n_targets=1, aggregate_function="SUM", post_transform="NONE",
        nodes_treeids=tree_of.tolist(), nodes_nodeids=local.tolist(),
        nodes_featureids=np.where(leaf, 0, np.asarray(a["feature_idx"], np.int64)).tolist(),
        nodes_modes=modes, nodes_truenodeids=true_ids.tolist(), nodes_falsenodeids=false_ids.tolist(),
        nodes_missing_value_tracks_true=np.asarray(a["missing_go_to_left"]).astype(np.int64).tolist(),
        nodes_values_as_tensor=numpy_helper.from_array(
            np.where(leaf, 0.0, np.asarray(a["num_threshold"], np.float64)), "thresholds"),
        target_ids=[0] * len(leaves), target_treeids=tree_of[leaves].tolist(), target_nodeids=local[leaves].tolist(),
        target_weights_as_tensor=numpy_helper.from_array(np.asarray(a["value"], np.float64)[leaves], "leaf_values"),
        base_values_as_tensor=numpy_helper.from_array(np.asarray(a["baseline"], np.float64)[:1], "baseline"),
    )
    mean = numpy_helper.from_array(np.asarray(normalizer.mean, np.float32), "mean")
    std = numpy_helper.from_array(np.asarray(normalizer.std, np.float32), "std")
    flat = numpy_helper.from_array(np.array([-1], np.int64), "flat")
    nodes = [
        helper.make_node("Sub", [INPUT_NAME, "mean"], ["centred"]),
        helper.make_node("Div", ["centred", "std"], ["normalised"]),
        helper.make_node("Cast", ["normalised"], ["normalised_double"], to=TensorProto.DOUBLE),
        ensemble,
        helper.make_node("Cast", ["raw"], ["raw_double"], to=TensorProto.DOUBLE),
        helper.make_node("Sigmoid", ["raw_double"], ["probability_double"]),
        helper.make_node("Cast", ["probability_double"], ["probability_column"], to=TensorProto.FLOAT),
        helper.make_node("Reshape", ["probability_column", "flat"], [OUTPUT_NAME]),
    ]
    graph = helper.make_graph(
        nodes, "hybridjet_gbdt",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["N", len(normalizer.names)])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["N"])],
        initializer=[mean, std, flat])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET),
                                                   helper.make_opsetid("ai.onnx.ml", ML_OPSET)])
