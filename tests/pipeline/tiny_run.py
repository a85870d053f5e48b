"""Settings for fast end-to-end image-to-3D runs in tests (seconds, not minutes)."""

TINY = [
    "--hypotheses", "2",
    "--set", "stage1.steps=16", "--set", "stage2.steps=4", "--set", "stage2.tet_resolution=24",
    "--set", "prior.library.image_size=16", "--set", "stage1.resolutions=[32]", "--set", "stage2.resolution=32",
    "--set", "report.turntable_frames=4", "--set", "report.render_size=64",
    "--set", "export.texture_size=128", "--set", "export.target_faces=2000", "--set", "checkpoint_every=4",
]
