"""Hypotheses of a short toy-world run differ by more than the run-to-run noise floor.

A short stage 1 on the drum's front view (three members, different hidden backs), K = 4, with the
recipe's default method held in its commit phase (every guidance view at the anchor, each hypothesis on
its own ODE), rendered at the anchor. The **noise floor** is how far one hypothesis's render moves when
only the per-step random streams change (``stage1.seed``: field init, ray samples, reference rays,
backgrounds; ε* kept); the hypotheses of one run must differ from each other clearly more than that. If
every hypothesis shared one ε* or one ODE trajectory, they would differ only by their streams — at the
floor — and this fails. The budget is short, so the floor is large (the fields are young); the ratio, not
the absolute spread, is what is asserted.
"""

import tempfile
from pathlib import Path

import torch

from recon.pipeline.image_to_3d import ImageTo3D
from recon.pipeline.interrupt import StopRequest
from recon.pipeline.recipes import image_config
from recon.render.cameras import camera_batch

K = 4
BACK = [135.0]  # the anchor: the back three-quarter view, where the hidden parts show
DRUM = Path(__file__).resolve().parents[2] / "data" / "examples" / "drum.png"


def back_views(stage1_seed: int, extra: list[str] = ()) -> torch.Tensor:
    """(K, views, 3, 32, 32) renders of each hypothesis from behind after a short stage 1."""
    # commit_every=1: every step of the short stage commits (the recipe interleaves after its first 30 %).
    overrides = ["stage1.steps=80", "distill.commit_fraction=1.0", "distill.commit_every=1",
                 "prior.library.image_size=16", "stage1.resolutions=[32]",
                 "stage1.reference_rays=512", f"stage1.seed={stage1_seed}", *extra]
    config = image_config(None, overrides, hypotheses=K, seed=0)
    with tempfile.TemporaryDirectory() as folder:
        run = ImageTo3D(DRUM, config, Path(folder), None)
        run.prepare()
        run.check_folder()
        stage = run.stage1(StopRequest()).stage
    cams = camera_batch(torch.full((K * len(BACK),), 30.0), torch.tensor(BACK * K), config.distance, config.fovy, 32)
    return stage.render(cams, 32)["rgb"].reshape(K, len(BACK), 3, 32, 32)


def rms(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(((a - b) ** 2).mean().sqrt())


def test_hypotheses_differ_beyond_the_noise_floor():
    a, b = back_views(0), back_views(1)
    floors = [rms(a[k], b[k]) for k in range(K)]
    pairs = [rms(a[i], a[j]) for i in range(K) for j in range(i + 1, K)]
    floor, spread = sum(floors) / K, sum(pairs) / len(pairs)
    print(f"\nnoise floor (same ε*, other streams) {[round(f, 4) for f in floors]}, mean {floor:.4f}; "
          f"hypothesis pairs {[round(p, 4) for p in pairs]}, mean {spread:.4f}; ratio {spread / floor:.2f}")
    # Measured (2026-11-30): with the recipe's endpoint commit and antithetic seed noise, ratio 6.73 (hypotheses 0
    # and 2 on one member, 1 and 3 on two others); with the two-point commit and independent ε* (the default before)
    # 1.85, and 0.77 with every hypothesis on hypothesis 0's ε*; endpoint commit, independent ε*: 4.11 and 0.87.
    assert spread > 1.25 * floor
