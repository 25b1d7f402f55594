"""The event classifiers as users train, save, load and score them: the Lightning steps
(:class:`~hybridjet.train.module.ClassifierModule`), the run directory (:class:`~hybridjet.run.RunIO`) and scoring
(:class:`~hybridjet.scoring.Scoring`) around a net. :class:`HybridClassifier` (the hybrid and its no-LLM ablation)
and :class:`TextPromptClassifier` (the text baseline) only say which net they hold; a run records the net's
architecture config, never how it ran.
"""

from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path
from typing import Any

import torch

from hybridjet.errors import HybridjetError
from hybridjet.models.hybrid import HybridConfig, HybridNet
from hybridjet.models.peers import PeerConfig, PeerNet
from hybridjet.models.text_prompt import TextPromptConfig, TextPromptNet
from hybridjet.run import RunIO
from hybridjet.runtime import Runtime
from hybridjet.scoring import Scoring
from hybridjet.train.gather import gather_events
from hybridjet.train.module import ClassifierModule
from hybridjet.train.optim import Optimization


class EventClassifier(RunIO, Scoring, ClassifierModule):
    """Base class of the event classifiers; ``EventClassifier.from_pretrained(run)`` loads whichever one a run
    holds."""

    config_class: type

    @classmethod
    def from_settings(cls, run_name: str | None = None, **settings: Any) -> EventClassifier:
        """Build from flat keyword settings, each given to the architecture config, the :class:`Runtime` or the
        :class:`Optimization` whose field it names, e.g. ``HybridClassifier.from_settings(model=path,
        n_soft_tokens=2, quantization="none", lr=1e-3)``."""
        groups: dict[type, dict[str, Any]] = {cls.config_class: {}, Runtime: {}, Optimization: {}}
        extra = set(inspect.signature(cls.__init__).parameters) - {"self", "arch", "runtime", "optim", "run_name"}
        own: dict[str, Any] = {}
        for key, value in settings.items():
            owner = next((g for g in groups if key in {f.name for f in dataclasses.fields(g)}), None)
            if owner is not None:
                groups[owner][key] = value
            elif key in extra:
                own[key] = value
            else:
                raise HybridjetError(f"{key}: not a setting of {cls.__name__} (its architecture, runtime or "
                                     "optimisation)")
        return cls(cls.config_class(**groups[cls.config_class]), Runtime(**groups[Runtime]),
                   Optimization(**groups[Optimization]), run_name=run_name, **own)

    def record_settings(self, arch: Any, runtime: Runtime | None, run_name: str | None, **own: Any) -> None:
        """Keep the architecture, runtime, optimisation and the classifier's own settings as Lightning's hyper
        parameters (what a checkpoint rebuilds the classifier from)."""
        self.save_hyperparameters({"arch": dataclasses.asdict(arch), "runtime": dataclasses.asdict(runtime or Runtime()),
                                   "optim": dataclasses.asdict(self.optim), "run_name": run_name, **own})


