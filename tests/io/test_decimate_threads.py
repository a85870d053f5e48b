"""Decimation from several threads at once gives each caller its own mesh's result (export threads)."""

import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import trimesh

from recon.io.mesh_clean import decimate


def test_decimate_on_threads_matches_one_thread():
    # fast_simplification holds its working mesh in C++ globals between load, simplify and read-back;
    # a tiny switch interval makes threads interleave those calls on every round without the lock.
    meshes = [trimesh.creation.icosphere(4, 0.8), trimesh.creation.icosphere(3, 0.5).apply_scale((1.0, 2.0, 0.7)),
              trimesh.creation.capsule(1.0, 0.4, (48, 48)), trimesh.creation.torus(0.6, 0.2, 64, 32)]
    want = [decimate(m.vertices, m.faces, 300) for m in meshes]
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        with ThreadPoolExecutor(4) as pool:
            for _ in range(6):
                got = list(pool.map(lambda m: decimate(m.vertices, m.faces, 300), meshes))
                for (wv, wf), (gv, gf) in zip(want, got):
                    assert np.array_equal(wv, gv) and np.array_equal(wf, gf)
    finally:
        sys.setswitchinterval(old)
