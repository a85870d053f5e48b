"""The random "family nobody designed": deterministic per seed, members identical from the input camera
(checked by an independent render and by geometry), different from behind, a valid library folder."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recon.bench.bench import family_input
from recon.bench.library_check import check_library
from recon.bench.random_family import FRONT_Z, MARGIN, random_family, write_random_library
from recon.priors.library import LibraryPrior, LibraryPriorConfig
from recon.render.cameras import camera_batch
from recon.render.cpu import CpuRasterizer
from recon.render.mesh_render import render_mesh
from recon.scene.toy_world import build_parts

SEEDS = [0, 3]


@pytest.fixture(scope="module")
def families(one_torch_thread):
    return {s: random_family(s) for s in SEEDS}


def test_same_seed_same_files_other_seed_other_family(tmp_path, families):
    a = write_random_library(tmp_path / "a", SEEDS[0])
    b = write_random_library(tmp_path / "b", SEEDS[0])
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files and files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    for f in files:
        assert (a / f).read_bytes() == (b / f).read_bytes(), f
    assert families[SEEDS[0]] != families[SEEDS[1]]


@pytest.mark.parametrize("seed", SEEDS)
def test_members_look_the_same_from_the_front_and_differ_from_behind(families, seed):
    body, members = families[seed]
    assert len(members) == 3
    cams = camera_batch(torch.tensor([0.0, 20.0]), torch.tensor([0.0, 180.0]), 3.8, 20.0, 192)
    renders = [render_mesh(build_parts((body, *parts)), cams, CpuRasterizer()).rgb for parts in members.values()]
    for r in renders[1:]:
        assert torch.equal(r[0], renders[0][0])  # front: bit-identical
    for i in range(len(renders)):
        for j in range(i + 1, len(renders)):
            assert float((renders[i][1] - renders[j][1]).abs().max()) > 0.2  # back: visibly different


@pytest.mark.parametrize("seed", SEEDS)
def test_hidden_parts_lie_behind_the_front_face_and_inside_its_outline(families, seed):
    body, members = families[seed]
    round_ = body.kind == "cylinder"
    # the generator keeps footprints MARGIN inside the front face (a vertex may touch that line)
    a = (body.size[0] if round_ else body.size[0] / 2) - MARGIN + 1e-6
    b = (body.size[0] if round_ else body.size[1] / 2) - MARGIN + 1e-6
    for parts in members.values():
        assert parts, "every member has a hidden part"
        v = build_parts(parts).vertices.double().numpy()
        assert v[:, 2].max() < FRONT_Z
        # perspective from (0, 0, 3.8): a point behind the front face projects inside it if its x, y do
        if round_:
            assert np.hypot(v[:, 0], v[:, 1]).max() < a
        else:
            assert np.abs(v[:, 0]).max() < a and np.abs(v[:, 1]).max() < b


def test_the_written_folder_is_a_valid_benchmark_library(tmp_path, families):
    root = write_random_library(tmp_path / "lib", SEEDS[1], name="held_out")
    shapes, files = check_library(root)
    assert [s.name for s in shapes] == ["held_out/m0", "held_out/m1", "held_out/m2"]
    prior = LibraryPrior.from_folder(root, CpuRasterizer(), LibraryPriorConfig(image_size=16))
    rgba, names = family_input(prior, "held_out", 128, files)  # the bench's own front check passes
    assert names == [s.name for s in shapes] and rgba.shape == (4, 128, 128)
