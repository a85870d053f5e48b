"""recon: several plausible textured 3D meshes from one photo or one prompt, by Diverse Score
Distillation (DSD)."""

__version__ = "0.1.0"
