"""The methods a resonance search, a study, the demo or the GPU quality script trains, by name: gbdt, ablation,
hybrid, text (the text-prompt baseline), the peers on jet constituents (part, particlenet, deepsets), and named
variants of them
(``hybrid_random: {method: hybrid, init: random}``), each a classifier and its settings, checked before any model
loads, and trained into a run directory by the package's own recipes (:func:`train_model`)."""

from __future__ import annotations

import dataclasses
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L

from hybridjet import checks
from hybridjet.data.datamodule import JetDataModule
from hybridjet.data.features import FEATURE_SETS
from hybridjet.errors import HybridjetError
from hybridjet.llm.backbone import decoder_layer_count
from hybridjet.models.classical import GradientBoostedTrees
from hybridjet.models.hybrid import HybridConfig
from hybridjet.models.peers import PEERS, PeerConfig
from hybridjet.models.text_prompt import TextPromptConfig
from hybridjet.runtime import Runtime
from hybridjet.train.callbacks import MONITORS
from hybridjet.train.classifiers import HybridClassifier, PeerClassifier, TextPromptClassifier
from hybridjet.train.optim import Optimization
from hybridjet.train.recipes import train_classifier, train_gbdt

#: the peers on jet constituents (hybridjet.models.peers.PEERS), classifiers of their own
PEER_METHODS = tuple(PEERS)
METHODS = ("gbdt", "ablation", "hybrid", "text", *PEER_METHODS)
#: the methods that run an LLM backbone (its init, init_seed, llm_layers among their settings)
LLM_METHODS = ("hybrid", "text")
GBDT_SETTINGS = ("max_iter", "learning_rate", "max_leaf_nodes", "class_weight")
NET_RECIPE_SETTINGS = ("epochs", "batch_size", "early_stopping_patience", "monitor", "trainer")
#: settings of how a method is trained in a grid (a resonance search): any method's
GRID_SETTINGS = ("models_per_fold", "features")
#: settings of a classifier itself, beside its architecture, runtime and optimisation
OWN_SETTINGS = {"text": ("generate_eval",)}

@dataclass(frozen=True)
class Method:
    """One classifier: ``name`` (gbdt, ablation, hybrid, or a variant's own name with ``kind`` the classifier it
    is) and its settings. ``model``: the trees' settings, or the flat settings :meth:`HybridClassifier.from_settings`
    sorts into architecture, runtime and optimisation."""

    name: str
    model: dict[str, Any] = field(default_factory=dict)
    epochs: int = 20
    batch_size: int = 256
    early_stopping_patience: int | None = None
    trainer: dict[str, Any] = field(default_factory=dict)
    kind: str | None = None  # a named variant's classifier; None: the name is the classifier
    # a net's best checkpoint and early stopping watch this (val_auc or val_loss); None: the recipe's own choice
    monitor: str | None = None
    # a resonance search's models per fold for this method, averaged; None: the config's ensemble.per_fold
    models_per_fold: int | None = None
    # the feature set this method reads; None: the config's (the peers read 'particles', the trees 'highlevel')
    features: str | None = None

    def __post_init__(self) -> None:
        if self.kind == self.name:  # the classifier itself, with the fingerprint of one
            object.__setattr__(self, "kind", None)

    @property
    def classifier(self) -> str:
        """Which of gbdt, ablation, hybrid, text this method trains."""
        return self.kind or self.name

    def feature_set(self, default: str) -> str:
        """The feature set this method trains on: its own, else the config's ``default``."""
        return self.features or default

    def check_features(self, default: str) -> None:
        """One line, before any training, when this method cannot read its feature set: a peer or the hybrid's named
        prompt without constituents, or with them."""
        features = self.feature_set(default)
        constituents = FEATURE_SETS[features].needs_constituents
        if self.classifier in PEER_METHODS and not constituents:
            raise HybridjetError(f"methods.{self.name}: {self.classifier} reads jet constituents; expected "
                                 f"features: particles (for the method or the config), got {features!r}")
        if constituents and self.model.get("prompt_tokens") == "named":
            raise HybridjetError(f"methods.{self.name}.prompt_tokens: named writes each feature's name; with "
                                 "'particles' every constituent is a token of its own already: expected anonymous")
        if constituents and self.classifier == "text":
            raise HybridjetError(f"methods.{self.name}: the text baseline writes jets' kinematics, not constituents; "
                                 f"expected another feature set than {features!r}")

    def record(self) -> dict[str, Any]:
        """The settings as a mapping, for a run's fingerprint: the settings added later (``monitor``,
        ``models_per_fold``, ``features``) only where set, so that runs trained before they existed keep their
        fingerprints."""
        out = dataclasses.asdict(self)
        for key in ("monitor", "models_per_fold", "features"):
            if out[key] is None:
                del out[key]
        return out


