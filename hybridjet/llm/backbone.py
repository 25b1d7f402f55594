"""``load_backbone``: a (4-bit) causal LM + tokenizer + optional LoRA adapters, with its identity.

Hidden states without the vocabulary projection (what the hybrid classifier needs)::

    bb = load_backbone("smollm2", quantization="nf4", lora="attn")
    emb = bb.input_embeddings(input_ids)                                     # [B, T, H]
    h = decoder_of(bb.model)(inputs_embeds=emb, attention_mask=mask).last_hidden_state   # [B, T, H], no LM head

:func:`decoder_of` is the inner decoder (``LlamaModel``) of the causal LM, the same module objects whether or not
the model is wrapped by peft, so LoRA layers (injected in place) are active in it.  The base weights are always
frozen (``requires_grad=False``); with ``lora`` only the adapter weights are trainable.
"""

from __future__ import annotations

import logging
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hybridjet.errors import HybridjetError
from hybridjet.llm.gguf_tokenizer import pad_candidate
from hybridjet.llm.lora import LoraSpec, as_lora_spec
from hybridjet.llm.nf4 import NF4_DEQUANTS, dequantize_in_graph
from hybridjet.llm.offload import offload_saved_activations
from hybridjet.llm.random_init import INITS, random_weights
from hybridjet.llm.resolve import ModelIdentity, resolve_model

QUANTIZATIONS = ("auto", "nf4", "nf4-dq", "int8", "none")

#: dtype name -> torch attribute, by the names users write
_DTYPES = {name: torch_name for torch_name, names in (("float32", ("fp32", "float32", "float")),
                                                      ("bfloat16", ("bf16", "bfloat16")),
                                                      ("float16", ("fp16", "float16", "half"))) for name in names}

log = logging.getLogger(__name__)


@dataclass
class Backbone:
    """A loaded LLM backbone.

    ``model``: the ``PeftModel`` when LoRA was requested, else the causal LM; ``tokenizer``; ``identity``;
    ``quantization``: resolved ("nf4", "nf4-dq", "int8" or "none"); ``dtype``: the compute dtype; ``device``;
    ``lora``: the :class:`LoraSpec` used or None.
    """

    model: Any
    tokenizer: Any
    identity: ModelIdentity
    quantization: str
    dtype: Any
    device: Any
    lora: LoraSpec | None = None
    gradient_checkpointing: bool = False
    checkpoint_offload: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def causal_lm(self) -> Any:
        """The underlying ``*ForCausalLM`` (unwrapped from peft; LoRA layers stay injected)."""
        model = self.model
        get_base = getattr(model, "get_base_model", None)
        return get_base() if callable(get_base) else model

    @property
    def hidden_size(self) -> int:
        """Width of the hidden states / input embeddings."""
        config = self.causal_lm.config
        text_config = getattr(config, "get_text_config", None)
        if callable(text_config):
            config = text_config()
        return int(config.hidden_size)

    @property
    def input_embeddings(self) -> Any:
        """The input embedding module (``nn.Embedding``)."""
        return self.causal_lm.get_input_embeddings()

    def trainable_parameters(self) -> list[Any]:
        """The parameters with ``requires_grad`` (the LoRA weights when adapters are attached)."""
        return [p for p in self.model.parameters() if p.requires_grad]


# ---------------------------------------------------------------- helpers


