"""A run's export on worker threads (``export.parallel_hypotheses``) writes exactly what one thread writes."""

import pytest
import torch
import trimesh

from recon.io.export import ExportConfig
from recon.pipeline.run_outputs import export_hypotheses
from recon.render.cpu import CpuRasterizer
from recon.scene.mesh import Mesh


def colour(points: torch.Tensor) -> torch.Tensor:
    return (points * 0.4 + 0.5).clamp(0, 1)


def shapes() -> list[Mesh]:
    # Three different hypotheses, one with an inner shell and a floater so the clean-up's rules all run.
    a = trimesh.creation.icosphere(3, 0.8)
    b = trimesh.util.concatenate([trimesh.creation.box((1.2, 0.8, 1.0)), trimesh.creation.box((0.3, 0.3, 0.3)),
                                  trimesh.creation.icosphere(1, 0.05).apply_translation((0, 1.5, 0))])
    c = trimesh.creation.cylinder(0.5, 1.4, 24)
    return [Mesh(torch.as_tensor(m.vertices, dtype=torch.float32), torch.as_tensor(m.faces)) for m in (a, b, c)]


@pytest.mark.usefixtures("one_torch_thread")
def test_export_on_threads_writes_the_same_files_as_one_thread(tmp_path):
    config = ExportConfig(target_faces=400, texture_size=64)
    meshes, fns = shapes(), {k: colour for k in (0, 1, 2)}
    calls: list[tuple[int, int]] = []
    one = export_hypotheses([0, 1, 2], meshes, fns, tmp_path / "one", CpuRasterizer(), config, 0,
                            lambda label, done, total: None)
    three = export_hypotheses([0, 1, 2], meshes, fns, tmp_path / "three", CpuRasterizer(), config, 0,
                              lambda label, done, total: calls.append((done, total)), workers=3)
    assert [r.index for r in three] == [0, 1, 2]
    assert sorted(calls) == [(0, 3), (1, 3), (2, 3), (3, 3)]
    names = sorted(p.name for p in (tmp_path / "one").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "three").iterdir()) and len(names) == 15
    for name in names:
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "three" / name).read_bytes(), name
    for a, b in zip(one, three):
        assert torch.equal(a.mesh.vertices, b.mesh.vertices) and torch.equal(a.mesh.faces, b.mesh.faces)