def check_backbones(methods: tuple[Method, ...]) -> None:
    """One line, before any training, for an LLM method (hybrid, text) whose ``llm_layers`` its model lacks."""
    for method in methods:
        wanted = method.model.get("llm_layers")
        if method.classifier not in LLM_METHODS or wanted is None:
            continue
        model = method.model.get("model", "smollm2")
        total = decoder_layer_count(model)
        if total is not None and wanted > total:
            raise HybridjetError(f"methods.{method.name}.llm_layers: expected a whole number from 1 to {total} "
                                 f"({model} has {total} decoder layers), got {wanted}")


def parse_method(name: str, raw: Any) -> Method:
    """One ``methods`` entry, its settings checked (a net's are built into its config classes, no model loaded).
    A name other than gbdt, ablation, hybrid is a variant: its ``method`` setting says which of them it is."""
    if raw is not None and not isinstance(raw, dict):
        raise HybridjetError(f"methods.{name}: expected a mapping of settings, got {raw!r}")
    raw = dict(raw or {})
    kind = raw.pop("method", None)
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
        raise HybridjetError(f"methods.{name}: expected a name of letters, digits, '_', '.', '-' (it names the "
                             "runs' folders)")
    if kind is not None and kind not in METHODS:
        raise HybridjetError(f"methods.{name}.method: expected one of {', '.join(METHODS)}, got {kind!r}")
    if name in METHODS and kind not in (None, name):
        raise HybridjetError(f"methods.{name}.method: {name} names its own classifier; expected no method: setting "
                             f"or method: {name} (a variant of {kind} needs a name of its own)")
    if name == "logs":
        raise HybridjetError("methods.logs: a name the runs folder keeps for logs; expected another name")
    if kind is None and name not in METHODS:
        raise HybridjetError(f"methods.{name}: unknown method; expected one of {', '.join(METHODS)}, or a variant "
                             f"of one named by its setting method: (e.g. {name}: {{method: hybrid, epochs: 30}})")
    classifier = kind or name  # Method itself turns 'hybrid: {method: hybrid}' into the hybrid
    per_fold = raw.pop("models_per_fold", None)
    checks.integer(f"methods.{name}.models_per_fold", per_fold, 1, optional=True)
    features = raw.pop("features", None)
    if features is not None and features not in FEATURE_SETS:
        raise HybridjetError(f"methods.{name}.features: expected one of {', '.join(FEATURE_SETS)}, got {features!r}")
    if classifier == "gbdt":
        unknown = sorted(set(raw) - set(GBDT_SETTINGS))
        if unknown:
            raise HybridjetError(f"methods.{name}.{unknown[0]}: unknown setting; expected one of "
                                 f"{', '.join(GBDT_SETTINGS + GRID_SETTINGS)}")
        try:
            GradientBoostedTrees(**raw)
        except HybridjetError as err:
            raise HybridjetError(f"methods.{name}: {err}") from None
        return Method(name, raw, kind=kind, models_per_fold=per_fold, features=features)
    recipe = {k: raw.pop(k) for k in NET_RECIPE_SETTINGS if k in raw}
    arch = {"text": TextPromptConfig, **dict.fromkeys(PEER_METHODS, PeerConfig)}.get(classifier, HybridConfig)
    if classifier in PEER_METHODS:
        if raw.get("architecture", classifier) != classifier:
            raise HybridjetError(f"methods.{name}.architecture: {classifier} is the architecture; expected no "
                                 "architecture setting")
        raw.pop("architecture", None)
    groups: dict[type, dict[str, Any]] = {arch: {}, Runtime: {}, Optimization: {}}
    for key, value in raw.items():
        owner = next((g for g in groups if key in {f.name for f in dataclasses.fields(g)}), None)
        if key in OWN_SETTINGS.get(classifier, ()):
            continue
        if owner is None or key in ("use_llm", "architecture"):
            raise HybridjetError(f"methods.{name}.{key}: not a setting of the classifier (architecture, runtime, "
                                 f"optimisation) nor of its training ({', '.join(NET_RECIPE_SETTINGS + GRID_SETTINGS)})")
        groups[owner][key] = value
    if classifier in PEER_METHODS:
        groups[arch]["architecture"] = classifier
    try:
        for cls, kwargs in groups.items():
            cls(**kwargs)
    except (HybridjetError, TypeError, ValueError) as err:
        raise HybridjetError(f"methods.{name}: {err}") from None
    epochs, batch = recipe.get("epochs", 20), recipe.get("batch_size", 256)
    checks.integer(f"methods.{name}.epochs", epochs, 1)
    checks.integer(f"methods.{name}.batch_size", batch, 1)
    patience = recipe.get("early_stopping_patience")
    checks.integer(f"methods.{name}.early_stopping_patience", patience, 1, optional=True)
    monitor = recipe.get("monitor")
    if monitor is not None and monitor not in MONITORS:
        raise HybridjetError(f"methods.{name}.monitor: expected one of {', '.join(MONITORS)}, got {monitor!r}")
    trainer = recipe.get("trainer") or {}
    if not isinstance(trainer, dict):
        raise HybridjetError(f"methods.{name}.trainer: expected a mapping of Lightning Trainer settings")
    return Method(name, raw, epochs, batch, patience, trainer, kind, monitor, per_fold, features)


