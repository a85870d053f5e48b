"""Run by Blender's Python (the ``bpy`` wheel), not by pytest: import each file given on the command line
with Blender's own importer at its default settings, as a user dragging the file in gets it, and print
one JSON line per file (prefixed ``RECON_BLENDER_JSON ``) with what Blender made of it.

Usage: python blender_import.py FILE.glb FILE.obj FILE.ply ...
"""

import json
import sys

import bpy
from mathutils import Vector


def _import(path: str) -> None:
    ext = path.rsplit(".", 1)[-1].lower()
    if ext in ("glb", "gltf"):
        bpy.ops.import_scene.gltf(filepath=path)
    elif ext == "obj":
        bpy.ops.wm.obj_import(filepath=path)
    elif ext == "ply":
        bpy.ops.wm.ply_import(filepath=path)
    else:
        raise SystemExit(f"unknown extension: {path}")


def _textures(obj) -> list[dict]:
    """Image textures feeding a Principled BSDF's Base Color, with the BSDF's metallic / roughness."""
    out = []
    for slot in obj.material_slots:
        mat = slot.material
        if mat is None or mat.node_tree is None:
            continue
        for node in mat.node_tree.nodes:
            if node.type != "BSDF_PRINCIPLED":
                continue
            base = node.inputs["Base Color"]
            images = []
            stack = [link.from_node for link in base.links]
            while stack:
                n = stack.pop()
                if n.type == "TEX_IMAGE" and n.image is not None:
                    images.append({"name": n.image.name, "size": list(n.image.size)})
                for inp in n.inputs:
                    stack.extend(link.from_node for link in inp.links)
            out.append({"material": mat.name, "images": images,
                        "metallic": node.inputs["Metallic"].default_value,
                        "roughness": node.inputs["Roughness"].default_value})
    return out


def inspect(path: str) -> dict:
    bpy.ops.wm.read_factory_settings(use_empty=True)
    _import(path)
    objs = [o for o in bpy.context.scene.objects if o.type == "MESH"]
    lo = Vector((float("inf"),) * 3)
    hi = Vector((float("-inf"),) * 3)
    info = []
    front = top = None  # the world-space vertex farthest towards -Y (Blender's front) and towards +Z
    for o in objs:
        me = o.data
        for v in me.vertices:
            w = o.matrix_world @ v.co
            if front is None or w.y < front[1]:
                front = list(w)
            if top is None or w.z > top[2]:
                top = list(w)
        for c in o.bound_box:
            w = o.matrix_world @ Vector(c)
            lo = Vector(map(min, lo, w))
            hi = Vector(map(max, hi, w))
        smooth = sum(1 for p in me.polygons if p.use_smooth)
        info.append({
            "name": o.name, "mesh": me.name, "vertices": len(me.vertices), "faces": len(me.polygons),
            "smooth_faces": smooth, "custom_normals": bool(getattr(me, "has_custom_normals", False)),
            "uv_layers": len(me.uv_layers),
            "color_attributes": [a.name for a in me.color_attributes],
            "materials": [s.material.name for s in o.material_slots if s.material],
            "textures": _textures(o),
        })
    return {"path": path, "objects": info, "bounds": [list(lo), list(hi)] if objs else None,
            "front": front, "top": top}


for arg in sys.argv[1:]:
    print("RECON_BLENDER_JSON " + json.dumps(inspect(arg)), flush=True)
