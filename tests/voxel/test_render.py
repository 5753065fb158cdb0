"""smlmspine.voxel.render: histogram and integrated-Gaussian rendering against analytic truth."""

from __future__ import annotations

import numpy as np
import pytest

from smlmspine.errors import ParameterError
from smlmspine.schema import make_table
from smlmspine.voxel import render


def _table(n=3000, seed=0, **extra):
    rng = np.random.default_rng(seed)
    cols = {"x": rng.uniform(0, 3000, n), "y": rng.uniform(-500, 1500, n),
            "z": rng.uniform(-300, 300, n), "precision_xy": rng.uniform(4, 15, n),
            "precision_z": rng.uniform(10, 40, n)}
    cols.update(extra)
    return make_table(cols)


def _edges(image):
    """Voxel edges per spatial axis from the image's pixel-centre origin."""
    return [o - v / 2 + v * np.arange(n + 1)
            for o, v, n in zip(image.origin_nm, image.voxel_nm, image.spatial_shape)]


@pytest.mark.parametrize("dims", [2, 3])
def test_histogram_counts_every_localization_in_its_voxel(dims):
    t = _table()
    img = render(t, voxel_nm=10.0 if dims == 2 else (25.0, 10.0, 10.0), dims=dims)
    assert img.data.dtype == np.float32
    assert img.axes == ("z", "y", "x")[3 - dims:]
    assert img.data.sum() == t.num_rows
    assert img.metadata["n_rendered"] == t.num_rows
    pts = np.column_stack([t.column(a).to_numpy() for a in ("z", "y", "x")[3 - dims:]])
    # independent reference: numpy's histogram over the edges implied by the origin
    ref, _ = np.histogramdd(pts, bins=_edges(img))
    np.testing.assert_array_equal(img.data, ref)
    # each localization's voxel (index_of, pixel-centre convention) holds it
    idx = img.index_of(pts)
    assert (img.data[tuple(idx.T)] >= 1).all()
    # grid edges are multiples of the voxel size
    first = np.array(img.origin_nm) - np.array(img.voxel_nm) / 2
    np.testing.assert_allclose(np.round(first / img.voxel_nm) * img.voxel_nm, first)


@pytest.mark.parametrize("sigma,voxel", [(25.0, 10.0), (40.0, 7.0)])
def test_gaussian_single_localization_centroid_and_width(sigma, voxel):
    x0, y0 = 1234.56, -87.3
    t = make_table({"x": [x0], "y": [y0], "precision_xy": [sigma]})
    img = render(t, voxel_nm=voxel, method="gaussian")
    d = img.data.astype(float)
    assert d.sum() == pytest.approx(1.0, abs=1e-6)
    yc = img.origin_nm[0] + voxel * np.arange(d.shape[0])
    xc = img.origin_nm[1] + voxel * np.arange(d.shape[1])
    px, py = d.sum(axis=0), d.sum(axis=1)
    mx, my = (px * xc).sum(), (py * yc).sum()
    assert abs(mx - x0) < 0.01 * voxel and abs(my - y0) < 0.01 * voxel
    # voxel-integrated Gaussian: variance sigma^2 + voxel^2 / 12 (uniform within a voxel)
    expected = np.sqrt(sigma ** 2 + voxel ** 2 / 12)
    for p, c, m in ((px, xc, mx), (py, yc, my)):
        assert np.sqrt((p * (c - m) ** 2).sum()) == pytest.approx(expected, rel=0.01)


def test_gaussian_3d_uses_axial_precision():
    t = make_table({"x": [500.0], "y": [500.0], "z": [33.3], "precision_xy": [12.0],
                    "precision_z": [45.0]})
    img = render(t, voxel_nm=5.0, dims=3, method="gaussian")
    d = img.data.astype(float)
    assert d.sum() == pytest.approx(1.0, abs=1e-6)
    zc = img.origin_nm[0] + 5.0 * np.arange(d.shape[0])
    pz = d.sum(axis=(1, 2))
    mz = (pz * zc).sum()
    assert abs(mz - 33.3) < 0.05
    assert np.sqrt((pz * (zc - mz) ** 2).sum()) == pytest.approx(np.sqrt(45.0 ** 2 + 25 / 12),
                                                                 rel=0.01)


@pytest.mark.parametrize("sigma", [0.0, 0.3, 2.0, 6.0])
def test_gaussian_sum_exact_below_one_voxel(sigma):
    t = _table(2000, seed=3)
    img = render(t, voxel_nm=20.0, method="gaussian", sigma_nm=sigma)
    assert float(img.data.sum(dtype=np.float64)) == pytest.approx(t.num_rows, rel=1e-6)
    if sigma == 0.0:  # no blur: exactly the histogram
        np.testing.assert_array_equal(img.data, render(t, voxel_nm=20.0).data)