def train_model(method: Method, datamodule: JetDataModule, run_dir: Path, seed: int,
                progress: bool = False, epochs: int | None = None, patience: int | None = None,
                monitor: str = "val_auc") -> dict[str, Any]:
    """Train one model of ``method`` into ``run_dir`` with the package's recipes; returns its metrics. ``epochs``
    and ``patience`` (on ``monitor``: ``val_auc`` or ``val_loss``) replace the method's own for a net; the
    method's own ``monitor``, where set, replaces ``monitor`` and also picks the best checkpoint."""
    if method.classifier == "gbdt":
        return train_gbdt(datamodule, run_dir, seed=seed, **method.model)
    L.seed_everything(seed, verbose=False)
    # a fold's file may hold fewer batches than Lightning's logging interval: harmless, said once per model
    warnings.filterwarnings("ignore", message=r".*smaller than the logging interval.*")
    if method.classifier == "text":
        clf: Any = TextPromptClassifier.from_settings(run_name=run_dir.name, **method.model)
    elif method.classifier in PEER_METHODS:
        clf = PeerClassifier.from_settings(run_name=run_dir.name, architecture=method.classifier, **method.model)
    else:
        clf = HybridClassifier.from_settings(run_name=run_dir.name, use_llm=method.classifier == "hybrid",
                                             **method.model)
    return train_classifier(clf, datamodule, run_dir, max_epochs=epochs or method.epochs, progress=progress,
                            early_stopping_patience=patience if patience is not None else
                            method.early_stopping_patience, early_stopping_monitor=method.monitor or monitor,
                            select_by=method.monitor or "val_auc", **method.trainer)


