"""Dense inference copy of a 4-bit/8-bit, LoRA-adapted LLM.

Training keeps the frozen base in NF4 to save memory; scoring does not need that: dequantizing each bitsandbytes
layer once and folding the LoRA update ``W + (alpha/r) B A`` into it gives plain dense matmuls in the compute dtype,
with no per-step dequantization kernels, no adapter branches and no fp32 casts. The function computed is the same
up to the rounding of the compute dtype (tested against the 4-bit + LoRA model).
"""

from __future__ import annotations

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
            # bitsandbytes repacks the weight for its AVX512 CPU kernel at the first no-grad forward: undo that
            from bitsandbytes.nn.modules import _convert_weight_packed_for_cpu_inverse

            data, state = _convert_weight_packed_for_cpu_inverse(data, state)
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


def _replace_quantized(root: nn.Module, dtype: torch.dtype) -> int:
    import bitsandbytes as bnb

    replaced = 0
    for module in list(root.modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, (bnb.nn.Linear4bit, bnb.nn.Linear8bitLt)):
                setattr(module, child_name, _dense_linear(child, dtype))
                replaced += 1
    return replaced


def _merge_lora(root: nn.Module, dtype: torch.dtype) -> int:
    """Replace every peft LoRA layer by its (now dense) base layer with the active adapters' update added."""
    merged = 0
    for module in list(root.modules()):
        for child_name, child in list(module.named_children()):
            if not (hasattr(child, "lora_A") and hasattr(child, "get_base_layer")):
                continue
            base = child.get_base_layer()
            if type(base) is not nn.Linear:
                raise TypeError(f"LoRA on {type(base).__name__} layers cannot be merged into a dense copy")
            if any(getattr(child, "use_dora", {}).get(a, False) for a in child.active_adapters):
                raise TypeError("DoRA adapters cannot be merged into a dense copy")
            with torch.no_grad():
                for adapter in child.active_adapters:
                    if adapter in child.lora_A:
                        base.weight += child.get_delta_weight(adapter).to(base.weight.dtype)
            setattr(module, child_name, base.to(dtype))
            merged += 1
    return merged


def densify(model: nn.Module, dtype: torch.dtype | None = None) -> nn.Module:
    """In place: dequantize every bitsandbytes linear layer, merge the active LoRA adapters (peft) into the dense
    weights and cast the whole model to ``dtype`` (default: the dtype of the input embeddings). Returns the bare
    transformers model (no peft wrapper), in eval mode, for inference only."""
    dtype = dtype or model.get_input_embeddings().weight.dtype
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:  # no quantized layers without bitsandbytes
        pass
    else:
        _replace_quantized(model, dtype)
    _merge_lora(model, dtype)
    while hasattr(model, "get_base_model"):  # PeftModel -> LoraModel -> the transformers model
        inner = model.get_base_model()
        if inner is model:
            break
        model = inner
    # now a dense model: keep transformers from treating it as a bitsandbytes one (it refuses dtype casts of those)
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    for attr in ("hf_quantizer", "quantization_method"):
        if getattr(model, attr, None) is not None:
            setattr(model, attr, None)
    for attr in ("is_loaded_in_4bit", "is_loaded_in_8bit", "is_quantized"):
        if getattr(model, attr, False):
            setattr(model, attr, False)
    model = model.to(dtype)
    for p in model.parameters():
        p.requires_grad_(False)
    return model.eval()


def quantized_layer_count(model: Any) -> int:
    """Number of bitsandbytes linear layers left in ``model`` (0 after :func:`densify`)."""
    try:
        import bitsandbytes as bnb
    except ImportError:
        return 0
    return sum(isinstance(m, (bnb.nn.Linear4bit, bnb.nn.Linear8bitLt)) for m in model.modules())
