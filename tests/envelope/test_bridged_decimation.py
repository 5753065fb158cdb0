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


def _voxel_repair(monkeypatch, radius):
    """Every alpha surface is invalid; the repair returns a fine sphere, "voxel remesh"."""
    monkeypatch.setattr(A, "_faces_reason", lambda points, faces, check: "non-manifold: 1 edge")
    sphere = trimesh.creation.icosphere(4, radius=radius)
    monkeypatch.setattr(RP, "repair_mesh",
                        lambda mesh, **kw: (sphere, "", ["voxel remesh (pitch 2 nm)"]))
    calls = []
    orig = L.decimate_clean

    def counting(v, f, **kw):
        calls.append(len(f))
        return orig(v, f, **kw)

    monkeypatch.setattr(L, "decimate_clean", counting)
    return sphere, calls


def test_decimate_if_false_skips_the_decimation(monkeypatch):
    sphere, calls = _voxel_repair(monkeypatch, 100.0)
    cx = _ball_complex()
    env = A._alpha_envelope(cx, alpha_nm=150.0, min_fraction=0.5, decimate_if=lambda m: False)
    assert calls == [] and "not decimated" in env.note
    assert len(env.mesh.faces) == len(sphere.faces)
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
