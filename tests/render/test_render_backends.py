"""Backend selection, the missing-nvdiffrast error, and the nvdiffrast-vs-CPU agreement test (GPU only)."""

from __future__ import annotations

import sys

import pytest
import torch
import trimesh

from recon.render.backend import RasterBackend
from recon.render.cameras import camera_batch, to_clip
from recon.render.cpu import CpuRasterizer
from recon.render.select import nvdiffrast_available, select_backend

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_cpu_and_auto_selection_without_cuda():
    assert isinstance(select_backend("cpu"), CpuRasterizer)
    if not nvdiffrast_available():
        assert isinstance(select_backend("auto"), CpuRasterizer)
    with pytest.raises(ValueError, match="unknown rasteriser backend"):
        select_backend("vulkan")


def test_missing_nvdiffrast_names_the_extra_to_install(monkeypatch):
    from recon.render import nvdiffrast_backend

    monkeypatch.setitem(sys.modules, "nvdiffrast", None)  # makes `import nvdiffrast...` raise ImportError
    monkeypatch.setitem(sys.modules, "nvdiffrast.torch", None)
    with pytest.raises(ImportError, match=r"recon\[cuda\].*diffrp-nvdiffrast"):
        nvdiffrast_backend.import_nvdiffrast()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message shown where CUDA is absent")
def test_cuda_backend_without_cuda_fails_with_one_clear_line():
    with pytest.raises(RuntimeError, match="needs CUDA"):
        select_backend("cuda")


def _scene():
    sphere = trimesh.creation.icosphere(subdivisions=3, radius=0.45)
    box = trimesh.creation.box(extents=(0.5, 0.4, 0.3))
    box.apply_translation((0.35, -0.2, 0.25))
    verts = torch.tensor(list(sphere.vertices) + list(box.vertices), dtype=torch.float32)
    faces = torch.tensor(list(sphere.faces) + list(box.faces + len(sphere.vertices)))
    colors = (verts - verts.min(0).values) / (verts.max(0).values - verts.min(0).values)
    return verts, faces, colors


@pytest.mark.gpu
def test_nvdiffrast_and_cpu_backends_agree():
    # Must-show 5: masks IoU > 0.99 and colours within 2/255 on a test scene (and gradients point the same way).
    dr = pytest.importorskip("nvdiffrast.torch", reason="nvdiffrast is not installed (pip install 'recon[cuda]')")
    del dr
    gpu = select_backend("cuda")
    assert isinstance(gpu, RasterBackend)
    cpu = CpuRasterizer()
    verts, faces, colors = _scene()
    res = 128
    cams = camera_batch([0, 30, -15, 60], [0, 70, 200, 310], 3.0, 30, res)
    results = {}
    for name, backend, device in (("cpu", cpu, "cpu"), ("cuda", gpu, "cuda")):
        v = verts.to(device).requires_grad_(True)
        clip = to_clip(v, cams.mvp.to(device))
        f = faces.to(device).int()
        rast, _ = backend.rasterize(clip, f, (res, res))
        col, _ = backend.interpolate(colors.to(device), rast, f)
        aa = backend.antialias(col, rast, clip, f)
        (aa * torch.linspace(0, 1, 3, device=device)).sum().backward()
        results[name] = (rast.detach().cpu(), col.detach().cpu(), aa.detach().cpu(), v.grad.cpu())
    rc, cc, ac, gc = results["cpu"]
    rg, cg, ag, gg = results["cuda"]
    mc, mg = rc[..., 3] > 0, rg[..., 3] > 0
    iou = float((mc & mg).sum() / (mc | mg).sum())
    same_tri = (rc[..., 3] == rg[..., 3]) & mc
    col_err = float((cc - cg)[same_tri].abs().max())
    aa_close = float(((ac - ag).abs().amax(-1) <= 2 / 255).double().mean())
    cos = float(torch.nn.functional.cosine_similarity(gc.reshape(1, -1), gg.reshape(1, -1)))
    print(f"mask IoU {iou:.5f}, colour max error on common triangles {col_err * 255:.3f}/255, "
          f"antialiased pixels within 2/255: {aa_close:.4%}, vertex-gradient cosine {cos:.4f}")
    assert iou > 0.99
    assert col_err <= 2 / 255
    assert aa_close > 0.99
    assert cos > 0.9
