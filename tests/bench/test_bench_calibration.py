"""Calibrated guidance weights: the factor is SDS's probe gradient norm over the method's, and the
overrides scale the recipe's stage-1 weight (constant or ramp) and stage 2's by it."""

from __future__ import annotations

import pytest

from recon.bench.bench import family_input
from recon.bench.calibrate import calibrate, scaled_weight_overrides
from recon.config import from_dict, merge_overrides, to_dict
from recon.pipeline.image_to_3d import ImageTo3DConfig
from recon.pipeline.prior_setup import build_image_prior
from recon.pipeline.recipes import image_config
from recon.render.select import select_backend

SMALL = ["prior.library.image_size=16", "stage1.steps=20", "stage2.steps=5"]


def test_calibration_factors_are_norm_ratios_and_dsd_needs_a_larger_weight(one_torch_thread):
    base = image_config(None, SMALL)
    reference = (base.elevation, 0.0, base.distance)
    prior = build_image_prior(base.prior, select_backend("cpu"), "cpu", reference)
    rgba, _ = family_input(prior, "crate", 64)
    image = (rgba[:3] * rgba[3:] + (1 - rgba[3:]))[None]  # on white, as the pipeline feeds the prior
    cal = calibrate(prior, image, reference, base, ["dsd", "sds"], views=4, points=4)
    assert set(cal.norms) == {"dsd", "sds"} and cal.factors["sds"] == {"stage1": 1.0, "stage2": 1.0}
    for stage in ("stage1", "stage2"):
        ratio = cal.norms["sds"][stage] / cal.norms["dsd"][stage]
        assert cal.factors["dsd"][stage] == pytest.approx(ratio, rel=5e-3)  # rounded to 3 significant digits
        # DSD's gradient is a difference of two noise predictions at nearby t: much smaller than SDS's.
        assert cal.factors["dsd"][stage] > 2


def test_scaled_weight_overrides_scale_constants_and_ramps():
    base = image_config(None, [])
    assert scaled_weight_overrides(base, 2.0, 10.0) == [
        f"stage1.weights.guidance={float(base.stage1.weights.guidance) * 2.0}",
        f"stage2.weights.guidance={float(base.stage2.weights.guidance) * 10.0}"]
    ramp = from_dict(ImageTo3DConfig, merge_overrides(to_dict(base), ["stage1.weights.guidance=[0, 1.0, 4.0, 100]"]))
    over = scaled_weight_overrides(ramp, 3.0, 1.0)
    scaled = from_dict(ImageTo3DConfig, merge_overrides(to_dict(ramp), over))
    assert list(scaled.stage1.weights.guidance) == [0, 3.0, 12.0, 100]
