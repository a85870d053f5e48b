"""The occupancy grid: which cells it marks, dilation, decay, bounds, lookup and state round trip."""

from __future__ import annotations

import torch

from recon.scene.occupancy import OccupancyConfig, OccupancyGrid


def _ball_density(centre, r):
    c = torch.tensor(centre)

    def density(p):  # (K, N, 3) -> (K, N): 10 inside the ball, 0 outside
        return torch.where((p - c).norm(dim=-1) < r, 10.0, 0.0)

    return density


def test_cells_with_density_are_occupied_and_dilation_grows_them_by_one_cell():
    cfg = OccupancyConfig(resolution=16, min_density=1.0, dilation=0)
    occ = OccupancyGrid(cfg, 1, 1.0)
    occ.update(_ball_density((0.0, 0.0, 0.0), 0.3))
    centres = occ.cell_centres()
    inside = centres.norm(dim=-1) < 0.3
    assert torch.equal(occ.mask.reshape(-1), inside)  # probes at the centres (no generators)
    dil = OccupancyGrid(OccupancyConfig(resolution=16, min_density=1.0, dilation=1), 1, 1.0)
    dil.update(_ball_density((0.0, 0.0, 0.0), 0.3))
    expected = torch.nn.functional.max_pool3d(inside.reshape(1, 1, 16, 16, 16).float(), 3, 1, 1)[0, 0] > 0
    assert torch.equal(dil.mask[0], expected)


def test_bounds_enclose_the_occupied_cells_per_hypothesis():
    cfg = OccupancyConfig(resolution=20, min_density=1.0, dilation=0)
    occ = OccupancyGrid(cfg, 2, 1.0)

    def density(p):
        a = _ball_density((0.5, 0.0, 0.0), 0.2)(p[:1])
        b = torch.zeros_like(p[1:, :, 0])  # hypothesis 1 is empty
        return torch.cat([a, b])

    occ.update(density)
    lo, hi = occ.bounds[0]
    assert torch.all(lo <= torch.tensor([0.3, -0.2, -0.2]) + 0.1) and torch.all(lo >= torch.tensor([0.2, -0.3, -0.3]))
    assert torch.all(hi >= torch.tensor([0.7, 0.2, 0.2]) - 0.1) and torch.all(hi <= torch.tensor([0.8, 0.3, 0.3]))
    assert (occ.bounds[1, 0] > occ.bounds[1, 1]).all()  # empty: lo > hi, so every ray misses
    assert occ.occupied_fraction()[1] == 0


def test_lookup_reports_the_containing_cell_and_nothing_outside_the_cube():
    occ = OccupancyGrid(OccupancyConfig(resolution=4, dilation=0), 1, 1.0)
    occ.mask.zero_()
    occ.mask[0, 3, 0, 1] = True  # x in [0.5, 1), y in [-1, -0.5), z in [-0.5, 0)
    occ.bounds = occ._bounds(occ.mask)
    pts = torch.tensor([[[0.75, -0.75, -0.25], [0.49, -0.75, -0.25], [1.2, -0.75, -0.25], [0.99, -0.51, -0.01]]])
    assert occ.lookup(pts).tolist() == [[True, False, False, True]]


def test_stored_density_decays_and_an_emptied_cell_is_released():
    occ = OccupancyGrid(OccupancyConfig(resolution=8, min_density=1.0, decay=0.5, dilation=0), 1, 1.0)
    occ.update(_ball_density((0.0, 0.0, 0.0), 0.5))
    assert occ.mask.any()
    empty = lambda p: torch.zeros(p.shape[:-1])  # noqa: E731
    occ.update(empty)  # 10 -> 5: still occupied
    assert occ.mask.any()
    for _ in range(3):
        occ.update(empty)  # 5 -> 2.5 -> 1.25 -> 0.625 < 1
    assert not occ.mask.any()


def test_jittered_probes_come_from_the_generators_and_state_round_trips():
    def run():
        occ = OccupancyGrid(OccupancyConfig(resolution=8, dilation=0, min_density=1.0), 2, 1.0)
        gens = [torch.Generator().manual_seed(i) for i in range(2)]
        occ.update(_ball_density((0.1, 0.0, 0.0), 0.45), gens)
        return occ

    a, b = run(), run()
    assert torch.equal(a.density, b.density)
    assert not torch.equal(a.density[0], a.density[1])  # different streams, different probes
    c = OccupancyGrid(OccupancyConfig(resolution=8), 2, 1.0)
    c.load_state_dict(a.state_dict())
    assert torch.equal(c.mask, a.mask) and torch.equal(c.bounds, a.bounds)


def test_disabled_grid_occupies_everything():
    occ = OccupancyGrid(OccupancyConfig(update_every=0), 1, 1.0)
    assert not occ.enabled and occ.mask.all()