def test_min_sigma_floor_widens():
    t = make_table({"x": [100.0], "y": [100.0], "precision_xy": [1.0]})
    narrow = render(t, voxel_nm=5.0, method="gaussian")
    wide = render(t, voxel_nm=5.0, method="gaussian", min_sigma_nm=20.0)
    assert wide.data.max() < narrow.data.max()
    assert wide.data.sum() == pytest.approx(1.0, abs=1e-6)
    assert wide.metadata["min_sigma_nm"] == 20.0


def test_roi_is_a_crop_of_the_full_render():
    t = _table(3000, seed=4)
    full = render(t, voxel_nm=10.0, method="gaussian")
    e0y, e0x = (o - 5.0 for o in full.origin_nm)
    roi = (e0x + 300, e0y + 200, e0x + 1500, e0y + 900)
    crop = render(t, voxel_nm=10.0, method="gaussian", roi_nm=roi)
    assert crop.data.shape == (70, 120)
    np.testing.assert_allclose(crop.data, full.data[20:90, 30:150], atol=2e-6)
    assert crop.origin_nm == (e0y + 205, e0x + 305)


def test_2d_roi_with_z_range_selects_a_slab():
    t = _table(4000, seed=5)
    z = t.column("z").to_numpy()
    img = render(t, voxel_nm=10.0, roi_nm=(0, -500, 3000, 1500, -100, 50))
    assert img.data.sum() == np.count_nonzero((z >= -100) & (z < 50))


def test_by_channel_and_weights():
    t = _table(2000, seed=6, channel=np.repeat([0, 2], 1000))
    img = render(t, voxel_nm=20.0, by="channel")
    assert img.axes == ("c", "y", "x")
    assert img.channel_names == ("channel=0", "channel=2")
    assert img.data[0].sum() == 1000 and img.data[1].sum() == 1000
    w = np.linspace(0, 2, 2000)
    weighted = render(t, voxel_nm=20.0, weights=w, method="gaussian", sigma_nm=5.0)
    assert float(weighted.data.sum(dtype=np.float64)) == pytest.approx(w.sum(), rel=1e-5)


def test_color_by_z_gives_rgb_weighted_by_colour():
    import matplotlib

    t = _table(1500, seed=7)
    img = render(t, voxel_nm=20.0, color_by="z")
    assert img.axes == ("y", "x", "rgb") and img.data.shape[-1] == 3
    z = t.column("z").to_numpy()
    lut = matplotlib.colormaps["turbo"](np.linspace(0, 1, 256))[:, :3]
    idx = np.clip(np.round((z - z.min()) / (z.max() - z.min()) * 255), 0, 255).astype(int)
    np.testing.assert_allclose(img.data.sum(axis=(0, 1), dtype=np.float64),
                               lut[idx].sum(axis=0), rtol=1e-5)
    assert img.metadata["color_by"]["range"] == [z.min(), z.max()]


def test_minflux_table_renders_in_3d():
    from smlmspine.simulate import MinfluxSample, minflux_traces

    t = minflux_traces(sample=MinfluxSample(n_emitters=30), ndim=3, rng=2).localizations
    img = render(t, voxel_nm=5.0, dims=3)
    assert img.data.sum() == t.num_rows
    g = render(t, voxel_nm=5.0, dims=3, method="gaussian", sigma_nm=(3.0, 4.5))
    assert float(g.data.sum(dtype=np.float64)) == pytest.approx(t.num_rows, rel=1e-6)
    with pytest.raises(ParameterError, match="precision_xy.*sigma_nm"):
        render(t, voxel_nm=5.0, method="gaussian")


def test_chunked_zarr_render_equals_in_memory(tmp_path, monkeypatch):
    from smlmspine.voxel import _render

    monkeypatch.setattr(_render, "SLAB_BYTES", 1)     # blocks of 256 x 256 voxels
    t = _table(4000, seed=8, channel=np.arange(4000) % 2)
    for dims in (2, 3):
        kw = dict(voxel_nm=(20.0, 5.0, 5.0)[3 - dims:], dims=dims, method="gaussian",
                  by="channel")
        ref = render(t, **kw)
        out = render(t, **kw, out=tmp_path / f"r{dims}.ome.zarr")
        assert out.data.shape == ref.data.shape and ref.data.shape[-1] > 512
        np.testing.assert_allclose(np.asarray(out.data[...]), ref.data, atol=1e-5)
        assert out.voxel_nm == ref.voxel_nm and out.origin_nm == ref.origin_nm
        assert out.metadata["n_rendered"] == t.num_rows
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r2.ome.zarr", "r3.ome.zarr"]


