"""Zero-1-to-3's conventions as the peers have them, each against the peer's own formula.

1. CLIP input. The model was trained with ``FrozenCLIPImageEmbedder.preprocess`` (cvlab-columbia/zero123,
   ``zero123/ldm/modules/encoders/modules.py``; the same in threestudio's ``extern/ldm_zero123`` and kxhit's
   ``pipeline_zero1to3.py`` ``CLIP_preprocess``)::

       x = kornia.geometry.resize(x, (224, 224), interpolation='bicubic', align_corners=True, antialias=False)
       x = (x + 1.) / 2.
       x = kornia.enhance.normalize(x, mean, std)

   on the 256² input view in [-1, 1]. kornia 0.6 (``zero123/requirements.txt``: ``kornia==0.6``;
   ``kornia/geometry/transform/affwarp.py`` ``resize``) returns the input when it is already that size and
   otherwise calls ``F.interpolate(..., mode='bicubic', align_corners=True)``: cubic convolution with
   a = −0.75 at source positions dst·(in − 1)/(out − 1), border samples repeated. Written out below as a
   plain matrix formula.
2. Pose vector for a non-zero input elevation: zero123's ``get_T`` (``zero123/ldm/data/simple.py``) on the
   camera positions, which recon's stage cameras give (threestudio's image recipes put the input view at
   elevation 5°: ``configs/zero123.yaml`` / ``stable-zero123.yaml``, ``data.default_elevation_deg: 5.0``).

``python -m tests.priors.test_zero123_conventions`` prints the figures quoted in docs/priors.md.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from recon.priors.components import ClipImagePreprocess
from recon.priors.pictures import photo_like
from recon.priors.zero123 import Zero123ClipPreprocess, zero123_pose
from recon.render.cameras import camera_batch

MEAN = (0.48145466, 0.4578275, 0.40821073)
STD = (0.26862954, 0.26130258, 0.27577711)
IMAGE = Path(__file__).resolve().parents[2] / "data" / "examples" / "crate.png"


# ------------------------------------------------------------------------------------------ CLIP input
def bicubic_align_corners_matrix(n_in: int, n_out: int) -> torch.Tensor:
    """(n_out, n_in) weights of 1-D bicubic resampling with align_corners=True (cubic convolution, a = −0.75,
    indices clamped to the border), as ``F.interpolate(mode='bicubic', align_corners=True)`` defines it."""
    a = -0.75

    def w(x: float) -> float:
        x = abs(x)
        if x <= 1:
            return (a + 2) * x**3 - (a + 3) * x**2 + 1
        if x < 2:
            return a * x**3 - 5 * a * x**2 + 8 * a * x - 4 * a
        return 0.0

    m = torch.zeros(n_out, n_in, dtype=torch.float64)
    scale = (n_in - 1) / (n_out - 1)
    for o in range(n_out):
        src = o * scale
        i0 = math.floor(src)
        frac = src - i0
        for k in range(-1, 3):
            m[o, min(max(i0 + k, 0), n_in - 1)] += w(frac - k)
    return m


def zero123_clip_input(img01: torch.Tensor, size: int = 224) -> torch.Tensor:
    """The peer's preprocess (module docstring) on (B, 3, H, W) in [0, 1] (recon's range; the peer's input is
    2·img − 1), as a plain formula."""
    x = img01.to(torch.float64) * 2 - 1
    if tuple(x.shape[-2:]) != (size, size):
        mh = bicubic_align_corners_matrix(x.shape[-2], size)
        mw = bicubic_align_corners_matrix(x.shape[-1], size)
        x = torch.einsum("oh,bchw,pw->bcop", mh, x, mw)
    x = (x + 1.0) / 2.0
    mean = torch.tensor(MEAN, dtype=torch.float64).view(1, 3, 1, 1)
    std = torch.tensor(STD, dtype=torch.float64).view(1, 3, 1, 1)
    return (x - mean) / std


def test_zero123_clip_input_is_the_trained_preprocessing():
    img = photo_like(256)[None]  # float64, a silhouette on white
    want = zero123_clip_input(img)
    got = Zero123ClipPreprocess()(img)
    assert got.shape == want.shape == (1, 3, 224, 224)
    torch.testing.assert_close(got, want, atol=1e-12, rtol=0)
    # Not vacuous: Hugging Face's CLIPImageProcessor steps (recon's previous input) differ a lot at the edges.
    assert float((ClipImagePreprocess()(img) - want).abs().max()) > 0.3
    # An image already at 224² passes through kornia unchanged: only the normalisation applies.
    small = photo_like(224)[None]
    torch.testing.assert_close(Zero123ClipPreprocess()(small), zero123_clip_input(small), atol=1e-12, rtol=0)


def test_zero123_prior_conditions_on_the_trained_clip_input(zero123_folder, zero123_prior):
    from recon.priors.zero123 import Zero123Prior

    image = photo_like(40)[None].float()
    cond = zero123_prior.condition(image=image, camera=[[20.0, 30.0, 3.8]])
    size = zero123_prior.image_encoder.config.image_size
    with torch.no_grad():
        pixels = zero123_clip_input(zero123_prior.prepare_image(image), size).float()
        want = zero123_prior.image_encoder(pixel_values=pixels).image_embeds
    torch.testing.assert_close(cond.shared["clip_embedding"], want, atol=1e-6, rtol=0)
    # The Hugging Face path stays selectable (DreamGaussian's input) and is a different embedding.
    hf = Zero123Prior.from_pretrained(zero123_folder, clip_input="hf")
    other = hf.condition(image=image, camera=[[20.0, 30.0, 3.8]]).shared["clip_embedding"]
    assert float((other - want).abs().max()) > 1e-4


# ------------------------------------------------------------------------------------------ pose
def zero123_get_T(target_RT: np.ndarray, cond_RT: np.ndarray) -> np.ndarray:
    """zero123 ``ObjaverseData.get_T`` (``zero123/ldm/data/simple.py``) on 3×4 world-to-camera matrices of
    a Z-up world."""

    def cartesian_to_spherical(xyz):
        xy = xyz[:, 0] ** 2 + xyz[:, 1] ** 2
        z = np.sqrt(xy + xyz[:, 2] ** 2)
        theta = np.arctan2(np.sqrt(xy), xyz[:, 2])  # for elevation angle defined from Z-axis down
        azimuth = np.arctan2(xyz[:, 1], xyz[:, 0])
        return np.array([theta, azimuth, z])

    R, T = target_RT[:3, :3], target_RT[:, -1]
    T_target = -R.T @ T
    R, T = cond_RT[:3, :3], cond_RT[:, -1]
    T_cond = -R.T @ T
    theta_cond, azimuth_cond, z_cond = cartesian_to_spherical(T_cond[None, :])
    theta_target, azimuth_target, z_target = cartesian_to_spherical(T_target[None, :])
    d_theta = theta_target - theta_cond
    d_azimuth = (azimuth_target - azimuth_cond) % (2 * math.pi)
    d_z = z_target - z_cond
    return np.array([d_theta.item(), math.sin(d_azimuth.item()), math.cos(d_azimuth.item()), d_z.item()])


# recon's world is +Y up (recon/render/cameras.py); (x, y, z) -> (z, x, y) is a proper rotation onto a Z-up world
# (threestudio's and Blender's), so handedness and the up axis are kept.
Y_UP_TO_Z_UP = np.array([[0, 0, 1, 0], [1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 1]], dtype=np.float64)


def world_to_camera_z_up(cameras, i: int) -> np.ndarray:
    c2w = Y_UP_TO_Z_UP @ cameras.c2w[i].to(torch.float64).numpy()
    return np.linalg.inv(c2w)[:3, :4]


TARGETS = [(30.0, 90.0, 4.0), (-10.0, -150.0, 3.8), (75.0, 200.0, 3.2), (5.0, 0.0, 3.8), (0.0, 45.0, 3.8)]


def test_pose_vector_equals_zero123_get_T_for_input_elevation_5():
    ref = (5.0, 0.0, 3.8)  # threestudio's input view (default_elevation_deg 5, distance 3.8)
    cond = camera_batch(ref[0], ref[1], ref[2], dtype=torch.float64)
    targets = camera_batch(*(list(v) for v in zip(*TARGETS)), dtype=torch.float64)
    got = zero123_pose(torch.tensor(TARGETS, dtype=torch.float64), torch.tensor(ref, dtype=torch.float64), "zero123")
    for i in range(len(TARGETS)):
        want = zero123_get_T(world_to_camera_z_up(targets, i), world_to_camera_z_up(cond, 0))
        np.testing.assert_allclose(got[i].numpy(), want, atol=1e-9, rtol=0)
    assert float(got[0, 0]) == float(np.deg2rad(5.0 - 30.0))  # the input elevation moves Δpolar
    # Stable Zero123: threestudio's stable_zero123_guidance puts deg2rad(90 − cond_elevation_deg) fourth.
    stable = zero123_pose(torch.tensor(TARGETS, dtype=torch.float64), torch.tensor(ref, dtype=torch.float64), "stable-zero123")
    torch.testing.assert_close(stable[:, :3], got[:, :3], atol=0, rtol=0)
    assert torch.allclose(stable[:, 3], torch.full((len(TARGETS),), math.radians(85.0), dtype=torch.float64))


def test_elevation_flag_reaches_the_stage_cameras_and_the_pose(zero123_folder, tmp_path, monkeypatch):
    """``recon run --elevation 12``: the run's input view (stage 1's known view, stage 2's target view) is at
    12°, and every guidance row's pose is zero123's get_T from that input camera; without the flag, the
    Zero-1-to-3 recipe's 5° (threestudio's)."""
    from click.testing import CliRunner

    import recon.pipeline.image_to_3d as image_to_3d
    from recon.cli import main
    from recon.pipeline.guidance import camera_table
    from recon.pipeline.recipes import image_config

    seen = []

    def capture(image, config, out_dir, progress=None, command="recon run"):
        seen.append(config)
        raise ValueError("stop here")

    monkeypatch.setattr(image_to_3d, "reconstruct", capture)
    for args, elevation in ((["--elevation", "12"], 12.0), ([], 5.0)):
        result = CliRunner().invoke(main, ["run", str(IMAGE), "--prior", str(zero123_folder), "--out",
                                           str(tmp_path / "out"), *args])
        assert "stop here" in result.output, result.output
        assert seen[-1].elevation == elevation
    assert image_config(None, [], "library").elevation == 0.0  # the embedded library's views are at 0°

    run = image_to_3d.ImageTo3D(IMAGE, seen[0], tmp_path / "run", None)
    run.prepare()
    known = run.known_views().cameras
    assert float(known.elevation[0]) == 12.0
    assert float(run.view_targets().cameras.elevation[0]) == 12.0
    targets = camera_batch(*(list(v) for v in zip(*TARGETS)))  # float32, as the stages draw them
    pose = run.condition(camera_table(targets)).tensors["pose"]
    for i in range(len(TARGETS)):
        want = zero123_get_T(world_to_camera_z_up(targets, i), world_to_camera_z_up(known, 0))
        np.testing.assert_allclose(pose[i].numpy(), want, atol=1e-5, rtol=0)


# ------------------------------------------------------------------------------------------ figures
def _measurement_prior(clip_input: str):
    """A random-weight Zero-1-to-3 at the published image geometry (256² input, 32² latents, 224² CLIP input),
    tiny widths: CLIP ViT with 32-pixel patches, a 2-level UNet, a 4-level VAE."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    from recon.diffusion.schedule import NoiseSchedule
    from recon.priors.zero123 import Zero123Prior

    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        sample_size=32, in_channels=8, out_channels=4, layers_per_block=1, block_out_channels=(16, 32),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=32, attention_head_dim=4, norm_num_groups=8)
    torch.manual_seed(1)
    vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(8, 8, 16, 16),
                        layers_per_block=1, down_block_types=("DownEncoderBlock2D",) * 4,
                        up_block_types=("UpDecoderBlock2D",) * 4, norm_num_groups=8, sample_size=256)
    torch.manual_seed(2)
    encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(
        hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4, image_size=224,
        patch_size=32, projection_dim=32))
    torch.manual_seed(3)
    projection = torch.nn.Linear(36, 32)
    schedule = NoiseSchedule.from_config({"beta_schedule": "scaled_linear", "beta_start": 0.00085,
                                          "beta_end": 0.012, "num_train_timesteps": 1000})
    pre = Zero123ClipPreprocess() if clip_input == "zero123" else ClipImagePreprocess()
    return Zero123Prior(unet.eval(), schedule, vae.eval(), encoder.eval(), projection, pre)


