"""The triangle mesh type passed between the 3D engine, export and reports.

Coordinates follow glTF: right-handed, +Y up, +Z towards the default front camera, units such that
the object fits a unit box after :meth:`Mesh.normalized`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch


@dataclass
class Mesh:
    """vertices (V, 3) float; faces (F, 3) long, counter-clockwise seen from outside.

    Optional: vertex_colors (V, 3) in [0, 1]; uv (Vt, 2) in [0, 1] with uv_faces (F, 3) indexing it;
    texture (H, W, 3) in [0, 1] (row 0 = top of the image, v = 1 at the top as in glTF's flip).
    """

    vertices: torch.Tensor
    faces: torch.Tensor
    vertex_colors: torch.Tensor | None = None
    uv: torch.Tensor | None = None
    uv_faces: torch.Tensor | None = None
    texture: torch.Tensor | None = None

    @property
    def num_vertices(self) -> int:
        return int(self.vertices.shape[0])

    @property
    def num_faces(self) -> int:
        return int(self.faces.shape[0])

    def to(self, device: str | torch.device) -> Mesh:
        def move(t):
            return None if t is None else t.to(device)

        return Mesh(move(self.vertices), move(self.faces), move(self.vertex_colors), move(self.uv),
                    move(self.uv_faces), move(self.texture))

    def face_normals(self) -> torch.Tensor:
        """(F, 3) unit normals (zero for degenerate faces)."""
        v = self.vertices[self.faces]
        n = torch.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0], dim=-1)
        return torch.nn.functional.normalize(n, dim=-1)

    def vertex_normals(self) -> torch.Tensor:
        """(V, 3) area-weighted unit vertex normals."""
        v = self.vertices[self.faces]
        n = torch.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0], dim=-1)
        out = torch.zeros_like(self.vertices)
        for i in range(3):
            out.index_add_(0, self.faces[:, i], n)
        return torch.nn.functional.normalize(out, dim=-1)

    def bounds(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.vertices.min(0).values, self.vertices.max(0).values

    def normalized(self) -> Mesh:
        """Centred at the origin and scaled so the longest side of the bounding box is 1."""
        lo, hi = self.bounds()
        scale = float((hi - lo).max().clamp(min=1e-12))
        return replace(self, vertices=(self.vertices - (lo + hi) / 2) / scale)

    def to_trimesh(self):
        """A ``trimesh.Trimesh`` with vertex colours when present (no processing, no merging)."""
        import trimesh

        colors = None
        if self.vertex_colors is not None:
            colors = (self.vertex_colors.detach().cpu().clamp(0, 1).numpy() * 255).round().astype(np.uint8)
        return trimesh.Trimesh(
            vertices=self.vertices.detach().cpu().numpy().astype(np.float64),
            faces=self.faces.detach().cpu().numpy().astype(np.int64),
            vertex_colors=colors,
            process=False,
        )

    @classmethod
    def from_trimesh(cls, mesh, dtype: torch.dtype = torch.float32) -> Mesh:
        colors = None
        visual = getattr(mesh, "visual", None)
        if visual is not None and getattr(visual, "kind", None) == "vertex":
            colors = torch.as_tensor(np.asarray(visual.vertex_colors)[:, :3] / 255.0, dtype=dtype)
        return cls(
            vertices=torch.as_tensor(np.asarray(mesh.vertices), dtype=dtype),
            faces=torch.as_tensor(np.asarray(mesh.faces), dtype=torch.long),
            vertex_colors=colors,
        )
