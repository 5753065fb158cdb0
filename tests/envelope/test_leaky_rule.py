"""The leaky-shell rule of reconstruct: when a bridged solid replaces the alpha solid,
and that an invalid bridged surface is repaired only when it could be used."""

import numpy as np
import pytest
import trimesh

import smlmspine.envelope._alpha as A
import smlmspine.envelope._reconstruct as R
from smlmspine.envelope import AlphaComplex
from smlmspine.envelope._result import Envelope


class _Volumes:
    """Stands in for an AlphaComplex: solid volumes without / with the gap."""

    def __init__(self, v0, v1):
        self.v0, self.v1 = v0, v1

    def solid_volume(self, alpha_nm, *, gap_nm=0.0):
        return self.v1 if gap_nm else self.v0


def _env(mesh, *, watertight=True, note="", reason=""):
    return Envelope(mesh=mesh, is_watertight=watertight, reason=reason, method="alpha",
                    label="membrane", alpha_nm=50.0, held_fraction=1.0,
                    n_points=len(mesh.vertices), note=note)


@pytest.fixture
def calls(monkeypatch):
    """Record the `repair` argument of every bridged-surface build; the bridged surface
    is a valid sphere of radius 2 (volume 8x the base's unit sphere) unless the build was
    told not to repair, then an invalid one."""
    seen = []

    def fake(cx, *, repair=True, **kw):
        seen.append(repair)
        big = trimesh.creation.icosphere(2, radius=2.0)
        if repair:
            return _env(big, note="alpha surface was invalid (x); repaired: voxel remesh")
        return _env(big, watertight=False, reason="not watertight: 3 boundary edge(s)")

    monkeypatch.setattr(A, "_alpha_envelope", fake)
    monkeypatch.setattr(R, "_enclosed", lambda inner, outer: 1.0)
    return seen


def test_doubling_on_the_solids_is_used_and_repaired(calls):
    base = _env(trimesh.creation.icosphere(2, radius=1.0))
    out = R._bridge_leaky(_Volumes(1.0, 2.5), base, min_fraction=0.99, label="membrane")
    assert calls == [True]
    assert out is not base and "bridged" in out.note


def test_not_doubling_is_not_repaired_and_not_used(calls):
    # the bridged solid adds 40 %: only the enclosed-volume rule could take it, which
    # refuses voxel-remeshed surfaces, so the invalid surface is not repaired
    base = _env(trimesh.creation.icosphere(2, radius=1.0))
    out = R._bridge_leaky(_Volumes(1.0, 1.4), base, min_fraction=0.99, label="membrane")
    assert calls == [False]
    assert out is base


def test_below_the_added_minimum_builds_nothing(calls):
    base = _env(trimesh.creation.icosphere(2, radius=1.0))
    out = R._bridge_leaky(_Volumes(1.0, 1.0 + 0.5 * R.HOLLOW_MIN_ADDED), base,
                          min_fraction=0.99, label="membrane")
    assert calls == [] and out is base


def test_alpha_envelope_without_repair_returns_the_invalid_surface(monkeypatch):
    import smlmspine.envelope._repair as RP

    rng = np.random.default_rng(0)
    d = rng.normal(size=(800, 3))
    pts = 100.0 * d / np.linalg.norm(d, axis=1, keepdims=True)
    cx = AlphaComplex.build(pts)
    # an alpha surface the check rejects, and a repair that says what it was given
    monkeypatch.setattr(A, "_faces_reason", lambda points, faces, check: "non-manifold: 1 edge")
    repaired = []

    def fake_repair(mesh, **kw):
        repaired.append(len(mesh.faces))
        return mesh, "", ["fixed"]

    monkeypatch.setattr(RP, "repair_mesh", fake_repair)
    raw = A._alpha_envelope(cx, alpha_nm=150.0, min_fraction=0.5, repair=False)
    assert repaired == []
    assert not raw.is_watertight and raw.reason == "non-manifold: 1 edge"
    assert len(raw.mesh.faces) > 0
    fixed = A._alpha_envelope(cx, alpha_nm=150.0, min_fraction=0.5)
    assert repaired == [len(raw.mesh.faces)]
    assert fixed.is_watertight and "repaired: fixed" in fixed.note


def test_solids_doubling_but_surfaces_not_is_not_used(monkeypatch):
    # the repaired bridged surface adds only 10 % to the plain surface's volume: the
    # solids' doubling alone does not make it used (both measures must agree)
    seen = []

    def fake(cx, *, repair=True, **kw):
        seen.append(repair)
        return _env(trimesh.creation.icosphere(2, radius=1.0 * 1.1 ** (1 / 3)),
                    note="alpha surface was invalid (x); repaired: voxel remesh")

    monkeypatch.setattr(A, "_alpha_envelope", fake)
    monkeypatch.setattr(R, "_enclosed", lambda inner, outer: 1.0)
    base = _env(trimesh.creation.icosphere(2, radius=1.0))
    out = R._bridge_leaky(_Volumes(1.0, 2.5), base, min_fraction=0.99, label="membrane")
    assert seen == [True] and out is base
