"""HybridClassifier: event features -> k soft-prompt tokens -> 4-bit LoRA LLM -> classification head."""

from __future__ import annotations

import contextlib
from typing import Any

import torch
from torch import nn

from hybridjet.errors import HybridjetError
from hybridjet.llm.shared_prefix import ATTENTION_KINDS, forward_with_shared_prefix, supports_shared_prefix
from hybridjet.models.base import EventClassifier
from hybridjet.models.encoder import NUMERIC_EMBEDDINGS, SoftPromptEncoder, default_periodic_sigma
from hybridjet.models.prompt import DEFAULT_HYBRID_QUESTION, DEFAULT_SYSTEM, split_around_event


def decoder_of(model: nn.Module) -> nn.Module:
    """The transformer body (no vocabulary projection) of a causal LM, with or without a peft wrapper."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return base.get_decoder() if hasattr(base, "get_decoder") else base.model


#: GPU batches from this size on share the prefix by default (H200, SmolLM2 NF4 compiled, default prompt, training
#: events/s per event vs shared: 512: 4,457 vs 2,739; 1024: 7,482 vs 10,043; 2048: 14,943 vs 17,533; 8192: - vs
#: 45,169; BENCHMARKS.md "One pass per layer")
SHARED_PREFIX_MIN_GPU_BATCH = 1024
#: ... and models this wide share it at any batch: compute, not launches, bounds them (H200, Llama-3.2-3B shape
#: NF4, batch 64: 293 events/s shared vs 297 per event, peak 4.64 vs 10.16 GB; BENCHMARKS.md "One pass per layer")
SHARED_PREFIX_ANY_BATCH_HIDDEN = 3072
#: ``cuda_graphs=None`` replays batches up to this size from CUDA graphs (H100, SmolLM2 NF4: x1.35-3.4 up to 4096,
#: x1.00 at 16384, x0.95 at 65536; BENCHMARKS.md, "CUDA graphs"), and such batches share the prefix at any size: no
#: launch cost is left (training events/s per event vs shared: 256: 1,666 vs 5,441; 512: 3,446 vs 10,074; 1024:
#: 6,357 vs 19,080; down to 32: x2.6-4.6 training, x3.4-7.1 scoring, BENCHMARKS.md "Shared prefix below batch 256")
CUDA_GRAPHS_MAX_BATCH = 8192
#: Dynamo's recompile limit while a compiled hybrid runs its layers (torch's default is 8): graphs are static, one
#: per (grad mode, batch size) — the loops' sizes and at most log2(batch) + 1 scoring sizes (``padded_batch_size``)
COMPILED_RECOMPILE_LIMIT = 32


PREFIX_ATTENTION = ("auto", *ATTENTION_KINDS)


def _check_choice(field: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise HybridjetError(f"{field}: expected one of {', '.join(choices)}, got {value!r}")


def compiles_by_default(device: torch.device) -> bool:
    """``torch_compile=None``: on CUDA with Triton (inductor's GPU code generator), under DDP too (H200 x2,
    4,096 events per rank: 2 compiled ranks 1.88x one compiled GPU once an epoch's last batch is padded;
    BENCHMARKS.md, "Compiled DDP scales")."""
    from torch.utils._triton import has_triton

    return device.type == "cuda" and has_triton()


class HybridClassifier(EventClassifier):
    """Soft-prompt hybrid of a numeric encoder and a (4-bit, LoRA-adapted) decoder LLM.

    The sequence is the chat-formatted prompt with the k soft tokens in the ``<<EVENT>>`` slot of ``question``
    (by default there is none: they follow the whole prompt, answer header included), identical in length for
    every event (no padding); a linear head on the last position's final hidden state gives the logit.  With
    ``use_llm=False`` the same encoder feeds the head directly: the no-LLM ablation.  With ``lora=None`` the LLM
    stays frozen and only encoder and head train.

    Args:
        model: base LLM (``smollm2`` = embedded SmolLM2-135M-Instruct, or a local HF directory / hub id).
        quantization: ``auto`` (NF4 on CUDA, none on CPU), ``nf4``, ``nf4-dq``, ``int8`` or ``none``.
        dtype: compute dtype of the LLM (``auto``: bf16 on CUDA, fp32 on CPU; ``bf16`` is ~2x faster than fp32
            on CPUs with AVX512-BF16).
        lora: LoRA preset (``qkv``, ``attn``, ``all-linear``) or ``None`` to freeze the LLM.
        n_soft_tokens: k, the soft-prompt tokens per event.
        system_prompt, question: the chat prompt; ``question`` may hold one ``<<EVENT>>`` slot for the soft tokens
            (text after it runs once per event; without a slot they come last and all text is the shared prefix).
        use_llm: ``False`` for the encoder + head ablation.
        numeric_embedding: ``periodic`` (per-feature learned-frequency embedding in front of the encoder MLP) or
            ``none`` (standardised features straight into it; runs saved before this option load as ``none``).
        periodic_sigma: initial spread of the periodic embedding's frequencies, in units of a feature's std;
            ``None``: per feature set, 0.3 for ``fourvec``, 0.1 for ``substructure`` (``encoder.PERIODIC_SIGMA``).
        class_weight: ``balanced`` weighs signal by N_bkg/N_sig in the loss.
        cache_prefix: run the fixed prefix once per batch and share its keys/values (same result, fewer FLOPs; Llama
            family, see :mod:`hybridjet.llm.shared_prefix`; other models run it per event).  ``None``: shared on
            CPUs, and on GPUs for batches of at least ``SHARED_PREFIX_MIN_GPU_BATCH`` (smaller GPU batches are
            bound by kernel launches, and the shared path launches more: BENCHMARKS.md) or for models of hidden
            size ``SHARED_PREFIX_ANY_BATCH_HIDDEN`` and more (3B and up: same speed, less than half the memory),
            and at any batch when the compiled layers replay CUDA graphs (``cuda_graphs``: x2.6-7 at batch 32-1024).
        head_skip: the head also sees the encoder's event representation next to the LLM's last hidden state
            (a wide-and-deep head: the LLM path must then add to what the encoder alone provides).
        upcast_frozen: ``False`` keeps the 4-bit model's frozen norms and embeddings in the compute dtype instead of
            peft's fp32 upcast (faster on a GPU, same AUC on 200k events; see :func:`hybridjet.llm.load_backbone`);
            ``None`` = ``False`` on CUDA, ``True`` elsewhere.
        prefix_attention: attention of the shared-prefix path: ``flex`` (one fused block-sparse FlexAttention
            kernel; compiled, GPU), ``matmul`` (score matrices; anywhere), ``auto`` = ``flex`` for scoring with
            layers compiled on a GPU in bf16/fp16, ``matmul`` otherwise (FlexAttention's backward is slower here:
            the prefix's key blocks are seen by every query block; BENCHMARKS.md, "FlexAttention").
        torch_compile: compile each decoder layer with ``torch.compile`` at the first forward
            (the layers share one graph: x2 training and scoring on an H200, BENCHMARKS.md); ``None`` = on CUDA (with
            Triton) only, under DDP too (2 H200s: 1.88x one GPU): compiling needs a C++ compiler on CPUs and pays
            off on GPUs.  A compiled model pads each epoch's shorter last batch (one shape, one compilation).  Not
            with gradient checkpointing.
        cuda_graphs: replay the compiled shared-prefix layers from CUDA graphs (``torch.compile`` mode
            ``reduce-overhead``), which removes the kernel-launch cost that small GPU batches wait on (H100, SmolLM2
            NF4, side by side: training x2.7 at batch 1024, x1.7 at 2048, x1.35 at 4096; scoring x3.4 at 1024-2048,
            x1.65 at 4096; BENCHMARKS.md, "CUDA graphs"); ``None`` = when the layers are compiled on CUDA, for
            batches up to ``CUDA_GRAPHS_MAX_BATCH`` (none at 16384, 4-6% slower at 65536: launches no longer count).
    """

    model_kind = "hybrid"
    legacy_hparams: dict[str, Any] = {"numeric_embedding": "none"}  # runs saved before the option existed

    def __init__(
        self,
        model: str = "smollm2",
        quantization: str = "auto",
        dtype: str | None = None,
        lora: str | None = "attn",
        lora_r: int = 16,
        lora_alpha: int = 32,
        lora_dropout: float = 0.05,
        use_llm: bool = True,
        n_soft_tokens: int = 8,
        encoder_hidden: int = 256,
        encoder_layers: int = 3,
        numeric_embedding: str = "periodic",
        periodic_sigma: float | None = None,
        dropout: float = 0.1,
        ablation_width: int = 256,
        system_prompt: str | None = DEFAULT_SYSTEM,
        question: str = DEFAULT_HYBRID_QUESTION,
        gradient_checkpointing: bool = False,
        cache_prefix: bool | None = None,
        head_skip: bool = False,
        upcast_frozen: bool | None = None,
        torch_compile: bool | None = None,
        cuda_graphs: bool | None = None,
        prefix_attention: str = "auto",
        lr: float = 2e-4,
        encoder_lr: float = 1e-3,
        weight_decay: float = 0.01,
        warmup_fraction: float = 0.05,
        class_weight: str | None = None,
        run_name: str | None = None,
    ) -> None:
        super().__init__()
        # checked before the LLM loads (and before any run directory exists): one line for a wrong setting
        _check_choice("prefix_attention", prefix_attention, PREFIX_ATTENTION)
        _check_choice("numeric_embedding", numeric_embedding, NUMERIC_EMBEDDINGS)
        for field, value in (("cache_prefix", cache_prefix), ("torch_compile", torch_compile),
                             ("cuda_graphs", cuda_graphs)):
            if value is not None and not isinstance(value, bool):
                raise HybridjetError(f"{field}: expected true, false or null (automatic), got {value!r}")
        if periodic_sigma is not None and (isinstance(periodic_sigma, bool) or not isinstance(periodic_sigma, (int, float))
                                           or not periodic_sigma > 0):
            raise HybridjetError(f"periodic_sigma: expected a positive number or null (per feature set), "
                                 f"got {periodic_sigma!r}")
        self.save_hyperparameters()
        self.llm: nn.Module | None = None
        self.encoder: SoftPromptEncoder | None = None
        self.head: nn.Module | None = None
        self._compile_decided = False  # compilation is decided once, at the first forward (see _compile_once)
        self._compiled_for: torch.device | None = None  # where the layers were compiled, if they were
        if use_llm:
            self.llm = self.load_llm(model, quantization, dtype, lora, lora_r, lora_alpha, lora_dropout,
                                     gradient_checkpointing, upcast_frozen)
            before, after = split_around_event(self.backbone.tokenizer, question, system_prompt)
            self.register_buffer("prefix_ids", torch.tensor(before, dtype=torch.long), persistent=False)
            self.register_buffer("suffix_ids", torch.tensor(after, dtype=torch.long), persistent=False)
            self.embed_dim = self.backbone.hidden_size
            with torch.no_grad():
                table = self.llm.get_input_embeddings().weight
                self.embed_rms = float(table.float().pow(2).mean().sqrt())
            self.follow_llm_device()
        else:
            self.embed_dim, self.embed_rms = ablation_width, 1.0

    # ---- construction once the feature count is known -----------------------------------------------------
    def build(self, n_features: int) -> None:
        if self.encoder is not None:
            return
        hp = self.hparams
        self.encoder = SoftPromptEncoder(n_features, hp.n_soft_tokens, self.embed_dim, hp.encoder_hidden,
                                         hp.encoder_layers, hp.dropout, self.embed_rms,
                                         numeric_embedding=hp.numeric_embedding,
                                         periodic_sigma=self.periodic_sigma())
        width = self.embed_dim if hp.use_llm else hp.n_soft_tokens * self.embed_dim
        if hp.use_llm and hp.get("head_skip", False):
            width += hp.encoder_hidden
        self.head = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, 1))
        self.follow_llm_device()

    def encoder_parameter_names(self) -> set[str]:
        return {n for n, _ in self.named_parameters() if n.startswith(("encoder.", "head."))}

    def periodic_sigma(self) -> float:
        """The periodic embedding's initial frequency spread: ``periodic_sigma``, or the feature set's default."""
        sigma = self.hparams.get("periodic_sigma")
        return default_periodic_sigma(self.feature_set) if sigma is None else float(sigma)

    @property
    def sequence_length(self) -> int:
        """Tokens per event seen by the LLM (0 without it)."""
        if self.llm is None:
            return 0
        return len(self.prefix_ids) + self.hparams.n_soft_tokens + len(self.suffix_ids)

    def shares_prefix(self, batch_size: int, device: torch.device) -> bool:
        """Whether the fixed prefix runs once for a batch of this size (``cache_prefix`` and model support)."""
        choice = self.hparams.cache_prefix
        if self.llm is None or choice is False:
            return False
        decoder = decoder_of(self.llm)
        if not supports_shared_prefix(decoder) or getattr(decoder, "gradient_checkpointing", False):
            return False
        return (choice is True or device.type != "cuda" or batch_size >= SHARED_PREFIX_MIN_GPU_BATCH
                or self.embed_dim >= SHARED_PREFIX_ANY_BATCH_HIDDEN or self.replays_cuda_graphs(batch_size))

    def prefix_attention_kind(self, device: torch.device, dtype: torch.dtype) -> str:
        """The shared-prefix path's attention now, for hidden states of ``dtype``: ``prefix_attention``; ``auto`` =
        flex when compiled on CUDA, in half precision and not recording gradients.  (Batches of fewer event tokens
        than one FlexAttention query block run the matmul attention either way: ``attention_for_batch``.)"""
        choice = self.hparams.get("prefix_attention", "auto")
        if choice == "auto":
            if torch.is_autocast_enabled(device.type):
                dtype = torch.get_autocast_dtype(device.type)
            fused = self.is_compiled and device.type == "cuda" and dtype in (torch.bfloat16, torch.float16)
            return "flex" if fused and not torch.is_grad_enabled() else "matmul"
        return choice

    def scoring_batch_size(self) -> int:
        """16384 on a GPU (H200, SmolLM2 NF4, compiled, shared prefix + FlexAttention: 40k events/s at 4096, 101k at
        8192, 122k at 65536; small batches are launch-bound), else 256."""
        return 16384 if self.device.type == "cuda" and self.llm is not None else 256

    def replays_cuda_graphs(self, batch_size: int) -> bool:
        """Whether a compiled shared-prefix forward of this many events replays CUDA graphs (``cuda_graphs``)."""
        choice = self.hparams.get("cuda_graphs")
        return self._cuda_graphs and (choice is True or batch_size <= CUDA_GRAPHS_MAX_BATCH)

    def pads_partial_batches(self) -> bool:
        """Compiled: yes (events are independent; a new batch shape would compile the layers again).  Decides the
        compilation here if no forward has yet, so that a pass's first batch is padded too."""
        if self.llm is None:
            return False
        self._compile_once(self.device)
        return self.is_compiled

    def _compile_once(self, device: torch.device) -> None:
        """Regional compilation (``torch_compile``), decided once, at the first forward, from where it runs."""
        if self._compile_decided:
            return
        self._compile_decided = True
        decoder = decoder_of(self.llm)
        wanted = self.hparams.get("torch_compile")
        if wanted is None:
            wanted = compiles_by_default(device)
        if not wanted or getattr(decoder, "gradient_checkpointing", False):
            return
        for layer in decoder.layers:  # the per-event path runs transformers' layers; static: _compiled_layer_function
            layer.compile(dynamic=False)
        self._compiled_for = device  # the shared-prefix path compiles its own layer function
        if self.run_dir is not None:  # a run that was compiled on this kind of machine before: read, not build
            from hybridjet.models.compile_cache import load_compiled

            self.compiled_artifacts_read = load_compiled(self.run_dir, device)

    def compiled_device(self) -> torch.device | None:
        return self._compiled_for

    def _compile_limits(self) -> contextlib.AbstractContextManager[Any]:
        """Around this model's compiled layers only, Dynamo's recompile limit raised to
        ``COMPILED_RECOMPILE_LIMIT`` (the process's own setting is left as it is)."""
        if not self.is_compiled:
            return contextlib.nullcontext()
        import torch._dynamo

        limit = max(torch._dynamo.config.recompile_limit, COMPILED_RECOMPILE_LIMIT)
        return torch._dynamo.config.patch(recompile_limit=limit)

    @property
    def is_compiled(self) -> bool:
        """Whether the decoder layers run compiled (decided at the first forward, from where it runs)."""
        return self._compiled_for is not None

    @property
    def _cuda_graphs(self) -> bool:
        """Layers compiled on CUDA and ``cuda_graphs`` not ``False``: forwards may replay CUDA graphs."""
        compiled_for = self._compiled_for
        return compiled_for is not None and compiled_for.type == "cuda" and self.hparams.get("cuda_graphs") is not False

    # ---- forward -------------------------------------------------------------------------------------------
    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Logits [B] for normalised features [B, F]."""
        if self.encoder is None:
            raise HybridjetError("model: not built yet (train it or load it with HybridClassifier.from_pretrained)")
        trunk = self.encoder.trunk(features)
        soft = self.encoder.tokens(trunk)
        if self.llm is None:
            return self.head(soft.flatten(1)).squeeze(-1)
        self._compile_once(features.device)
        embed = self.llm.get_input_embeddings()
        decoder = decoder_of(self.llm)
        batch = soft.shape[0]
        prefix = embed(self.prefix_ids).unsqueeze(0)
        own = torch.cat([soft.to(prefix.dtype), embed(self.suffix_ids).unsqueeze(0).expand(batch, -1, -1)], dim=1)
        with self._compile_limits():
            if self.shares_prefix(batch, features.device):
                attention = self.prefix_attention_kind(features.device, own.dtype)
                hidden = forward_with_shared_prefix(decoder, prefix, own, compiled=self.is_compiled,
                                                    attention=attention, cuda_graphs=self.replays_cuda_graphs(batch))
            else:
                hidden = decoder(inputs_embeds=torch.cat([prefix.expand(batch, -1, -1), own], dim=1),
                                 use_cache=False).last_hidden_state
        pooled = hidden[:, -1].float()
        if self.hparams.get("head_skip", False):
            pooled = torch.cat([pooled, trunk], dim=-1)
        return self.head(pooled).squeeze(-1)

    def score(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self(batch["features"].to(self.device))
