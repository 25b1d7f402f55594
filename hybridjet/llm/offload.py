"""The activations a checkpointed decoder saves for its backward, kept in pinned host memory in between
(``runtime.checkpoint_offload``).

With every layer checkpointed, what waits on the GPU between the forward and the backward is each layer's input
(layers x tokens x hidden: 1 GiB for an 8B model at 4,096 tokens). Here they wait in host memory: a saved-tensors
hook around the decoder's forward copies each large floating-point tensor to pinned memory (asynchronously, on the
compute stream) and the backward copies it back. The hook sits on the decoder module, outside the layers, so that
compiled layers stay whole graphs (transformers' own ``offload`` enters ``save_on_cpu`` inside each layer, where
Dynamo cannot trace it: the compiled layers then fell back to eager). Parameters and small tensors stay where
they are; strides are kept, so a compiled backward finds its saved tensors as it expects them.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

#: tensors smaller than this stay on the device (a copy costs more than the memory it frees)
MIN_OFFLOAD_BYTES = 1 << 20


def _dense(t: torch.Tensor) -> bool:
    """Whether ``t``'s elements fill its strides without gaps or overlaps (a same-strided copy holds exactly them)."""
    try:
        from torch._prims_common import is_non_overlapping_and_dense
    except ImportError:  # pragma: no cover - torch moved it
        return t.is_contiguous()
    return bool(is_non_overlapping_and_dense(t))


class HostOffload:
    """Saved-tensor hooks that move ``device_type`` tensors of at least ``min_bytes`` (not ``module``'s parameters
    or buffers) to host memory, pinned where ``pin``; ``offloaded`` counts what was moved."""

    def __init__(self, module: nn.Module, device_type: str = "cuda", pin: bool = True,
                 min_bytes: int | None = None) -> None:
        self.device_type, self.pin = device_type, pin
        self.min_bytes = MIN_OFFLOAD_BYTES if min_bytes is None else min_bytes
        self.kept = {t.untyped_storage().data_ptr() for t in [*module.parameters(), *module.buffers()]}
        self.offloaded = 0
        self._active: list[Any] = []

    def pack(self, t: torch.Tensor) -> Any:
        if (t.device.type != self.device_type or not t.is_floating_point() or isinstance(t, nn.Parameter)
                or t.numel() * t.element_size() < self.min_bytes or not _dense(t)
                or t.untyped_storage().data_ptr() in self.kept):
            return t
        host = torch.empty_strided(t.size(), t.stride(), dtype=t.dtype, device="cpu", pin_memory=self.pin)
        host.copy_(t, non_blocking=self.pin)
        self.offloaded += 1
        return t.device, host

    @staticmethod
    def unpack(packed: Any) -> torch.Tensor:
        if isinstance(packed, torch.Tensor):
            return packed
        device, host = packed
        return host.to(device, non_blocking=host.is_pinned())

    def enter(self, *_: Any) -> None:
        """Start offloading (a forward with gradients begins)."""
        if torch.is_grad_enabled():
            hooks = torch.autograd.graph.saved_tensors_hooks(self.pack, self.unpack)
            hooks.__enter__()
            self._active.append(hooks)
        else:
            self._active.append(None)

    def exit(self, *_: Any) -> None:
        """Stop offloading (the forward returned or raised)."""
        hooks = self._active.pop() if self._active else None
        if hooks is not None:
            hooks.__exit__(None, None, None)


def offload_saved_activations(decoder: nn.Module, device_type: str = "cuda", pin: bool = True) -> HostOffload:
    """Offload what ``decoder``'s forward saves for the backward (see the module docstring); returns the hooks'
    owner (its ``offloaded`` counter), also kept as ``decoder.saved_offload``."""
    offload = HostOffload(decoder, device_type, pin)
    decoder.saved_offload = offload
    decoder.register_forward_pre_hook(offload.enter)
    decoder.register_forward_hook(offload.exit, always_call=True)
    return offload