def measure() -> dict[str, float]:
    """Max |Δ| between the trained CLIP input and the Hugging Face processor's on ``photo_like(256)``, in
    normalised pixels and in ε̂ (CFG 3, t = 100…900, four target views) of a random-weight Zero-1-to-3."""
    img = photo_like(256)[None].float()
    out = {"pixels_max": float((Zero123ClipPreprocess()(img) - ClipImagePreprocess()(img)).abs().max()),
           "pixels_mean": float((Zero123ClipPreprocess()(img) - ClipImagePreprocess()(img)).abs().mean())}
    cams = torch.tensor([[20.0, 30.0, 3.8], [0.0, 90.0, 3.8], [-10.0, 180.0, 3.8], [40.0, -60.0, 3.8]])
    x = torch.randn(4, 4, 32, 32, generator=torch.Generator().manual_seed(0))
    eps = {}
    for kind in ("zero123", "hf"):
        prior = _measurement_prior(kind)
        cond = prior.condition(image=img, camera=cams, reference=(5.0, 0.0, 3.8))
        with torch.no_grad():
            eps[kind] = torch.stack([prior.predict_noise(x, int(t), cond, 3.0) for t in (100, 300, 500, 700, 900)])
    d = (eps["zero123"] - eps["hf"]).abs()
    out["eps_max"] = float(d.max())
    out["eps_rel_max"] = float(d.max() / eps["hf"].abs().max())
    out["eps_max_per_t_min"] = float(d.flatten(1).max(1).values.min())
    return out


if __name__ == "__main__":
    for key, value in measure().items():
        print(f"{key}: {value:.3g}")
