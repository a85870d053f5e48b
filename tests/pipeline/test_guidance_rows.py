"""The 3D guidance hands each batch row to its own hypothesis.

Rows of a stage's guidance batch are hypothesis-major (row k·V + v is view v of hypothesis k). The
property: hypothesis k's gradient does not depend on which other hypotheses share the batch — it equals
what a guidance holding hypothesis k alone gives for the same renders and cameras. Mapping rows to the
wrong hypothesis (e.g. every row to hypothesis 0: one ε*, one trajectory, one random stream for all K)
breaks it. Checked for every distiller whose gradient depends on the hypothesis.
"""

import pytest
import torch

from recon.diffusion import TimestepConfig
from recon.distill import DistillConfig, Hypothesis, build_distiller
from recon.pipeline.guidance import DistillGuidance
from recon.priors.library import LibraryPrior, LibraryPriorConfig
from recon.render.cameras import camera_batch
from recon.render.cpu import CpuRasterizer

K, V = 3, 2


@pytest.fixture(scope="module")
def prior():
    return LibraryPrior.from_folder(None, CpuRasterizer(), LibraryPriorConfig(image_size=16))


def guidance_grad(prior, method, hyps, rgb, cams):
    image = prior.input_view("drum/flat", 64)
    image = (image[:3] * image[3:] + (1 - image[3:]))[None]
    config = DistillConfig(method=method, camera_bin=15.0,
                           timesteps=TimestepConfig(kind="anneal", t_min=0.2, t_max=0.9, total_steps=4))
    guidance = DistillGuidance(prior, build_distiller(prior, config), hyps,
                               lambda c: prior.condition(image=image, camera=c))
    x = rgb.clone().requires_grad_(True)
    grads = []
    for step in range(2):
        x.grad = None
        guidance(x, cams, step).backward()
        grads.append(x.grad.clone() * x.shape[0])  # sd_loss divides by the batch
    return torch.stack(grads)  # (steps, rows, 3, H, W)


@pytest.mark.parametrize("method", ["dsd", "dsd-commit", "sds"])
def test_each_row_gets_its_own_hypothesis(prior, method):
    hyps = [Hypothesis(5, k) for k in range(K)]
    g = torch.Generator().manual_seed(0)
    rgb = torch.rand(K * V, 3, 16, 16, generator=g)
    cams = camera_batch(torch.tensor([10.0, 30.0] * K), torch.tensor([150.0, 200.0, 90.0, 170.0, 240.0, 185.0]),
                        3.8, 20.0, 16)
    together = guidance_grad(prior, method, hyps, rgb, cams)
    for k in range(K):
        rows = slice(k * V, (k + 1) * V)
        alone = guidance_grad(prior, method, [hyps[k]], rgb[rows], cams[rows])
        assert torch.allclose(together[:, rows], alone, rtol=1e-5, atol=1e-7), f"hypothesis {k}"
    # Not vacuous: the hypotheses' gradients differ on the same render and camera.
    same = torch.rand(V, 3, 16, 16, generator=g).repeat(K, 1, 1, 1)
    same_cams = camera_batch(torch.tensor([10.0, 30.0] * K), torch.tensor([150.0, 200.0] * K), 3.8, 20.0, 16)
    grads = guidance_grad(prior, method, hyps, same, same_cams)[0].reshape(K, V, -1)
    assert float((grads[1] - grads[0]).abs().max()) > 1e-3 * float(grads.abs().max())
