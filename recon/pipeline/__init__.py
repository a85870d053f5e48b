"""Image-to-3D and text-to-3D stages, losses, hypothesis batching and checkpoints."""
