"""Image loading and segmentation, mesh export, reports."""
