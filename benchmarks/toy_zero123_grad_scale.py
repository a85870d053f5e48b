"""How hard does each prior push a render? The render-space distillation gradient, LibraryPrior vs toy-zero123.

``configs/toy-zero123.yaml`` keeps the CPU demo's budget; its guidance weights are the demo's divided by the
ratio this prints. Both priors see the same 64² renders of the drum's family at 8 random cameras (seed 0): the
LibraryPrior's posterior mean given the input (the blurred family average a diverse method has to leave) and
the render of the input family's most likely member. For each prior and method the distiller's gradient is taken at 6 steps spread over the
stage-1 schedule (300 steps, anneal 0.85 → 0.2), pulled back through the prior's ``encode`` (the toy model's VAE
encoder; the LibraryPrior's resize) with ``sd_loss``, and its per-render norm averaged.

    python benchmarks/toy_zero123_grad_scale.py
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import torch

from recon import seeding
from recon.distill.base import Hypothesis, sd_loss
from recon.io.prepare import prepare_input
from recon.pipeline.prior_setup import build_image_prior
from recon.pipeline.recipes import image_config
from recon.pipeline.run_setup import stage_distiller
from recon.render.cameras import random_cameras
from recon.render.select import select_backend


def main() -> None:
    torch.set_num_threads(1)
    start = time.time()
    demo = image_config("configs/cpu-demo.yaml")
    backend = select_backend("auto", "cpu")
    reference = (0.0, 0.0, demo.distance)
    priors = {"library": build_image_prior(demo.prior, backend, "cpu", reference),
              "toy-zero123": build_image_prior(dataclasses.replace(demo.prior, kind="zero123", path="toy-zero123"),
                                               backend, "cpu", reference)}
    lib = priors["library"]
    image = torch.as_tensor(prepare_input("data/examples/drum.png", demo.input).recentred.rgb_white)
    image = image.permute(2, 0, 1)[None].float()
    views = 8
    cams = random_cameras(views, seeding.generator(0, 0, "gs"), resolution=32)
    table = torch.stack([cams.elevation, cams.azimuth, cams.distance], 1).float()
    members = lib.views(table)  # (V, M, 3, 32, 32) in [-1, 1]
    w = lib.log_weights(image).exp().to(members)
    top = int(w.argmax())  # the input's family's most likely member
    print(f"member render: {lib.shapes[top].name} (posterior weight {float(w[top]):.2f})")
    renders = {"posterior mean": ((members * w[None, :, None, None, None]).sum(1) + 1) / 2,
               "member": (members[:, top] + 1) / 2}
    means: dict[tuple[str, str, str], float] = {}
    for name, prior in priors.items():
        cond = prior.condition(image=image, camera=table, reference=reference)
        for method in ("sds", "dsd"):
            distiller = stage_distiller(prior, dataclasses.replace(demo.distill, method=method),
                                        demo.stage1_timesteps, 300, 15.0, None)
            state = distiller.init_state([Hypothesis(0, v) for v in range(views)])
            for label, base in renders.items():
                norms = []
                for step in np.linspace(0, 299, 6).round().astype(int):
                    r = torch.nn.functional.interpolate(base.clamp(0, 1), (64, 64), mode="bilinear").requires_grad_(True)
                    x = prior.encode(r)
                    g = distiller.grad(x.detach(), int(step), cond, state).grad
                    sd_loss(x, g.to(x.dtype)).backward()
                    norms.append(float(r.grad.flatten(1).norm(dim=1).mean()))
                means[name, method, label] = float(np.mean(norms))
                print(f"{name:12s} {method:4s} {label:15s} mean |dL/drender| {means[name, method, label]:.4g}  "
                      f"per step {' '.join(f'{n:.3g}' for n in norms)}", flush=True)
    for method in ("sds", "dsd"):
        for label in renders:
            ratio = means["toy-zero123", method, label] / means["library", method, label]
            print(f"ratio toy-zero123 / library, {method}, {label}: {ratio:.2f}")
    print(f"{time.time() - start:.0f} s")


if __name__ == "__main__":
    main()
