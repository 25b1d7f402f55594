"""The hybrid: event features -> k soft-prompt tokens -> (4-bit, LoRA-adapted) decoder LLM -> classification head.

:class:`HybridConfig` is the architecture (what a run records); :class:`HybridNet` the ``nn.Module``. The net knows
nothing about files, training loops or runs; how it runs on this machine is its :class:`~hybridjet.runtime.Runtime`.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from hybridjet import checks
from hybridjet.data.features import Normalizer, get_feature_set, spoken_name
from hybridjet.errors import HybridjetError
from hybridjet.llm.backbone import decoder_of
from hybridjet.llm.dense import densify_backbone
from hybridjet.llm.shared_prefix import forward_with_shared_prefix
from hybridjet.models.config import ArchConfig
from hybridjet.models.encoder import (
    NUMERIC_EMBEDDINGS,
    FeatureTokenEncoder,
    ParticleTokenEncoder,
    SoftPromptEncoder,
    default_periodic_sigma,
)
from hybridjet.models.particle_inputs import ParticleInputs
from hybridjet.models.prompt import (
    DEFAULT_HYBRID_QUESTION,
    DEFAULT_SYSTEM,
    EVENT_SLOT,
    split_around_event,
    split_around_features,
)
from hybridjet.runtime import ExecutionPolicy, Runtime, load_llm

#: how the event enters the prompt (HybridConfig.prompt_tokens)
PROMPT_TOKENS = ("anonymous", "named")


@dataclass(frozen=True)
class HybridConfig(ArchConfig):
    """The hybrid's architecture.

    Args:
        model: base LLM (``smollm2`` = embedded SmolLM2-135M-Instruct, a local HF directory or .gguf file).
        lora: LoRA preset (``qkv``, ``attn``, ``all-linear``), ``None`` to freeze the LLM, or ``full`` to train
            every weight of it (unquantized); ``lora_r``, ``lora_alpha``, ``lora_dropout``: its rank, scale and
            dropout.
        init: ``pretrained`` (the model's weights) or ``random`` (the same architecture, shape and parameter count
            with its weights drawn anew with ``init_seed``: the control that separates pretraining from the
            architecture).
        use_llm: ``False`` for the encoder + head ablation (no LLM at all).
        n_soft_tokens: k, the soft-prompt tokens per event.
        encoder_hidden / encoder_layers / dropout: the encoder's residual MLP.
        numeric_embedding: ``periodic`` (per-feature learned-frequency embedding in front of the MLP) or ``none``.
        periodic_sigma: initial spread of the periodic frequencies in units of a feature's std; ``None``: the feature
            set's default (its record in ``data.features.FEATURE_SETS``).
        ablation_width: the width of each soft token without an LLM.
        system_prompt, question: the chat prompt; ``question`` may hold one ``<<EVENT>>`` slot for the soft tokens
            (text after it runs once per event; without a slot they come last and all text is the shared prefix).
        head_skip: the head also sees the encoder's event representation next to the LLM's last hidden state.
        llm_layers: the LLM's first that many decoder layers only (``None``: all): a shorter, faster backbone that
            keeps the pretrained lower layers.
        particle_pairs: on ``particles``, each constituent's token also sees a summary of its pairwise interaction
            features with the event's other constituents (ParT's ln Δ, ln kT, ln z, ln m²).
        prompt_tokens: ``anonymous`` (k soft tokens from the encoder's MLP over all features) or ``named`` (the
            event written as "jet 1 log transverse momentum: <v>, ...": each feature's name in words, then one
            token of its value, so that what the LLM knows of the words can apply; ``n_soft_tokens`` and the
            encoder's MLP depth are then unused).
    """

    model: str = "smollm2"
    lora: str | None = "attn"
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    use_llm: bool = True
    n_soft_tokens: int = 8
    encoder_hidden: int = 256
    encoder_layers: int = 3
    numeric_embedding: str = "periodic"
    periodic_sigma: float | None = None
    dropout: float = 0.1
    ablation_width: int = 256
    system_prompt: str | None = DEFAULT_SYSTEM
    question: str = DEFAULT_HYBRID_QUESTION
    head_skip: bool = False
    init: str = "pretrained"
    init_seed: int = 0
    prompt_tokens: str = "anonymous"
    particle_pairs: bool = False
    llm_layers: int | None = None

    def __post_init__(self) -> None:
        if self.prompt_tokens not in PROMPT_TOKENS:
            raise HybridjetError(f"prompt_tokens: expected one of {', '.join(PROMPT_TOKENS)}, got "
                                 f"{self.prompt_tokens!r}")
        if self.prompt_tokens == "named" and (not self.use_llm or self.head_skip):
            raise HybridjetError("prompt_tokens: named writes each feature into the LLM's prompt; expected use_llm "
                                 "true and head_skip false")
        self.check_backbone()
        if self.llm_layers is not None and not self.use_llm:
            raise HybridjetError("llm_layers: the ablation has no LLM; expected llm_layers null with use_llm false")
        if not isinstance(self.question, str) or self.question.count(EVENT_SLOT) > 1:
            raise HybridjetError(f"question: expected a text with at most one {EVENT_SLOT!r} slot, got "
                                 f"{self.question!r}")
        if self.numeric_embedding not in NUMERIC_EMBEDDINGS:
            raise HybridjetError(f"numeric_embedding: expected one of {', '.join(NUMERIC_EMBEDDINGS)}, "
                                 f"got {self.numeric_embedding!r}")
        sigma = self.periodic_sigma
        if sigma is not None and (isinstance(sigma, bool) or not isinstance(sigma, (int, float)) or not sigma > 0):
            raise HybridjetError(f"periodic_sigma: expected a positive number or null (per feature set), got {sigma!r}")
        # sizes bounded too: a run's record is read from a file, and these decide what is allocated
        for name, high in (("n_soft_tokens", 1024), ("encoder_hidden", 65536), ("encoder_layers", 256),
                           ("ablation_width", 65536)):
            checks.integer(name, getattr(self, name), 1, high)
        checks.fraction("dropout", self.dropout, include_one=False)
        self.check_lora()


@torch.no_grad()
def text_token_scale(embed: nn.Module, ids: torch.Tensor) -> float:
    """The RMS of text tokens as the decoder's first layer receives them, which the soft tokens start at: the
    embedding table's RMS times what the embedding layer itself multiplies by (1 for most families; √hidden for
    Gemma 2/3, whose embedding module scales its output)."""
    table = embed.weight.float()
    ids = ids.to(embed.weight.device)
    scale = float(embed(ids).float().pow(2).mean().sqrt() / table[ids].pow(2).mean().sqrt().clamp(min=1e-12))
    return float(table.pow(2).mean().sqrt()) * scale


class HybridNet(nn.Module):
    """Soft-prompt hybrid of a numeric encoder and a decoder LLM (``config.use_llm=False``: encoder + head only).

    The sequence is the chat-formatted prompt with the k soft tokens in the question's ``<<EVENT>>`` slot (by default
    there is none: they follow the whole prompt, answer header included), identical in length for every event; a
    linear head on the last position's final hidden state gives the logit. The layers depending on the feature
    count are made by :meth:`build`.
    """

    def __init__(self, config: HybridConfig, runtime: Runtime | None = None) -> None:
        super().__init__()
        self.config, self.runtime = config, runtime or Runtime()
        self.backbone: Any = None
        self.llm: nn.Module | None = None
        self.encoder: SoftPromptEncoder | FeatureTokenEncoder | ParticleTokenEncoder | None = None
        self.head: nn.Module | None = None
        self.policy: ExecutionPolicy | None = None
        self.between_ids: list[torch.Tensor] = []  # a named-token prompt's text after each value token
        if not config.use_llm:
            self.embed_dim, self.embed_rms = config.ablation_width, 1.0
            return
        self.backbone = load_llm(config.model, config.lora_spec(), self.runtime, **config.backbone_settings())
        self.llm = self.backbone.model
        before, after = split_around_event(self.backbone.tokenizer, config.question, config.system_prompt)
        self.register_buffer("prefix_ids", torch.tensor(before, dtype=torch.long), persistent=False)
        self.register_buffer("suffix_ids", torch.tensor(after, dtype=torch.long), persistent=False)
        self.embed_dim = self.backbone.hidden_size
        self.embed_rms = text_token_scale(self.llm.get_input_embeddings(), self.prefix_ids)
        self.policy = ExecutionPolicy(self.runtime, decoder_of(self.llm), self.embed_dim)

    def build(self, n_features: int, feature_set: str | None, names: list[str] | None = None,
              normalizer: Normalizer | None = None) -> None:
        """Create the encoder and head for ``n_features`` inputs of ``feature_set`` (once); a named-token prompt
        needs the features' ``names``, the ``particles`` set (one token per jet and per constituent, with an LLM)
        their ``names`` and ``normalizer``."""
        if self.encoder is not None:
            return
        c = self.config
        particles = feature_set is not None and get_feature_set(feature_set).needs_constituents
        sigma = default_periodic_sigma(feature_set) if c.periodic_sigma is None else float(c.periodic_sigma)
        if particles and c.use_llm:
            if c.prompt_tokens == "named" or c.head_skip or names is None or normalizer is None:
                raise HybridjetError("particles: the hybrid makes one token per jet and per constituent; expected "
                                     "prompt_tokens anonymous, head_skip false, and the run's names and normalizer")
            self.encoder = ParticleTokenEncoder(ParticleInputs(names, normalizer), self.embed_dim, c.encoder_hidden,
                                                c.dropout, self.embed_rms, pairs=c.particle_pairs)
            self._build_particle_prompt(self.encoder.inputs.n_jets)
        elif c.prompt_tokens == "named":
            self._build_named_prompt(n_features, names)
            self.encoder = FeatureTokenEncoder(n_features, self.embed_dim, c.encoder_hidden, c.dropout,
                                               self.embed_rms, sigma)
        else:
            self.encoder = SoftPromptEncoder(n_features, c.n_soft_tokens, self.embed_dim, c.encoder_hidden,
                                             c.encoder_layers, c.dropout, self.embed_rms,
                                             numeric_embedding=c.numeric_embedding, periodic_sigma=sigma)
        width = self.embed_dim if c.use_llm else c.n_soft_tokens * self.embed_dim
        if c.use_llm and c.head_skip:
            width += c.encoder_hidden
        self.head = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, 1))
        if self.llm is not None:
            self.to(next(self.llm.parameters()).device)

    def _build_particle_prompt(self, n_jets: int) -> None:
        """The text around each jet's block of tokens ("jet 1: <jet><constituents>, jet 2: ...")."""
        self._set_segments(split_around_features(self.backbone.tokenizer, [f"jet {j + 1}" for j in range(n_jets)],
                                                 self.config.question, self.config.system_prompt))

    def _set_segments(self, segments: list[list[int]]) -> None:
        device = self.prefix_ids.device
        self.prefix_ids = torch.tensor(segments[0], dtype=torch.long, device=device)
        self.between_ids = [torch.tensor(s, dtype=torch.long, device=device) for s in segments[1:]]
        self.suffix_ids = self.between_ids[-1]

    def _build_named_prompt(self, n_features: int, names: list[str] | None) -> None:
        """The text around the value tokens: the prefix before the first, then the text after each value."""
        if names is None or len(names) != n_features:
            raise HybridjetError("prompt_tokens: named needs the features' names (a run records them)")
        self._set_segments(split_around_features(self.backbone.tokenizer, [spoken_name(n) for n in names],
                                                 self.config.question, self.config.system_prompt))

    @property
    def sequence_length(self) -> int:
        """Tokens per event seen by the LLM (0 without it)."""
        if self.llm is None:
            return 0
        if isinstance(self.encoder, ParticleTokenEncoder):
            per_jet = 1 + self.encoder.inputs.layout.n_constituents
            return len(self.prefix_ids) + sum(per_jet + len(ids) for ids in self.between_ids)
        if self.between_ids:
            return len(self.prefix_ids) + sum(1 + len(ids) for ids in self.between_ids)
        return len(self.prefix_ids) + self.config.n_soft_tokens + len(self.suffix_ids)

    def pads_partial_batches(self, device: torch.device) -> bool:
        """Whether a loop's shorter batches are best padded to its full size (compiled layers)."""
        return self.policy is not None and self.policy.pads_partial_batches(device)

    def set_runtime(self, runtime: Runtime) -> None:
        """Run differently from now on (the plans are decided again; the layers stay compiled if they were)."""
        self.runtime = runtime
        if self.policy is not None:
            self.policy.runtime = runtime
            self.policy.forget_plans()

    def densify(self, dtype: torch.dtype) -> None:
        """Scoring only: the 4-bit (+ LoRA) LLM replaced by a dense copy in ``dtype`` (LoRA merged in fp32, a branch in bf16)."""
        if self.llm is None:
            return
        self.backbone = densify_backbone(self.backbone, dtype)
        self.llm = self.backbone.model
        run_dir = self.policy.run_dir if self.policy is not None else None
        self.policy = ExecutionPolicy(self.runtime, decoder_of(self.llm), self.embed_dim)
        self.policy.run_dir = run_dir

    def forward(self, features: torch.Tensor, plain: bool = False) -> torch.Tensor:
        """Logits [B] for normalised features [B, F]. ``plain``: the LLM reads every event's whole sequence in one
        call, with no execution plan (no shared prefix, no compiled layers): what an ONNX export traces."""
        if self.encoder is None or self.head is None:
            raise HybridjetError("model: not built yet (train it or load a run with hybridjet.load_run)")
        if isinstance(self.encoder, ParticleTokenEncoder):
            return self._forward_particles(features, plain)
        if self.between_ids:
            trunk, soft = None, self.encoder(features)
        else:
            trunk = self.encoder.trunk(features)
            soft = self.encoder.tokens(trunk)
        if self.llm is None or self.policy is None:
            return self.head(soft.flatten(1)).squeeze(-1)
        embed = self.llm.get_input_embeddings()
        batch = soft.shape[0]
        prefix = embed(self.prefix_ids).unsqueeze(0)
        soft = soft.to(prefix.dtype)
        if self.between_ids:  # value token, the text up to the next one, value token, ...
            between = [embed(ids.to(prefix.device)).unsqueeze(0).expand(batch, -1, -1) for ids in self.between_ids]
            own = torch.cat([piece for f, text in enumerate(between) for piece in (soft[:, f:f + 1], text)], dim=1)
        else:
            own = torch.cat([soft, embed(self.suffix_ids).unsqueeze(0).expand(batch, -1, -1)], dim=1)
        return self._head_of(self._run_llm(prefix, own, plain), trunk)

    def _run_llm(self, prefix: torch.Tensor, own: torch.Tensor, plain: bool,
                 key_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Final hidden states of the events' own tokens ``own`` after the shared ``prefix`` [1, P, D], as the batch's
        plan says: the prefix once per batch (compiled layers), [B, 1, D] at the last position, which is all the head
        reads; or, ``plain`` or without a shared prefix, every event's whole sequence in one decoder call, [B, T, D].
        ``key_mask`` [B, T]: the own tokens attended to."""
        assert self.policy is not None
        batch = own.shape[0]
        plan = None if plain else self.policy.plan(batch, own.device, own.dtype)
        with self.policy.compile_limits() if plan is not None else contextlib.nullcontext():
            if plan is not None and plan.shares_prefix:
                # the head reads the last position: the last layer runs for it alone
                return forward_with_shared_prefix(self.policy.decoder, prefix, own, compiled=self.policy.is_compiled,
                                                  attention=plan.attention, cuda_graphs=plan.cuda_graphs,
                                                  key_mask=key_mask, last_only=True)
            mask = None
            if key_mask is not None:
                mask = torch.cat([key_mask.new_ones(batch, prefix.shape[1]), key_mask], dim=1).long()
            return self.policy.decoder(inputs_embeds=torch.cat([prefix.expand(batch, -1, -1), own], dim=1),
                                       attention_mask=mask, use_cache=False).last_hidden_state

    def _forward_particles(self, features: torch.Tensor, plain: bool = False) -> torch.Tensor:
        """Logits of the hybrid on ``particles``: "jet 1: <jet token><constituent tokens>, jet 2: ..." in the
        prompt, the empty constituent slots masked out of attention (no token attends to them). Like the other
        prompts, the text before the first jet runs once per batch where the plan shares the prefix."""
        assert isinstance(self.encoder, ParticleTokenEncoder) and self.llm is not None and self.policy is not None
        embed = self.llm.get_input_embeddings()
        prefix = embed(self.prefix_ids).unsqueeze(0)
        jets, particles, present = self.encoder(features)
        batch, dtype = features.shape[0], prefix.dtype
        pieces, masks = [], []
        for j, text in enumerate(self.between_ids):
            pieces += [jets[:, j:j + 1].to(dtype), particles[:, j].to(dtype),
                       embed(text).unsqueeze(0).expand(batch, -1, -1)]
            masks += [present.new_ones(batch, 1), present[:, j], present.new_ones(batch, len(text))]
        own, key_mask = torch.cat(pieces, dim=1), torch.cat(masks, dim=1).bool()
        return self._head_of(self._run_llm(prefix, own, plain, key_mask), None)

    def _head_of(self, hidden: torch.Tensor, trunk: torch.Tensor | None) -> torch.Tensor:
        """The head's logits from the LLM's last position (and the encoder's trunk, with ``head_skip``)."""
        assert self.head is not None
        pooled = hidden[:, -1].float()
        if self.config.head_skip and trunk is not None:
            pooled = torch.cat([pooled, trunk], dim=-1)
        return self.head(pooled).squeeze(-1)
