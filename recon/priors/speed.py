"""Speed knobs for the networks inside a prior: device, dtype, memory format, attention kernel, compile.

One small dataclass, applied once when a prior is built. On CUDA the useful defaults are half
precision (fp16 or bf16), PyTorch's fused scaled-dot-product attention (SDPA) and channels-last
convolutions; ``torch.compile`` is opt-in because its first call compiles for minutes. On CPU the
defaults stay at fp32 (CPU half-precision kernels are slower, not faster).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

DTypeName = Literal["auto", "float32", "float16", "bfloat16"]

_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


@dataclass
class SpeedConfig:
    """How a prior's networks run.

    Attributes:
        device: ``auto`` (CUDA when available, else CPU), or any torch device string.
        dtype: weights and activations; ``auto`` = float16 on CUDA, float32 on CPU.
        channels_last: NHWC memory format for convolutions (a win on tensor-core GPUs).
        sdpa: use PyTorch's scaled_dot_product_attention (flash / memory-efficient kernels).
        compile: wrap the denoiser in ``torch.compile`` (slow first call; then faster steps).
        compile_mode: ``torch.compile`` mode (``default``, ``reduce-overhead``, ``max-autotune``).
        compile_dynamic: let compiled graphs accept varying batch sizes without recompiling.
        compile_backend: ``torch.compile`` backend (``inductor``; ``eager`` captures the graph without
            generating code: a quick check of the compile path on a CPU, no speed-up).
    """

    device: str = "auto"
    dtype: DTypeName = "auto"
    channels_last: bool = False
    sdpa: bool = True
    compile: bool = False
    compile_mode: str = "default"
    compile_dynamic: bool = True
    compile_backend: str = "inductor"

    def torch_device(self) -> torch.device:
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.device)

    def torch_dtype(self) -> torch.dtype:
        if self.dtype == "auto":
            return torch.float16 if self.torch_device().type == "cuda" else torch.float32
        return _DTYPES[self.dtype]

    @classmethod
    def fast_cuda(cls, dtype: DTypeName = "float16", compile: bool = False) -> SpeedConfig:
        """The recommended GPU setting: half precision, SDPA, channels-last."""
        return cls(device="cuda", dtype=dtype, channels_last=True, sdpa=True, compile=compile)


def speed_of(module: torch.nn.Module) -> SpeedConfig:
    """The SpeedConfig describing where an already prepared network lives (device and dtype only)."""
    param = next(module.parameters())
    names = {torch.float16: "float16", torch.bfloat16: "bfloat16", torch.float32: "float32"}
    return SpeedConfig(device=str(param.device), dtype=names.get(param.dtype, "float32"))  # type: ignore[arg-type]


def use_sdpa(module: torch.nn.Module) -> None:
    """Route every diffusers attention layer in ``module`` through PyTorch SDPA."""
    from diffusers.models.attention_processor import Attention, AttnProcessor2_0

    for sub in module.modules():
        if isinstance(sub, Attention):
            sub.set_processor(AttnProcessor2_0())


def prepare_module(module: torch.nn.Module, speed: SpeedConfig, *, denoiser: bool = False) -> torch.nn.Module:
    """Move a frozen network to the configured device/dtype and apply the speed knobs in place.

    ``denoiser`` marks the network called every step (the UNet): only it gets channels-last and
    ``torch.compile``; encoders run once per condition or once per render and are left eager.
    """
    module = module.to(device=speed.torch_device()).eval().requires_grad_(False)
    params = next(module.parameters(), None)
    if params is not None and params.dtype != speed.torch_dtype():  # loaders usually load in the dtype already
        module = module.to(dtype=speed.torch_dtype())
    if speed.sdpa:
        use_sdpa(module)
    if denoiser and speed.channels_last:
        module = module.to(memory_format=torch.channels_last)
    if denoiser and speed.compile:
        if speed.compile_backend == "inductor":
            module.compile(mode=speed.compile_mode, dynamic=speed.compile_dynamic)
        else:  # modes are inductor's
            module.compile(backend=speed.compile_backend, dynamic=speed.compile_dynamic)
    return module


def as_network_input(x: torch.Tensor, speed: SpeedConfig | None) -> torch.Tensor:
    """A (N, C, H, W) input in the memory format the denoiser was prepared for."""
    if speed is not None and speed.channels_last and x.ndim == 4:
        return x.contiguous(memory_format=torch.channels_last)
    return x
