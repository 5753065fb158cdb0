"""A voxel-remeshed bridged surface is decimated only when it could be used."""

import numpy as np
import trimesh

import smlmspine.envelope._alpha as A
import smlmspine.envelope._levelset as L
import smlmspine.envelope._reconstruct as R
import smlmspine.envelope._repair as RP
from smlmspine.envelope import AlphaComplex
from smlmspine.envelope._result import Envelope


def _ball_complex():
    rng = np.random.default_rng(0)
    d = rng.normal(size=(800, 3))
    return AlphaComplex.build(100.0 * d / np.linalg.norm(d, axis=1, keepdims=True))


def _counting(monkeypatch, module, name):
    """``module.name`` replaced by itself recording the face count of every call; returns
    the record and the original."""
    calls = []
    orig = getattr(module, name)

    def counting(v, f, **kw):
        calls.append(len(f))
        return orig(v, f, **kw)

    monkeypatch.setattr(module, name, counting)
    return calls, orig


def _voxel_repair(monkeypatch, radius):
    """Every alpha surface is invalid; the repair returns a fine sphere, "voxel remesh"."""
    monkeypatch.setattr(A, "_faces_reason", lambda points, faces, check: "non-manifold: 1 edge")
    sphere = trimesh.creation.icosphere(4, radius=radius)

    def repair(mesh, use_if=None, **kw):
        if use_if is not None and not use_if(sphere):
            return mesh, "non-manifold: 1 edge; voxel remesh not used by the caller", [
                "trimesh clean-up", "voxel remesh (pitch 2 nm): not used by the caller"]
        return sphere, "", ["voxel remesh (pitch 2 nm)"]

    monkeypatch.setattr(RP, "repair_mesh", repair)
    calls, _ = _counting(monkeypatch, L, "decimate_clean")
    return sphere, calls


def test_decimate_if_false_skips_the_decimation(monkeypatch):
    sphere, calls = _voxel_repair(monkeypatch, 100.0)
    cx = _ball_complex()
    env = A._alpha_envelope(cx, alpha_nm=150.0, min_fraction=0.5, decimate_if=lambda m: False)
    assert calls == [] and not env.is_watertight       # not used: not decimated
    env = A._alpha_envelope(cx, alpha_nm=150.0, min_fraction=0.5, decimate_if=lambda m: True)
    assert calls == [len(sphere.faces)] and "decimated to" in env.note
    assert len(env.mesh.faces) < len(sphere.faces)


def _plain(radius):
    m = trimesh.creation.icosphere(3, radius=radius)
    return Envelope(mesh=m, is_watertight=True, reason="", method="alpha", label="membrane",
                    alpha_nm=150.0, held_fraction=1.0, n_points=800)


class _Volumes(AlphaComplex):
    """The ball's complex, with the solid volumes of a leaky shell (+60 % bridged)."""

    def solid_volume(self, alpha_nm, *, gap_nm=0.0):
        return 1.6 if gap_nm else 1.0


def _leaky_complex():
    cx = _ball_complex()
    return _Volumes(cx.points, cx.simplices, cx.neighbors, cx.radii_nm, cx.vertex_of)


def test_bridged_surface_short_of_double_is_not_decimated_nor_used(monkeypatch):
    # bridged (voxel) sphere of radius 100 against a plain one of 90: 1.37x the volume
    _, calls = _voxel_repair(monkeypatch, 100.0)
    base = _plain(90.0)
    out = R._bridge_leaky(_leaky_complex(), base, min_fraction=0.5, label="membrane")
    assert out is base and calls == []


def test_bridged_surface_near_or_above_double_is_decimated(monkeypatch):
    # 2.2x (used) and 1.9x (within the margin: decimated, then judged as before)
    for plain_r, used in ((100.0 / 2.2 ** (1 / 3), True), (100.0 / 1.9 ** (1 / 3), False)):
        _, calls = _voxel_repair(monkeypatch, 100.0)
        base = _plain(plain_r)
        out = R._bridge_leaky(_leaky_complex(), base, min_fraction=0.5, label="membrane")
        assert len(calls) == 1
        assert (out is not base) == used
        if used:
            assert "decimated to" in out.note and "bridged" in out.note


def _folded_sphere():
    # an icosphere with one cap pushed through the far side: one closed body that
    # intersects itself (the clean-up cannot fix it; a voxel remesh can)
    s = trimesh.creation.icosphere(3, radius=200.0)
    v = s.vertices.copy()
    cap = v[:, 2] > 150.0
    v[cap, 2] -= 380.0
    return trimesh.Trimesh(v, s.faces, process=False)


def test_voxel_remesh_the_caller_will_not_use_is_not_checked(monkeypatch):
    # repair_mesh(use_if=...) skips the exact check of a voxel surface the caller will
    # not use and returns the clean-up's result with the reason; one it will use is
    # checked (and returned valid)
    checked, orig = _counting(monkeypatch, RP, "check_mesh")
    bad = _folded_sphere()
    assert orig(bad.vertices, bad.faces).startswith("self-intersecting")
    fixed, reason, steps = RP.repair_mesh(bad, use_if=lambda m: False)
    assert reason.startswith("self-intersecting")
    assert reason.endswith("voxel remesh not used by the caller")
    assert steps[-1].endswith("not used by the caller, not checked")
    assert len(checked) == 1                  # the clean-up's result only
    fixed, reason, steps = RP.repair_mesh(bad, use_if=lambda m: True)
    assert reason == "" and steps[-1].startswith("voxel remesh")
    assert len(checked) == 3                  # clean-up, then the voxel surface
    assert orig(fixed.vertices, fixed.faces) == ""


def test_bridged_surface_not_used_leaves_the_alpha_envelope_invalid(monkeypatch):
    # the alpha surface is called invalid and its clean-up still self-intersecting: the
    # voxel remesh decides, through decimate_if
    monkeypatch.setattr(A, "_faces_reason", lambda points, faces, check: "non-manifold: 1 edge")
    cx = _ball_complex()
    n_alpha = len(cx.solid(150.0)[2])
    orig = RP.check_mesh
    monkeypatch.setattr(RP, "check_mesh", lambda v, f, **kw: "self-intersecting: 2 face(s)"
                        if len(f) == n_alpha else orig(v, f, **kw))
    env = A._alpha_envelope(cx, alpha_nm=150.0, min_fraction=0.5, decimate_if=lambda m: False)
    assert not env.is_watertight and env.reason == "non-manifold: 1 edge"
    env = A._alpha_envelope(cx, alpha_nm=150.0, min_fraction=0.5, decimate_if=lambda m: True)
    assert env.is_watertight and "voxel remesh" in env.note
