"""The names of a run directory's files, in one place (issue 33: one owner of the run directory). Every module that
reads or writes a run's files takes their names from here; :mod:`hybridjet.run` holds what is done with them."""

from __future__ import annotations

#: the run's record: class, architecture, feature set and normalisation, base-model identity (JSON)
RUN_MODEL_FILE = "model.json"
#: the trainable weights of a net (safetensors); the trees' arrays are TREES_FILE
RUN_WEIGHTS_FILE = "weights.safetensors"
TREES_FILE = "trees.safetensors"
#: the run's metrics (strict JSON) and its per-event scores (one HDF5 group per split)
METRICS_FILE = "metrics.json"
SCORES_FILE = "scores.h5"
#: the lock a training holds on its run directory, and a study's per-run record
RUN_LOCK = ".hybridjet.lock"
STUDY_RECORD = "study.json"
