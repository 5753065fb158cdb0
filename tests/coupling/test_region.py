"""Regions: measures, membership, CSR sampling, edge fractions, data-derived regions."""

import numpy as np
import pytest
import tifffile

from smlmspine.coupling import BoxRegion, MaskRegion, PolygonRegion, make_region, read_mask_region
from smlmspine.errors import FormatError, ParameterError, QualityWarning


def test_disk_mask_fraction_converges_to_analytic():
    """A point at the centre of a disk-shaped mask of radius R sees the whole circle for r < R
    and none of it for r > R, whatever the pixel size (converges with the mask)."""
    for px in (5.0, 20.0):
        n = int(2000 / px)
        yy, xx = np.mgrid[:n, :n]
        disk = (xx + 0.5 - n / 2) ** 2 + (yy + 0.5 - n / 2) ** 2 <= (500 / px) ** 2
        reg = MaskRegion(disk, voxel_size_nm=px)
        f = reg.fraction_inside([[1000.0, 1000.0]] * 2, [400.0, 600.0])
        assert f[0] == pytest.approx(1.0) and f[1] == pytest.approx(0.0)
        assert reg.measure == pytest.approx(np.pi * 500 ** 2, rel=0.02)


def test_nonconvex_polygon_fraction():
    # L-shape: the point at the inner corner sees 3/4 of a small circle
    poly = PolygonRegion([[0, 0], [2000, 0], [2000, 1000], [1000, 1000], [1000, 2000], [0, 2000]])
    assert not poly.is_convex
    assert poly.fraction_inside([[1000.0, 1000.0]], [100.0])[0] == pytest.approx(0.75, abs=0.01)
    assert poly.measure == pytest.approx(3e6)


def test_sampling_is_uniform_in_mask():
    m = np.zeros((10, 20), bool)
    m[:, :10] = True
    reg = MaskRegion(m, voxel_size_nm=100.0, origin_nm=(500.0, 0.0))
    pts = reg.sample(5000, rng=0)
    assert reg.contains(pts).all()
    assert pts[:, 0].min() >= 500 and pts[:, 0].max() <= 1500
    assert abs(pts[:, 0].mean() - 1000) < 15


def test_make_region_variants(tmp_path):
    pts = np.random.default_rng(0).random((100, 2)) * 1000
    with pytest.warns(QualityWarning):
        hull = make_region("hull", pts)
    with pytest.warns(QualityWarning):
        bbox = make_region("bbox", pts)
    assert hull.measure < bbox.measure and hull.contains(pts).all()
    assert make_region((np.zeros(2), np.full(2, 1000.0)), pts).measure == 1e6
    tif = tmp_path / "mask.tif"
    tifffile.imwrite(tif, np.ones((8, 8), np.uint8))
    reg = read_mask_region(tif, voxel_size_nm=125.0)
    assert reg.measure == pytest.approx(1e6)
    with pytest.raises(FormatError, match="no pixel size"):
        read_mask_region(tif)
    with pytest.raises(ParameterError, match="upper corner"):
        BoxRegion([0, 0], [0, 10])
    with pytest.raises(ParameterError, match="3D but the points are 2D"):
        make_region(BoxRegion([0, 0, 0], [1, 1, 1]), pts)


def test_public_names_resolve():
    import smlmspine.coupling as c
    import smlmspine.simulate.synapses as s

    for mod in (c, s):
        for name in mod.__all__:
            assert getattr(mod, name) is not None


def test_couple_cli_with_tiff_mask(tmp_path):
    import json

    from smlmspine.cli import main
    from smlmspine.io import write
    from smlmspine.simulate.synapses import SynapsePopulations, synapses

    m = np.zeros((60, 80), bool)
    m[5:55, 10:70] = True
    sim = synapses(populations=SynapsePopulations(n_pre=400, n_post=400, coupled_fraction=0.5,
                                                  distance_mean_nm=70, distance_sd_nm=10),
                   region=MaskRegion(m, voxel_size_nm=100.0), rng=9)
    tifffile.imwrite(tmp_path / "mask.tif", m.astype(np.uint8))
    write(sim.pre_objects, tmp_path / "pre.parquet")
    write(sim.post_objects, tmp_path / "post.parquet")
    rc = main(["couple", str(tmp_path / "pre.parquet"), str(tmp_path / "post.parquet"), "-o",
               str(tmp_path / "out"), "--region", str(tmp_path / "mask.tif"), "--voxel-size-nm", "100",
               "--r-max-nm", "200", "--ring-nm", "10", "--no-plot"])
    assert rc == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["region_measure_nm_d"] == pytest.approx(m.sum() * 1e4)
    # sd of the index is ~0.025 here (400 objects, 30 um^2); 3 sd
    assert abs(summary["coupling_index_post"] - 0.5) < 0.075
    assert summary["warnings"] == []


def test_rotated_polytope_sphere_fraction():
    """A rotated cube as a convex hull: a sphere cut by one face keeps 1 - (1 - e/r)/2."""
    from smlmspine.coupling._region import _convex_from_points

    a, b = 0.5, 0.3
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    rot = rx @ rz
    corners = np.array([[x, y, z] for x in (0, 1000) for y in (0, 1000) for z in (0, 1000)], float)
    reg = _convex_from_points(corners @ rot.T)
    assert reg.measure == pytest.approx(1e9)
    c = np.array([[80.0, 500.0, 500.0]]) @ rot.T
    assert reg.fraction_inside(c, [200.0])[0] == pytest.approx(0.7, abs=1e-5)
    corner = np.array([[0.0, 0.0, 500.0]]) @ rot.T
    # where two faces meet, the kink of the arc union is not a panel end: ~1e-4
    assert reg.fraction_inside(corner, [100.0])[0] == pytest.approx(0.25, abs=5e-4)
