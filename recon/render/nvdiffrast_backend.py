"""nvdiffrast on CUDA behind the :class:`~recon.render.backend.RasterBackend` interface.

nvdiffrast is an optional extra (``pip install 'recon[cuda]'`` installs the ``diffrp-nvdiffrast`` wheel,
which JIT-compiles its CUDA plugin on first use; NVIDIA Source Code License, non-commercial). It is
imported only when this backend is built, so the rest of recon runs without it.
"""

from __future__ import annotations

import torch

INSTALL_HINT = ("nvdiffrast is not installed: install the CUDA extra with "
                "`pip install 'recon[cuda]'` (package diffrp-nvdiffrast), or use the CPU backend (--backend cpu)")


def import_nvdiffrast():
    """The ``nvdiffrast.torch`` module, or ImportError with one line saying what to install."""
    try:
        import nvdiffrast.torch as dr
    except ImportError as err:
        raise ImportError(INSTALL_HINT) from err
    return dr


class NvdiffrastRasterizer:
    """rasterize / interpolate / antialias through one ``RasterizeCudaContext`` on ``device``."""

    name = "cuda"

    def __init__(self, device: str | torch.device = "cuda"):
        if not torch.cuda.is_available():
            raise RuntimeError("the nvdiffrast backend needs CUDA, and torch.cuda.is_available() is false; "
                               "use the CPU backend (--backend cpu)")
        self._dr = import_nvdiffrast()
        self.device = torch.device(device)
        self._ctx = self._dr.RasterizeCudaContext(device=self.device)

    def rasterize(self, verts_clip: torch.Tensor, faces: torch.Tensor, resolution: tuple[int, int]):
        """verts_clip (B, V, 4) float32 CUDA, faces (F, 3) -> (rast (B, H, W, 4), rast_db (B, H, W, 4))."""
        if not verts_clip.is_cuda:
            raise ValueError("the nvdiffrast backend needs CUDA tensors: move the mesh and cameras to the GPU "
                             "(e.g. mesh.to('cuda')) or use the CPU backend")
        return self._dr.rasterize(self._ctx, verts_clip.float().contiguous(),
                                  faces.to(verts_clip.device).int().contiguous(),
                                  (int(resolution[0]), int(resolution[1])))

    def interpolate(self, attr: torch.Tensor, rast: torch.Tensor, faces: torch.Tensor):
        """attr (V, C), (1, V, C) or (B, V, C) -> ((B, H, W, C), None)."""
        if attr.dim() == 2:  # (V, C) -> (1, V, C): nvdiffrast's broadcast over the minibatch
            attr = attr[None]
        out, _ = self._dr.interpolate(attr.float().contiguous(), rast, faces.int().contiguous())
        return out, None

    def antialias(self, color: torch.Tensor, rast: torch.Tensor, verts_clip: torch.Tensor,
                  faces: torch.Tensor) -> torch.Tensor:
        return self._dr.antialias(color.float().contiguous(), rast, verts_clip.float().contiguous(),
                                  faces.int().contiguous())
