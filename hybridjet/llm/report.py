"""``describe(backbone)``: parameter counts and weight memory measured from the loaded tensors."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from hybridjet.llm.backbone import decoder_of
from hybridjet.llm.shared_prefix import supports_shared_prefix


@dataclass
class ModelReport:
    """What a loaded backbone holds.

    ``total_params`` counts logical weights (a 4-bit matrix counts rows x cols, not its packed bytes);
    ``weight_bytes`` is the storage actually held by parameters, quantization state (absmax, codebooks, nested
    double-quant state, int8 scales) and buffers, each tensor counted once (tied weights shared).
    """

    name: str
    path: str
    sha256: str
    total_params: int
    trainable_params: int
    trainable_pct: float
    weight_bytes: int
    dtype: str
    quantization: str
    device: str
    lora: str | None
    layers: int
    hidden_size: int
    vocab_size: int
    family: str = "?"
    chat_template: str | None = None  # its first line, or None for a model without one (a base model)
    special_tokens: dict[str, str | None] = field(default_factory=dict)
    fast_paths: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able description."""
        return asdict(self)

    def table(self) -> str:
        """A human-readable multi-line summary."""
        rows = [
            ("model", self.name),
            ("path", self.path),
            ("sha256", self.sha256[:16] + "..."),
            ("layers / hidden / vocab", f"{self.layers} / {self.hidden_size} / {self.vocab_size}"),
            ("parameters", f"{self.total_params:,}"),
            ("trainable", f"{self.trainable_params:,} ({self.trainable_pct:.3f} %)"),
            ("weight memory", f"{self.weight_bytes / 2**20:,.1f} MiB ({self.weight_bytes:,} bytes)"),
            ("compute dtype", self.dtype),
            ("quantization", self.quantization),
            ("device", self.device),
            ("lora", self.lora or "none"),
            ("family", self.family),
            ("chat template", self.chat_template or "none (a base model: text mode uses the plain template)"),
            ("special tokens", ", ".join(f"{k} {v!r}" for k, v in self.special_tokens.items())),
            *((f"fast path: {k}", v) for k, v in self.fast_paths.items()),
        ]
        width = max(len(k) for k, _ in rows)
        return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def _quant_state_tensors(state: Any, seen: set[int]) -> int:
    """Bytes of the tensors held by a bitsandbytes QuantState (recursing into the nested state)."""
    import torch

    total = 0
    if state is None:
        return 0
    values = state.__dict__.values() if hasattr(state, "__dict__") else ()
    for v in values:
        if isinstance(v, torch.Tensor):
            total += _tensor_bytes(v, seen)
        elif v is not None and type(v).__name__ == "QuantState":
            total += _quant_state_tensors(v, seen)
    return total


def _tensor_bytes(t: Any, seen: set[int]) -> int:
    key = t.data_ptr() if t.numel() else id(t)
    if key in seen:
        return 0
    seen.add(key)
    return t.numel() * t.element_size()


def logical_numel(p: Any) -> int:
    """Number of weights a parameter represents (unpacking 4-bit storage)."""
    state = getattr(p, "quant_state", None)
    if state is not None and getattr(state, "shape", None) is not None:
        n = 1
        for s in state.shape:
            n *= int(s)
        return n
    return int(p.numel())


def weight_memory_bytes(model: Any) -> int:
    """Storage bytes of parameters + quantization state + buffers of ``model``, each tensor counted once."""
    seen: set[int] = set()
    total = 0
    for p in model.parameters():
        total += _tensor_bytes(p, seen)
        total += _quant_state_tensors(getattr(p, "quant_state", None), seen)
        scb = getattr(p, "SCB", None)  # int8 row scales
        if scb is not None:
            total += _tensor_bytes(scb, seen)
    for b in model.buffers():
        total += _tensor_bytes(b, seen)
    return total


def count_parameters(model: Any) -> tuple[int, int]:
    """(total logical parameters, trainable parameters), each tensor counted once."""
    seen: set[int] = set()
    total = trainable = 0
    for p in model.parameters():
        key = p.data_ptr() if p.numel() else id(p)
        if key in seen:
            continue
        seen.add(key)
        n = logical_numel(p)
        total += n
        if p.requires_grad:
            trainable += n
    return total, trainable


def describe(backbone: Any) -> ModelReport:
    """Measure a :class:`~hybridjet.llm.backbone.Backbone`."""
    total, trainable = count_parameters(backbone.model)
    config = backbone.causal_lm.config
    lora = None
    if backbone.lora is not None:
        spec = backbone.lora
        lora = f"r={spec.r} alpha={spec.alpha} on {','.join(spec.modules)}"
    return ModelReport(
        name=backbone.identity.name,
        path=backbone.identity.path,
        sha256=backbone.identity.sha256,
        total_params=total,
        trainable_params=trainable,
        trainable_pct=100.0 * trainable / total if total else 0.0,
        weight_bytes=weight_memory_bytes(backbone.model),
        dtype=str(backbone.dtype).removeprefix("torch."),
        quantization=backbone.quantization,
        device=str(backbone.device),
        lora=lora,
        layers=int(getattr(config, "num_hidden_layers", 0)),
        hidden_size=backbone.hidden_size,
        vocab_size=int(getattr(config, "vocab_size", 0)),
        family=str(getattr(config, "model_type", "?")),
        chat_template=_first_line(getattr(backbone.tokenizer, "chat_template", None)),
        special_tokens={role: getattr(backbone.tokenizer, f"{role}_token", None) for role in ("bos", "eos", "pad")},
        fast_paths={"shared prompt prefix (hybrid)": "yes" if supports_shared_prefix(decoder_of(backbone.model))
                    else "no: the prefix runs with every event"},
    )


def _first_line(text: str | None) -> str | None:
    if not text:
        return None
    line = text.strip().splitlines()[0]
    return line if len(line) <= 80 else line[:77] + "..."
