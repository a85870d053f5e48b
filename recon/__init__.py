"""recon: several plausible textured 3D meshes from one photo or one prompt, by Diverse Score
Distillation (DSD).

The main entry points (imported lazily, so ``import recon`` stays light):

- ``recon.reconstruct(image, config, out_dir)`` — photo to K textured meshes (``recon run``);
- ``recon.text_to_3d(prompt, config, out_dir)`` — prompt to K textured meshes (``recon text``);
- ``recon.export_run(run_dir, formats, out_dir)`` — a finished run's meshes exported again (``recon export``);
- ``recon.reconstruct_batch(folder, config, out_root)`` — a folder of photos (``recon batch``).
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "reconstruct": ("recon.pipeline.image_to_3d", "reconstruct"),
    "ImageTo3DConfig": ("recon.pipeline.image_to_3d", "ImageTo3DConfig"),
    "reconstruct_batch": ("recon.pipeline.batch", "reconstruct_batch"),
    "text_to_3d": ("recon.pipeline.text_to_3d", "text_to_3d"),
    "TextTo3DConfig": ("recon.pipeline.text_to_3d", "TextTo3DConfig"),
    "export_run": ("recon.pipeline.reexport", "export_run"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'recon' has no attribute {name!r}")


__all__ = ["__version__", *_LAZY]
