"""Large point sets are tetrahedralized by a joggled Qhull (``QJ``): the exact merge of a
base-cap disc's square grid took minutes on an oversized region (issue #19)."""

import numpy as np
import pytest

from smlmspine.envelope import _alpha


def _shell_with_grid_disc(rng):
    """A hemispherical membrane shell closed by a flat square-grid disc (as the base cap)."""
    u = rng.normal(size=(3000, 3))
    u[:, 2] = np.abs(u[:, 2])
    shell = 500.0 * u / np.linalg.norm(u, axis=1, keepdims=True)
    g = np.arange(-500.0, 501.0, 20.0)
    gx, gy = np.meshgrid(g, g)
    disc = np.c_[gx.ravel(), gy.ravel(), np.zeros(gx.size)]
    disc = disc[np.hypot(disc[:, 0], disc[:, 1]) < 490.0]
    return np.r_[shell, disc]


@pytest.mark.parametrize("joggle_above, joggled", [(100, True), (10**9, False)])
def test_large_inputs_are_joggled(monkeypatch, joggle_above, joggled):
    import scipy.spatial

    q = _shell_with_grid_disc(np.random.default_rng(5))
    q = q - q.mean(axis=0)
    seen = []
    real = scipy.spatial.Delaunay

    def spy(points, qhull_options=None, **kw):
        seen.append(qhull_options)
        return real(points, qhull_options=qhull_options, **kw)

    monkeypatch.setattr(scipy.spatial, "Delaunay", spy)
    monkeypatch.setattr(_alpha, "QHULL_JOGGLE_ABOVE", joggle_above)
    simplices, neighbours, vertex_of = _alpha._qhull(q)
    assert ("QJ" in seen[0].split()) == joggled
    # a joggled triangulation keeps every point as a vertex of its own
    if joggled:
        assert (vertex_of == np.arange(len(q))).all()
        assert np.unique(simplices).size == len(q)
    # either way the tetrahedra fill the convex hull
    p = q[simplices]
    vol = np.abs(np.einsum("ij,ij->i", p[:, 1] - p[:, 0],
                           np.cross(p[:, 2] - p[:, 0], p[:, 3] - p[:, 0]))).sum() / 6.0
    assert vol == pytest.approx(scipy.spatial.ConvexHull(q).volume, rel=1e-6)
    assert neighbours.shape == simplices.shape
