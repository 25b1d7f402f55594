"""Dense inference copy of a 4-bit/8-bit, LoRA-adapted LLM.

Training keeps the frozen base in NF4 to save memory; scoring does not need that: dequantizing each bitsandbytes
layer once gives plain dense matmuls in the compute dtype, with no per-step dequantization kernels. In fp32 the LoRA
update ``W + (alpha/r) B A`` is also folded into the weights (no adapter branches). In bf16/fp16 it is not: a
weight's 8 (11) mantissa bits round away most of an update a few hundredths of its size, so the adapter stays a
branch beside the dense base, as it is beside the 4-bit one. The function computed is the same up to the rounding of
the compute dtype (tested against the 4-bit + LoRA model).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn


def _dense_linear(layer: nn.Module, dtype: torch.dtype) -> nn.Linear:
    """An ``nn.Linear`` holding the dequantized weight of a bitsandbytes ``Linear4bit`` / ``Linear8bitLt``."""
    import bitsandbytes as bnb
    import bitsandbytes.functional as F

    weight = layer.weight
    if isinstance(layer, bnb.nn.Linear4bit):
        data, state = weight.data, weight.quant_state
        if getattr(state, "packing_format_for_cpu", False):
            data, state = _unpacked_for_cpu(data, state)
        dense = F.dequantize_4bit(data, state)
    elif isinstance(layer, bnb.nn.Linear8bitLt):
        if getattr(weight, "CB", None) is not None and getattr(weight, "SCB", None) is not None:
            dense = F.int8_vectorwise_dequant(weight.CB, weight.SCB)
        else:
            dense = F.int8_vectorwise_dequant(weight.data, layer.state.SCB)
    else:
        raise TypeError(f"not a bitsandbytes layer: {type(layer).__name__}")
    out = nn.Linear(layer.in_features, layer.out_features, bias=layer.bias is not None,
                    device=dense.device, dtype=dtype)
    with torch.no_grad():
        out.weight.copy_(dense.to(dtype))
        if layer.bias is not None:
            out.bias.copy_(layer.bias.to(dtype))
    return out


def _unpacked_for_cpu(data: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
    """The standard 4-bit layout of a weight that bitsandbytes repacked for its AVX512 CPU kernel (it does so at a
    layer's first no-grad forward), without touching the live layer's state."""
    import copy

    from bitsandbytes.nn.modules import _convert_weight_packed_for_cpu_inverse

    nested = state.original_nested
    data, state = _convert_weight_packed_for_cpu_inverse(data, copy.copy(state))
    if not nested:
        # bitsandbytes 0.50 restores the absmax of double-quantized states only: the packing stored it as
        # [K / blocksize, N] in bf16, the dequantization reads it as [N * K / blocksize] in the original dtype
        state.absmax = state.absmax.T.reshape(-1).to(state.dtype).contiguous()
    return data, state


def _replace_children(root: nn.Module, replacement: Callable[[nn.Module], nn.Module | None]) -> None:
    """Swap every submodule for which ``replacement`` returns a module (``None``: keep it)."""
    for module in list(root.modules()):
        for name, child in list(module.named_children()):
            new = replacement(child)
            if new is not None:
                setattr(module, name, new)


def _merged_base(layer: nn.Module) -> nn.Linear | None:
    """A peft LoRA layer's (already dense) base layer with the active adapters' update added; ``None`` otherwise."""
    if not (hasattr(layer, "lora_A") and hasattr(layer, "get_base_layer")):
        return None
    base = layer.get_base_layer()
    if type(base) is not nn.Linear:
        raise TypeError(f"LoRA on {type(base).__name__} layers cannot be merged into a dense copy")
    if any(getattr(layer, "use_dora", {}).get(a, False) for a in layer.active_adapters):
        raise TypeError("DoRA adapters cannot be merged into a dense copy")
    with torch.no_grad():
        for adapter in layer.active_adapters:
            if adapter in layer.lora_A:
                base.weight += layer.get_delta_weight(adapter).to(base.weight.dtype)
    return base


def merges_lora(dtype: torch.dtype) -> bool:
    """Whether :func:`densify` folds LoRA into the weights in ``dtype`` by default (fp32 only; elsewhere the adapter
    stays a branch, so the base model can still answer with it switched off)."""
    return dtype == torch.float32


def adapter_branches(model: nn.Module) -> list[nn.Module]:
    """The peft adapter layers left in ``model`` (the branches of an unmerged dense copy)."""
    try:
        from peft.tuners.tuners_utils import BaseTunerLayer
    except ImportError:
        return []
    return [m for m in model.modules() if isinstance(m, BaseTunerLayer)]


@contextlib.contextmanager
def adapters_disabled(model: nn.Module) -> Iterator[int]:
    """Within the block every adapter branch of ``model`` is off (the base model answers); yields how many."""
    layers = adapter_branches(model)
    for layer in layers:
        layer.enable_adapters(False)
    try:
        yield len(layers)
    finally:
        for layer in layers:
            layer.enable_adapters(True)
        for p in model.parameters():  # enabling marks the adapter trainable again; a dense copy is inference only
            p.requires_grad_(False)


def densify(model: nn.Module, dtype: torch.dtype | None = None, merge_lora: bool | None = None) -> nn.Module:
    """In place: dequantize every bitsandbytes linear layer, merge the active LoRA adapters (peft) into the dense
    weights if ``merge_lora`` (default: in fp32 only, see the module's docstring) and cast the whole model to
    ``dtype`` (default: the dtype of the input embeddings). Returns the bare transformers model (no peft wrapper;
    unmerged adapters stay inside it), in eval mode, for inference only."""
    dtype = dtype or model.get_input_embeddings().weight.dtype
    merge_lora = merges_lora(dtype) if merge_lora is None else merge_lora
    if quantized_layer_count(model):  # the LoRA wrappers' base layers included: dense before the merge below
        quantized = quantized_layer_types()
        _replace_children(model, lambda m: _dense_linear(m, dtype) if isinstance(m, quantized) else None)
    if merge_lora:
        _replace_children(model, _merged_base)
    if hasattr(model, "get_base_model"):  # PeftModel -> the transformers model
        model = model.get_base_model()
    # now a dense model: keep transformers from treating it as a bitsandbytes one (it refuses dtype casts of those)
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    for attr in ("hf_quantizer", "quantization_method"):
        if getattr(model, attr, None) is not None:
            setattr(model, attr, None)
    for attr in ("is_loaded_in_4bit", "is_loaded_in_8bit", "is_quantized"):
        if getattr(model, attr, False):
            setattr(model, attr, False)
    for p in model.parameters():  # inference only; a training step's gradients (CUDA-graph outputs) are not cast
        p.grad = None
    model = model.to(dtype)
    for p in model.parameters():
        p.requires_grad_(False)
    return model.eval()


def quantized_layer_types() -> tuple[type, ...]:
    """bitsandbytes' linear layer classes (none without bitsandbytes)."""
    try:
        import bitsandbytes as bnb
    except ImportError:
        return ()
    return (bnb.nn.Linear4bit, bnb.nn.Linear8bitLt)


def quantized_layers(model: Any) -> list[nn.Module]:
    """The bitsandbytes linear layers left in ``model`` (none after :func:`densify`)."""
    types = quantized_layer_types()
    return [m for m in model.modules() if isinstance(m, types)] if types else []


def quantized_layer_count(model: Any) -> int:
    """Number of bitsandbytes linear layers left in ``model`` (0 after :func:`densify`)."""
    return len(quantized_layers(model))


def dense_weight_bytes(model: nn.Module, dtype: torch.dtype) -> int:
    """Bytes of the dense ``dtype`` weights a dense copy makes of ``model``'s bitsandbytes layers (0 without any):
    the peak it adds, since the quantized layers are freed only once all are replaced."""
    size = torch.empty((), dtype=dtype).element_size()
    return sum(m.in_features * m.out_features * size for m in quantized_layers(model))


def can_merge(model: nn.Module) -> bool:
    """Whether every LoRA layer of ``model`` sits on an ``nn.Linear`` once dense (what merging in fp32 needs)."""
    dense_bases = (nn.Linear, *quantized_layer_types())
    return all(type(m.get_base_layer()) in dense_bases for m in adapter_branches(model) if hasattr(m, "lora_A"))


def free_bytes(device: torch.device) -> int | None:
    """Free memory of ``device`` (CUDA: the driver's figure; CPU: MemAvailable on Linux); ``None`` if unknown."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    if device.type == "cpu":
        try:
            for line in open("/proc/meminfo"):
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
        except OSError:
            return None
    return None


def dense_copy_fits(model: nn.Module, dtype: torch.dtype, device: torch.device, share: float = 0.5,
                    free: int | None = None) -> bool:
    """Whether a dense copy of ``model`` in ``dtype`` is worth making and can be made: it has bitsandbytes layers to
    dequantize, its dense weights take at most ``share`` of the free memory of ``device`` (``free``: that figure
    in bytes, measured when not given), leaving the rest to activations and the KV cache, and, in fp32, every
    LoRA layer can be merged."""
    need = dense_weight_bytes(model, dtype)
    if need == 0 or (merges_lora(dtype) and not can_merge(model)):
        return False
    free = free_bytes(device) if free is None else free
    return free is not None and need <= share * free


def densify_backbone(backbone: Any, dtype: torch.dtype) -> Any:
    """A copy of a :class:`~hybridjet.llm.backbone.Backbone` whose model is :func:`densify`-ed (scoring only)."""
    import dataclasses

    model = densify(backbone.model, dtype)
    return dataclasses.replace(backbone, model=model, quantization="none", lora=None, dtype=dtype)