def test_overview_file(tmp_path):
    from smlmspine.voxel import read_image, write_overview

    t = _table(1000, seed=9)
    p = write_overview(t, tmp_path)
    assert p == tmp_path / "overview.ome.tif"
    back = read_image(p)
    assert back.voxel_nm == (20.0, 20.0) and back.metadata["method"] == "gaussian"
    assert float(back.data.sum(dtype=np.float64)) == pytest.approx(1000, rel=1e-5)
    t2 = make_table({"x": [0.0, 100.0], "y": [0.0, 50.0]})
    assert read_image(write_overview(t2, tmp_path, name="h.ome.tif")).metadata["method"] \
        == "histogram"


@pytest.mark.parametrize("kwargs,match", [
    (dict(dims=4), "dims must be 2 or 3"),
    (dict(method="splat"), "method must be one of"),
    (dict(voxel_nm=0.0), "voxel_nm must be a positive"),
    (dict(voxel_nm=(1.0, 2.0, 3.0)), "voxel_nm must be one number or 2"),
    (dict(roi_nm=(0, 0, 10)), "roi_nm must be"),
    (dict(roi_nm=(10, 0, 0, 10)), "x1 must be greater than x0"),
    (dict(method="gaussian", sigma_nm="wide"), "sigma_nm must be 'precision'"),
    (dict(method="gaussian", sigma_nm=-1.0), "sigma_nm must be a finite number >= 0"),
    (dict(by="nope"), "no column 'nope'"),
    (dict(weights=[1.0, 2.0]), "one value per localization"),
    (dict(dims=3, voxel_nm=1e-3), "memory budget"),
])
def test_bad_parameters_are_refused(kwargs, match):
    t = _table(50)
    args = dict(voxel_nm=10.0)
    args.update(kwargs)
    with pytest.raises(ParameterError, match=match):
        render(t, **args)


def test_bad_tables_are_refused():
    with pytest.raises(ParameterError, match="non-finite"):
        render(make_table({"x": [0.0, np.nan], "y": [0.0, 1.0]}), voxel_nm=10.0)
    with pytest.raises(ParameterError, match="no localizations"):
        render(make_table({"x": np.zeros(0), "y": np.zeros(0)}), voxel_nm=10.0)
    with pytest.raises(ParameterError, match="needs column 'z'"):
        render(make_table({"x": [0.0], "y": [0.0]}), voxel_nm=10.0, dims=3)
    bad = make_table({"x": [0.0, 1.0], "y": [0.0, 1.0], "precision_xy": [5.0, np.nan]})
    with pytest.raises(ParameterError, match="1 of 2 localizations"):
        render(bad, voxel_nm=10.0, method="gaussian")
    empty = render(make_table({"x": np.zeros(0), "y": np.zeros(0)}), voxel_nm=10.0,
                   roi_nm=(0, 0, 100, 50))
    assert empty.data.shape == (5, 10) and empty.data.sum() == 0


@pytest.mark.slow
def test_chunked_render_memory_is_bounded(tmp_path):
    """A 3D render whose image (1.6 GB as float32) is twice the memory budget runs into
    OME-Zarr block by block; the process's peak RSS stays far below the image size."""
    import json
    import subprocess
    import sys

    code = f"""
import json, numpy as np
from smlmspine.schema import make_table
from smlmspine.voxel import render
rng = np.random.default_rng(0)
n = 10**6
t = make_table({{"x": rng.uniform(0, 10000, n), "y": rng.uniform(0, 20000, n),
                "z": rng.uniform(0, 2000, n), "precision_xy": rng.uniform(5, 15, n),
                "precision_z": rng.uniform(10, 30, n)}})
img = render(t, voxel_nm=10.0, dims=3, method="gaussian",
             roi_nm=(0, 0, 10000, 20000, 0, 2000), out={str(tmp_path / 'big.ome.zarr')!r})
peak = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:"))
total = float(sum(img.data[z].sum(dtype=np.float64) for z in range(img.data.shape[0])))
print(json.dumps({{"shape": list(img.data.shape), "peak_mb": peak / 1024, "sum": total,
                  "n_rendered": img.metadata["n_rendered"]}}))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={"SMLMSPINE_MEMORY_BUDGET_GB": "0.8", "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr[-2000:]
    r = json.loads(out.stdout.strip().splitlines()[-1])
    assert r["shape"] == [200, 2000, 1000]          # 4e8 voxels, 1.6 GB as float32
    assert r["n_rendered"] == 10 ** 6
    assert 0.98e6 < r["sum"] <= 1e6 + 1             # the z faces cut a few Gaussians
    assert r["peak_mb"] < 1000, r                    # well below the 1600 MB image
