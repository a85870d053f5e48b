"""Cameras and rasteriser backends behind one interface (nvdiffrast on CUDA, a CPU rasteriser)."""
