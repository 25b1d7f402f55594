"""How a model runs on this machine: quantization, dtype, compilation, CUDA graphs, the shared prefix and its
attention. Decided per process from the settings and the device — never saved with a run: a run records what the
model is, and a new process decides how it runs for its own device.

:class:`Runtime` holds the settings (``None`` = decide automatically). :class:`ExecutionPolicy` turns them into
decisions for one hybrid decoder: whether its layers are compiled (once, at the first forward, from the device it
runs on), and per batch size and device the :class:`Plan` of a forward (share the prefix? which attention? replay
CUDA graphs?), computed once and kept.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from hybridjet import checks, compile_cache
from hybridjet.errors import HybridjetError
from hybridjet.llm.backbone import QUANTIZATIONS, Backbone, load_backbone
from hybridjet.llm.lora import LoraSpec
from hybridjet.llm.nf4 import NF4_DEQUANTS
from hybridjet.llm.shared_prefix import ATTENTION_KINDS, supports_shared_prefix

PREFIX_ATTENTION = ("auto", *ATTENTION_KINDS)
log = logging.getLogger(__name__)
_SAID_PER_EVENT: set[str] = set()  # model families told that the prefix runs per event
#: GPU batches from this size on share the prefix when nothing else decides (smaller ones are launch-bound and
#: the shared path launches more kernels)
SHARED_PREFIX_MIN_GPU_BATCH = 1024
#: models at least this wide share it at any batch: compute, not launches, bounds them, and sharing halves memory
SHARED_PREFIX_ANY_BATCH_HIDDEN = 3072
#: compiled batches up to this size replay CUDA graphs by default (larger ones no longer wait on launches); such
#: batches share the prefix at any size
CUDA_GRAPHS_MAX_BATCH = 8192
#: Dynamo's recompile limit while compiled layers run (torch's default is 8): graphs are static, one per (grad mode,
#: batch size) — the loops' sizes and at most log2(batch) + 1 scoring sizes (``padded_batch_size``)
COMPILED_RECOMPILE_LIMIT = 32


@dataclass(frozen=True)
class Runtime:
    """How to run a model here (every field but the dtype names has an automatic choice).

    Args:
        quantization: ``auto`` (NF4 with double quantization on CUDA, none on CPU), ``nf4``, ``nf4-dq``, ``int8``,
            ``none``.
        dtype: compute dtype of the LLM: ``bf16``, ``fp16``, ``fp32``; ``None`` = bf16 on CUDA, fp32 on CPU.
        upcast_frozen: keep the 4-bit model's frozen norms and embeddings in fp32 (peft's upcast); ``None`` = only
            off CUDA (a bf16 residual stream is faster on a GPU, same AUC).
        gradient_checkpointing: trade compute for activation memory (not with compiled layers): ``true`` for every
            decoder layer, a fraction in (0, 1] for that share of them, evenly spread.
        checkpoint_offload: with ``gradient_checkpointing``, what the decoder saves for the backward (the
            checkpointed layers' inputs) waits in pinned host memory instead of the GPU's: less GPU memory, a copy
            each way per layer and step (:mod:`hybridjet.llm.offload`; nothing to do on a CPU).
        nf4_dequant: how NF4 weights are dequantized: ``bitsandbytes`` (its kernels, through Python) or ``graph``
            (torch operations that compiled layers fuse into their graph; the same values, :mod:`hybridjet.llm.nf4`).
        cache_prefix: run the fixed prompt prefix once per batch and share its keys/values (Llama-family
            decoders); ``None`` = where it is faster (CPU; GPU batches of ``SHARED_PREFIX_MIN_GPU_BATCH`` and more,
            models of hidden size ``SHARED_PREFIX_ANY_BATCH_HIDDEN`` and more, or batches replayed from CUDA graphs).
        torch_compile: compile the decoder layers at the first forward; ``None`` = on CUDA with Triton.
        cuda_graphs: replay compiled shared-prefix layers from CUDA graphs; ``None`` = for compiled CUDA batches
            up to ``CUDA_GRAPHS_MAX_BATCH``.
        prefix_attention: ``matmul`` (anywhere), ``flex`` (fused FlexAttention, compiled, GPU) or ``auto`` (flex for
            compiled half-precision GPU scoring, matmul otherwise).
    """

    quantization: str = "auto"
    dtype: str | None = None
    upcast_frozen: bool | None = None
    gradient_checkpointing: bool | float = False
    checkpoint_offload: bool = False
    nf4_dequant: str = "bitsandbytes"
    cache_prefix: bool | None = None
    torch_compile: bool | None = None
    cuda_graphs: bool | None = None
    prefix_attention: str = "auto"

    def __post_init__(self) -> None:
        if str(self.quantization).lower() not in QUANTIZATIONS:
            raise HybridjetError(f"quantization: expected one of {', '.join(QUANTIZATIONS)}, "
                                 f"got {self.quantization!r}")
        if self.prefix_attention not in PREFIX_ATTENTION:
            raise HybridjetError(f"prefix_attention: expected one of {', '.join(PREFIX_ATTENTION)}, "
                                 f"got {self.prefix_attention!r}")
        for name in ("upcast_frozen", "cache_prefix", "torch_compile", "cuda_graphs"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, bool):
                raise HybridjetError(f"{name}: expected true, false or null (automatic), got {value!r}")
        if not isinstance(self.gradient_checkpointing, bool):
            checks.fraction("runtime.gradient_checkpointing", self.gradient_checkpointing)
        if self.nf4_dequant not in NF4_DEQUANTS:
            raise HybridjetError(f"runtime.nf4_dequant: expected one of {', '.join(NF4_DEQUANTS)}, "
                                 f"got {self.nf4_dequant!r}")
        if not isinstance(self.checkpoint_offload, bool):
            raise HybridjetError(f"runtime.checkpoint_offload: expected true or false, got {self.checkpoint_offload!r}")
        if self.checkpoint_offload and not self.gradient_checkpointing:
            raise HybridjetError("runtime.checkpoint_offload: offloads the checkpointed layers' inputs, so it needs "
                                 "runtime.gradient_checkpointing (true or a fraction of the layers)")

    def replace(self, **changes: Any) -> Runtime:
        """A copy with ``changes`` (one line for a name that is not a runtime setting)."""
        unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise HybridjetError(f"{unknown[0]}: not a runtime setting ({', '.join(f.name for f in dataclasses.fields(self))})")
        return dataclasses.replace(self, **changes)


def compiles_by_default(device: torch.device) -> bool:
    """``torch_compile=None``: on CUDA with Triton (Inductor's GPU code generator), under DDP too; compiling needs
    a C++ compiler on CPUs and pays off on GPUs."""
    from torch.utils._triton import has_triton

    return device.type == "cuda" and has_triton()


def default_scoring_batch(device: torch.device, has_llm: bool) -> int:
    """Events per scoring pass when none is given: 16384 for an LLM on a GPU (small batches are launch-bound),
    else 256."""
    return 16384 if device.type == "cuda" and has_llm else 256


def pad_batch(batch: dict[str, torch.Tensor], size: int) -> dict[str, torch.Tensor]:
    """``batch`` with its last event repeated up to ``size`` events (every field)."""
    return {k: torch.cat([v, v[-1:].expand(size - len(v), *v.shape[1:])]) for k, v in batch.items()}


def padded_batch_size(n: int, batch_size: int) -> int:
    """The size a scoring pass of ``n`` events in batches of ``batch_size`` pads to when padding saves compilations:
    ``batch_size`` for a pass of at least one full batch, else the next power of two (at most ``batch_size``), so
    that inputs of any length share at most log2(batch_size) + 1 batch shapes."""
    return batch_size if n >= batch_size else min(batch_size, 1 << max(n - 1, 0).bit_length())


@dataclass(frozen=True)
class Plan:
    """How one forward runs: the prefix shared by the batch or run per event, the shared path's attention, and
    whether the compiled layers replay CUDA graphs."""

    shares_prefix: bool
    attention: str
    cuda_graphs: bool


class ExecutionPolicy:
    """The runtime decisions for one decoder (see the module docstring); ``run_dir`` names the run whose compiled
    kernels this machine's cache keeps."""

    def __init__(self, runtime: Runtime, decoder: nn.Module, hidden_size: int) -> None:
        self.runtime, self.decoder, self.hidden_size = runtime, decoder, hidden_size
        self.run_dir: Path | None = None
        self.compiled_for: torch.device | None = None  # where the layers were compiled, if they were
        self.compiled_artifacts_read = 0
        self._compile_decided = False
        self._plans: dict[tuple[Any, ...], Plan] = {}

    # ---- compilation, decided once -------------------------------------------------------------------------
    def decide_compilation(self, device: torch.device) -> None:
        """Compile the decoder layers (``torch_compile``) or not, once, from where the first forward runs; a run
        compiled on this kind of machine before reads its kernels from this machine's cache."""
        if self._compile_decided:
            return
        self._compile_decided = True
        wanted = self.runtime.torch_compile
        if wanted is None:
            wanted = compiles_by_default(device)
        if not wanted or getattr(self.decoder, "gradient_checkpointing", False):
            return
        for layer in self.decoder.layers:  # the per-event path runs transformers' layers; static graphs
            layer.compile(dynamic=False)
        self.compiled_for = device  # the shared-prefix path compiles its own layer function
        if self.run_dir is not None:
            self.compiled_artifacts_read = compile_cache.load_compiled(self.run_dir, device)

    @property
    def is_compiled(self) -> bool:
        """Whether the decoder layers run compiled."""
        return self.compiled_for is not None

    def pads_partial_batches(self, device: torch.device) -> bool:
        """Compiled layers: a shorter batch is padded to the loop's size (a new shape would compile again).
        Decides the compilation if no forward has yet, so that a pass's first batch is padded too."""
        self.decide_compilation(device)
        return self.is_compiled

    def compile_limits(self) -> contextlib.AbstractContextManager[Any]:
        """Around compiled layers only, Dynamo's recompile limit raised to ``COMPILED_RECOMPILE_LIMIT``."""
        if not self.is_compiled:
            return contextlib.nullcontext()
        import torch._dynamo

        limit = max(torch._dynamo.config.recompile_limit, COMPILED_RECOMPILE_LIMIT)
        return torch._dynamo.config.patch(recompile_limit=limit)

    # ---- per batch ----------------------------------------------------------------------------------------------
    def replays_cuda_graphs(self, batch_size: int) -> bool:
        """Whether a compiled shared-prefix forward of this many events replays CUDA graphs."""
        choice = self.runtime.cuda_graphs
        on_cuda = self.compiled_for is not None and self.compiled_for.type == "cuda"
        return on_cuda and choice is not False and (choice is True or batch_size <= CUDA_GRAPHS_MAX_BATCH)

    def shares_prefix(self, batch_size: int, device: torch.device) -> bool:
        """Whether a batch of this size runs the prefix once (``cache_prefix``, the decoder's support; a family the
        shared path does not reproduce runs the prefix per event, said once)."""
        choice = self.runtime.cache_prefix
        if choice is False:
            return False
        if not supports_shared_prefix(self.decoder):
            family = getattr(getattr(self.decoder, "config", None), "model_type", type(self.decoder).__name__)
            if family not in _SAID_PER_EVENT:
                _SAID_PER_EVENT.add(family)
                log.warning("hybridjet: the shared prompt prefix is not available for %s models: the prefix runs "
                            "with every event (same scores, more compute)", family)
            return False
        if getattr(self.decoder, "gradient_checkpointing", False):
            return False
        return (choice is True or device.type != "cuda" or batch_size >= SHARED_PREFIX_MIN_GPU_BATCH
                or self.hidden_size >= SHARED_PREFIX_ANY_BATCH_HIDDEN or self.replays_cuda_graphs(batch_size))

    def attention_kind(self, device: torch.device, dtype: torch.dtype, training: bool) -> str:
        """The shared-prefix path's attention for hidden states of ``dtype``, training or not."""
        choice = self.runtime.prefix_attention
        if choice != "auto":
            return choice
        fused = self.is_compiled and device.type == "cuda" and dtype in (torch.bfloat16, torch.float16)
        return "flex" if fused and not training else "matmul"  # FlexAttention's backward is the slower one here

    def forget_plans(self) -> None:
        """Decide every plan again (after a change of the runtime settings)."""
        self._plans.clear()

    def plan(self, batch_size: int, device: torch.device, dtype: torch.dtype) -> Plan:
        """The plan of a forward of ``batch_size`` events on ``device`` whose hidden states have ``dtype`` (the
        autocast dtype where autocast is on), decided once per (size, device, dtype, grad mode)."""
        self.decide_compilation(device)
        if torch.is_autocast_enabled(device.type):
            dtype = torch.get_autocast_dtype(device.type)
        training = torch.is_grad_enabled()
        key = (batch_size, device, dtype, training)
        if key not in self._plans:
            self._plans[key] = Plan(self.shares_prefix(batch_size, device), self.attention_kind(device, dtype, training),
                                    self.replays_cuda_graphs(batch_size))
        return self._plans[key]


def load_llm(model: str, lora: LoraSpec | None, runtime: Runtime, init: str = "pretrained",
             init_seed: int = 0, full: bool = False, cache_dir: str | None = None,
             attention: str | None = None, layers: int | None = None) -> Backbone:
    """The backbone ``model`` loaded as this runtime says (quantization, dtype, upcast, checkpointing), with LoRA
    ``lora`` (``None`` for a frozen LLM): only the adapter weights train, and the model is in training mode (LoRA
    dropout live) until a caller says otherwise. ``full``: no adapters and every weight trains (unquantized:
    ``auto`` means none, a 4-bit runtime is refused); ``init``/``init_seed``: pretrained or random weights
    (:func:`~hybridjet.llm.backbone.load_backbone`); ``cache_dir``: the model cache; ``attention``: transformers'
    attention implementation (default: its choice); ``layers``: the first that many decoder layers only."""
    quantization = runtime.quantization
    if full:
        if str(quantization).lower() not in ("auto", "none"):
            raise HybridjetError(f"lora: full trains every weight of the LLM, which a {quantization} model cannot; "
                                 "expected runtime.quantization none or auto")
        quantization = "none"
    backbone = load_backbone(model, quantization=quantization, lora=lora, dtype=runtime.dtype,
                             gradient_checkpointing=runtime.gradient_checkpointing,
                             checkpoint_offload=runtime.checkpoint_offload, nf4_dequant=runtime.nf4_dequant,
                             upcast_frozen=runtime.upcast_frozen, init=init, init_seed=init_seed,
                             cache_dir=cache_dir, attention=attention, layers=layers)
    for name, param in backbone.model.named_parameters():
        param.requires_grad_(full or (lora is not None and "lora_" in name))
    backbone.model.train()
    return backbone