class FeatureNetClassifier(EventClassifier):
    """A classifier whose net reads the normalised features alone (the hybrid, the ablation, the peers): built
    from the feature set, its names and normalisation once the data are known."""

    def build(self, n_features: int) -> None:
        names = None if self.normalizer is None else list(self.normalizer.names)
        self.net.build(n_features, self.feature_set, names, self.normalizer)

    def score(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.net(batch["features"].to(self.device))


class HybridClassifier(FeatureNetClassifier):
    """The hybrid (:class:`~hybridjet.models.hybrid.HybridNet`; ``arch.use_llm=False``: the no-LLM ablation)."""

    model_kind = "hybrid"
    config_class = HybridConfig

    def __init__(self, arch: HybridConfig | None = None, runtime: Runtime | None = None,
                 optim: Optimization | None = None, run_name: str | None = None) -> None:
        super().__init__(optim, run_name)
        arch = arch or HybridConfig()
        self.record_settings(arch, runtime, run_name)
        self.net = HybridNet(arch, runtime)
        if self.net.llm is not None:
            self.to(next(self.net.llm.parameters()).device)  # 4-bit weights load onto the GPU: follow them

    def pads_partial_batches(self) -> bool:
        return self.net.pads_partial_batches(self.device)

    def compiled_device(self) -> torch.device | None:
        return None if self.net.policy is None else self.net.policy.compiled_for

    @property
    def compiled_artifacts_read(self) -> int:
        """Compiled artifacts read from this machine's cache before compiling."""
        return 0 if self.net.policy is None else self.net.policy.compiled_artifacts_read

    def follow_run_dir(self) -> None:
        if self.net.policy is not None:
            self.net.policy.run_dir = self.run_dir


class PeerClassifier(FeatureNetClassifier):
    """A particle-level peer (:class:`~hybridjet.models.peers.PeerNet`: ParT, ParticleNet, Deep Sets) on the
    ``particles`` features."""

    config_class = PeerConfig

    def __init__(self, arch: PeerConfig | None = None, runtime: Runtime | None = None,
                 optim: Optimization | None = None, run_name: str | None = None) -> None:
        super().__init__(optim, run_name)
        arch = arch or PeerConfig()
        self.record_settings(arch, runtime, run_name)
        self.net = PeerNet(arch, runtime)

    @property
    def model_kind(self) -> str:  # type: ignore[override]
        return self.net.config.architecture


class TextPromptClassifier(EventClassifier):
    """The text baseline (:class:`~hybridjet.models.text_prompt.TextPromptNet`). ``generate_eval``: the test pass also
    generates answers and counts the accuracy and the unparseable ones, as the predecessor measured it."""

    model_kind = "text"
    config_class = TextPromptConfig

    def __init__(self, arch: TextPromptConfig | None = None, runtime: Runtime | None = None,
                 optim: Optimization | None = None, run_name: str | None = None, generate_eval: bool = False) -> None:
        super().__init__(optim, run_name)
        arch = arch or TextPromptConfig()
        self.record_settings(arch, runtime, run_name, generate_eval=generate_eval)
        self.net = TextPromptNet(arch, runtime)
        self.generate_eval = generate_eval
        self._generated: list[dict[str, torch.Tensor]] = []
        self._unparseable_examples: list[str] = []
        self.to(self.net.device)

    def score(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.net.score(batch)

    def loss(self, batch: dict[str, torch.Tensor], batch_idx: int = 0) -> torch.Tensor:
        return self.net.loss(batch, self.pos_weight if self.optim.class_weight == "balanced" else None)

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        super().test_step(batch, batch_idx)
        if not self.generate_eval:
            return
        answers = self.net.generate_answers(batch)
        parsed = [self.net.parse_answer(a) for a in answers]
        labels = batch["label"].tolist()
        self._generated.append({
            "event_id": batch["event_id"].cpu(),
            "correct": torch.tensor([p is not None and p == int(y > 0.5) for p, y in zip(parsed, labels, strict=True)]),
            "unparseable": torch.tensor([p is None for p in parsed])})
        # a few unparseable answers, verbatim (this rank's): what the model says instead of a label word
        self._unparseable_examples += [a for a, p in zip(answers, parsed, strict=True)
                                       if p is None][: 5 - len(self._unparseable_examples)]

    def on_test_epoch_start(self) -> None:
        super().on_test_epoch_start()
        self._generated, self._unparseable_examples = [], []

    def on_test_epoch_end(self) -> None:
        super().on_test_epoch_end()
        if not self.generate_eval:
            return
        # under DDP from every rank, each event once (the sampler repeats some to even out the ranks)
        events = gather_events(self, self._generated, empty={"correct": torch.zeros(0, dtype=torch.bool),
                                                            "unparseable": torch.zeros(0, dtype=torch.bool)})
        self._generated = []
        if events and self.trainer.is_global_zero:
            n = len(events["event_id"])
            self.update_metrics(Path(self.trainer.default_root_dir), generation={
                "accuracy": float(events["correct"].sum()) / n, "unparseable": int(events["unparseable"].sum()),
                "n": n, "unparseable_examples": self._unparseable_examples})