def decoder_of(model: Any) -> Any:
    """The transformer body (no vocabulary projection) of a causal LM, with or without a peft wrapper:
    ``decoder(inputs_embeds=, attention_mask=).last_hidden_state`` is [B, T, hidden] (final norm applied)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    decoder = base.get_decoder() if hasattr(base, "get_decoder") else getattr(base, "model", None)
    if decoder is None or decoder is base:
        raise HybridjetError(f"{type(base).__name__}: cannot find the inner decoder")
    return decoder


def resolve_device(device: Any = None) -> Any:
    """``torch.device``: the given one, else CUDA when available, else CPU.

    A bare ``cuda`` means this process's GPU: ``LOCAL_RANK`` under a DDP launcher (Lightning, torchrun, SLURM), so
    each rank's 4-bit model is built on its own device (bitsandbytes weights are placed at load time), else the
    current CUDA device.
    """
    import os

    import torch

    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise HybridjetError(f"invalid device {device!r}: {exc}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise HybridjetError(f"device {device!r} requested but CUDA is not available")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise HybridjetError(f"device {device!r} requested but this machine has {torch.cuda.device_count()} GPU(s)")
    if dev.type == "cuda" and dev.index is None:
        local_rank = os.environ.get("LOCAL_RANK")
        index = int(local_rank) if local_rank is not None else torch.cuda.current_device()
        dev = torch.device("cuda", index % torch.cuda.device_count())
    return dev


def resolve_dtype(dtype: Any, device: Any) -> Any:
    """``torch.dtype``: the given one (name or dtype), else bf16 on CUDA (fp16 without bf16 support), else fp32."""
    import torch

    if dtype is None or dtype == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    key = str(dtype).lower().removeprefix("torch.")
    if key not in _DTYPES:
        raise HybridjetError(f"unknown dtype {dtype!r}: expected one of fp32, bf16, fp16")
    return getattr(torch, _DTYPES[key])


def resolve_quantization(quantization: str | None, device: Any) -> str:
    """The effective quantization: ``auto`` is nf4-dq on CUDA, none elsewhere."""
    q = "none" if quantization is None else str(quantization).lower()
    if q not in QUANTIZATIONS:
        raise HybridjetError(f"unknown quantization {quantization!r}: expected one of {', '.join(QUANTIZATIONS)}")
    if q == "auto":
        return "nf4-dq" if device.type == "cuda" else "none"
    return q


def bnb_config(quantization: str, compute_dtype: Any) -> Any:
    """``BitsAndBytesConfig`` for a resolved quantization (None for "none")."""
    if quantization == "none":
        return None
    from transformers import BitsAndBytesConfig

    if quantization == "int8":
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=quantization == "nf4-dq",
        bnb_4bit_compute_dtype=compute_dtype,
    )


def load_tokenizer(path: str | os.PathLike[str], trust_remote_code: bool = False) -> Any:
    """The tokenizer of a local HF directory, with a pad token guaranteed (see :func:`ensure_pad_token`)."""
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(str(path), local_files_only=True, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as exc:
        raise HybridjetError(f"{path}: cannot load the tokenizer: {str(exc).splitlines()[0]}") from None
    ensure_pad_token(tok)
    return tok


def ensure_pad_token(tokenizer: Any) -> None:
    """Set a pad token when missing: one the vocabulary has that is neither eos nor bos
    (:func:`hybridjet.llm.gguf_tokenizer.pad_candidate`: ``<pad>``, ``<|finetune_right_pad_id|>``,
    ``<|endoftext|>``, a reserved or unused token, unk), else eos.  A pad distinct from eos keeps label masking of
    padding from also masking the eos label."""
    if tokenizer.pad_token is not None:
        return
    tokenizer.pad_token = pad_candidate(tokenizer) or tokenizer.eos_token


# ---------------------------------------------------------------- the loader


def load_backbone(
    name_or_path: str | os.PathLike[str] = "smollm2",
    quantization: str = "auto",
    lora: str | LoraSpec | dict[str, Any] | None = None,
    dtype: Any = None,
    device: Any = None,
    gradient_checkpointing: bool | float = False,
    checkpoint_offload: bool = False,
    nf4_dequant: str = "bitsandbytes",
    cache_dir: str | os.PathLike[str] | None = None,
    trust_remote_code: bool = False,
    upcast_frozen: bool | None = None,
    attention: str | None = None,
    init: str = "pretrained",
    init_seed: int = 0,
    layers: int | None = None,
) -> Backbone:
    """Load a causal LM backbone (alias ``smollm2``, a local HF dir or .gguf file, or a locally cached hub id).

    ``quantization``: nf4 | nf4-dq | int8 | none | auto (nf4-dq on CUDA, none on CPU), applied at load time
    through bitsandbytes; ``dtype``: compute dtype (default bf16 on CUDA, fp32 on CPU); ``lora``: a preset name
    (qkv, attn, all-linear), a :class:`LoraSpec`, a dict or None; ``gradient_checkpointing``: non-reentrant,
    works with ``inputs_embeds``; ``true`` for every decoder layer, a fraction in (0, 1] for that share of them
    (:func:`checkpoint_fraction`); ``checkpoint_offload``: what the decoder saves for the backward waits in pinned
    host memory (:mod:`hybridjet.llm.offload`; a GPU only); ``nf4_dequant="graph"``: NF4 layers dequantized in torch operations
    (:mod:`hybridjet.llm.nf4`).  Base weights are frozen.  For quantized models with LoRA, peft's
    ``prepare_model_for_kbit_training`` is applied (it upcasts non-quantized fp16/bf16 params to fp32);
    ``upcast_frozen=False`` casts those frozen norms and embeddings back to the compute dtype afterwards (a bf16
    residual stream: fewer casts, bf16 attention, faster on a GPU at the same AUC); ``None`` = ``False`` on CUDA,
    ``True`` elsewhere.
    ``attention``: transformers' ``attn_implementation`` (``sdpa``, ``eager``, ``flex_attention`` ...; default: transformers'
    choice). ``init="random"``: the same architecture with its weights drawn anew with ``init_seed``
    (:mod:`hybridjet.llm.random_init`), the control that tells pretraining from the architecture. ``layers``: keep
    only the first that many decoder layers (:func:`keep_first_layers`; ``None``: all).
    """
    import torch

    dev = resolve_device(device)
    compute_dtype = resolve_dtype(dtype, dev)
    if upcast_frozen is None:
        upcast_frozen = dev.type != "cuda"
    quant = resolve_quantization(quantization, dev)
    spec = as_lora_spec(lora)
    if init not in INITS:
        raise HybridjetError(f"init: expected one of {', '.join(INITS)}, got {init!r}")
    if nf4_dequant not in NF4_DEQUANTS:
        raise HybridjetError(f"nf4_dequant: expected one of {', '.join(NF4_DEQUANTS)}, got {nf4_dequant!r}")
    if checkpoint_offload and not gradient_checkpointing:
        raise HybridjetError("checkpoint_offload: offloads the checkpointed layers' inputs, so it needs "
                             "gradient_checkpointing")
    identity = resolve_model(name_or_path, cache_dir=cache_dir)
    if init == "random":
        identity = random_weights(identity, init_seed, cache_dir)
    try:
        tokenizer = load_tokenizer(identity.path, trust_remote_code=trust_remote_code)
        model = _load_causal_lm(identity.path, quant, compute_dtype, dev, trust_remote_code, attention)
    except HybridjetError as exc:
        if identity.format != "gguf" or init == "random":
            raise
        # an unloadable GGUF cache (corrupted after verification): convert again, once
        log.warning("hybridjet: cached conversion %s unloadable (%s): rebuilding", identity.path, exc)
        identity = resolve_model(name_or_path, cache_dir=cache_dir, rebuild=True)
        tokenizer = load_tokenizer(identity.path, trust_remote_code=trust_remote_code)
        model = _load_causal_lm(identity.path, quant, compute_dtype, dev, trust_remote_code, attention)
    if layers is not None:
        keep_first_layers(model, layers)
    model.requires_grad_(False)
    if model.generation_config is not None and model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    gc_kwargs = {"use_reentrant": False}
    if spec is not None:
        from peft import get_peft_model, prepare_model_for_kbit_training

        # checkpointing is enabled below, non-reentrant, so peft's preparation only upcasts the frozen norms and
        # embeddings to fp32: wanted with upcast_frozen, skipped without (an upcast and a cast back would put every
        # fp32 copy on the device at once, a transient 2x of the embeddings: +2 GiB at Llama-3.1-8B's shape)
        if quant != "none" and upcast_frozen:
            model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
        elif quant != "none" and compute_dtype != torch.float32:
            for param in model.parameters():  # all frozen here; 4-bit storage is uint8 and stays
                if param.dtype == torch.float32:
                    param.data = param.data.to(compute_dtype)
        spec = spec.for_model_type(getattr(model.config, "model_type", None))
        _check_targets(model, spec)
        with warnings.catch_warnings():  # peft probes deprecated transformers properties
            warnings.simplefilter("ignore", FutureWarning)
            model = get_peft_model(model, spec.peft_config())
    if nf4_dequant == "graph":
        dequantize_in_graph(model)
    if gradient_checkpointing:
        enable_checkpointing(model, gc_kwargs)
        checkpoint_fraction(model, gradient_checkpointing)
        if checkpoint_offload and dev.type == "cuda":  # on a CPU the activations are in host memory already
            offload_saved_activations(decoder_of(model))
    model.eval()
    return Backbone(
        model=model,
        tokenizer=tokenizer,
        identity=identity,
        quantization=quant,
        dtype=compute_dtype,
        device=dev,
        lora=spec,
        gradient_checkpointing=bool(gradient_checkpointing),
        checkpoint_offload=checkpoint_offload,
        extra={"torch": torch.__version__},
    )


def _load_causal_lm(path: str, quant: str, compute_dtype: Any, dev: Any, trust_remote_code: bool,
                    attention: str | None = None) -> Any:
    from transformers import AutoModelForCausalLM

    kwargs: dict[str, Any] = {
        "dtype": compute_dtype,
        "local_files_only": True,
        "trust_remote_code": trust_remote_code,
    }
    if attention is not None:
        kwargs["attn_implementation"] = attention
    qconf = bnb_config(quant, compute_dtype)
    if qconf is not None:
        kwargs["quantization_config"] = qconf
        kwargs["device_map"] = {"": str(dev)}
    from safetensors import SafetensorError

    try:
        model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    except (OSError, ValueError, SafetensorError) as exc:
        raise HybridjetError(f"{path}: cannot load the model: {str(exc).splitlines()[0]}") from None
    if qconf is None:
        model.to(dev)
    return model


#: the largest config.json read for a model's layer count (a real one is a few kB)
_CONFIG_BYTES = 1 << 20


def decoder_layer_count(model: str) -> int | None:
    """The decoder layers of ``model`` (an alias, a local HF directory or a .gguf file) as its config.json says,
    without loading its weights; ``None`` when the config does not say."""
    import json

    config = Path(resolve_model(model).path) / "config.json"
    try:
        if config.stat().st_size > _CONFIG_BYTES:
            return None
        record = json.loads(config.read_text())
    except (OSError, ValueError):
        return None
    record = record.get("text_config", record) if isinstance(record, dict) else {}
    layers = record.get("num_hidden_layers") if isinstance(record, dict) else None
    return layers if isinstance(layers, int) and not isinstance(layers, bool) else None


def keep_first_layers(model: Any, layers: int) -> None:
    """Cut the decoder to its first ``layers`` layers (the final norm stays; the others' weights are freed): the
    lower layers of a pretrained LLM as a shorter, faster backbone, as One Fits All (Zhou et al., NeurIPS 2023) used
    GPT-2's first six. One line for a count the model does not have."""
    from torch import nn

    decoder = decoder_of(model)
    total = len(decoder.layers)
    if isinstance(layers, bool) or not isinstance(layers, int) or not 1 <= layers <= total:
        raise HybridjetError(f"llm_layers: expected a whole number from 1 to {total} (the model's decoder layers), "
                             f"got {layers!r}")
    decoder.layers = nn.ModuleList(list(decoder.layers)[:layers])
    for config in {id(c): c for c in (model.config, getattr(decoder, "config", model.config))}.values():
        config.num_hidden_layers = layers
        if getattr(config, "layer_types", None):  # per-layer attention kinds (sliding or full) of some families
            config.layer_types = list(config.layer_types)[:layers]


def enable_checkpointing(model: Any, kwargs: dict[str, Any] | None = None) -> None:
    """Non-reentrant activation (gradient) checkpointing on the causal LM under ``model`` (peft or not)."""
    kwargs = {"use_reentrant": False} if kwargs is None else kwargs
    target = model.get_base_model() if hasattr(model, "get_base_model") else model
    if hasattr(target, "activation_checkpointing_enable"):  # its newer name
        target.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        target.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    target.config.use_cache = False


def checkpoint_fraction(model: Any, fraction: bool | float) -> None:
    """Leave gradient checkpointing on for ``fraction`` of the decoder layers (evenly spread) and off for the rest
    (transformers' checkpointed layers each carry their own switch); ``True``: every layer."""
    if isinstance(fraction, bool) or not fraction:
        return
    if not 0 < float(fraction) <= 1:
        raise HybridjetError(f"gradient_checkpointing: expected true, false or a fraction in (0, 1], got {fraction}")
    for i, layer in enumerate(decoder_of(model).layers):
        layer.gradient_checkpointing = int((i + 1) * fraction) > int(i * fraction)


def _check_targets(model: Any, spec: LoraSpec) -> None:
    names = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    missing = [m for m in spec.modules if m not in names]
    if missing:
        raise HybridjetError(
            f"LoRA target module(s) {', '.join(missing)} not found in {type(model).__name__}"
        )
