"""Issue 4, must-show 3: stage 1 alone recovers a known shape from photometric multi-view targets (no
prior), and stage 2 started from that stage-1 field tightens the Chamfer bound. The targets and the
distance to the true surface come from an analytic ray cast / closed form (nerf_box_oracle)."""

import torch
from nerf_box_oracle import chamfer_to_box
from test_stage1_nerf import THRESHOLD, box_views, mesh_chamfer

from recon.pipeline.stage import run_stage
from recon.pipeline.stage1_config import Stage1Config
from recon.pipeline.stage1_nerf import Stage1
from recon.pipeline.stage2_dmtet import Stage2, Stage2Config, ViewTargets
from recon.render.cpu import CpuRasterizer
from recon.scene.dmtet import DMTet
from recon.scene.isosurface import solid_density_fn

STAGE1_BOUND = 0.03  # about one pixel at 48² (see test_stage1_nerf)


def main_component_chamfer(mesh) -> float:
    tm = mesh.to_trimesh()
    main = max(tm.split(only_watertight=False), key=lambda c: c.area)
    return chamfer_to_box(main.vertices, main.faces)


def test_stage2_from_stage1_tightens_the_chamfer_bound():
    torch.set_num_threads(1)
    views = box_views(48)
    cfg = Stage1Config(steps=300, reference_rays=2048, seed=0)
    cfg.volume.samples_per_ray = 32
    stage1 = Stage1(cfg, views, hypotheses=1)
    run_stage(stage1)
    first = mesh_chamfer(stage1)
    assert first < STAGE1_BOUND

    field = stage1.field.requires_grad_(False)
    geometry = DMTet(resolution=48, radius=1.0)
    geometry.init_from_density(solid_density_fn(field.density_fn(0), THRESHOLD), THRESHOLD)
    targets = ViewTargets(views.cameras, rgb=views.rgb, mask=views.mask)
    stage2 = Stage2(Stage2Config(steps=150, tet_resolution=48, seed=0), geometry, field.color_fn(0), CpuRasterizer(),
                    targets=targets)
    second = main_component_chamfer(run_stage(stage2).mesh())
    print(f"Chamfer to the box: stage 1 (marching cubes at σ={THRESHOLD}) {first:.4f}, stage 2 {second:.4f}")
    assert second < 0.85 * first
