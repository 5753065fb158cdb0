"""``smlmspine voxelize``, ``label-points`` and ``spine-grids`` in-process."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import trimesh

from smlmspine.cli import main


@pytest.fixture(scope="module")
def mesh_dir(tmp_path_factory):
    """Two spines and a dendrite as `smlmspine mesh` writes them (nm, declared)."""
    from smlmspine.envelope import export_mesh

    d = tmp_path_factory.mktemp("meshes")
    dend = trimesh.creation.box((1200.0, 400.0, 400.0))
    s0 = trimesh.creation.cone(radius=120.0, height=500.0, sections=48)   # base cap at z=0
    s0.apply_translation([-300.0, 0, 150.0])
    s3 = trimesh.creation.icosphere(subdivisions=3, radius=150.0)
    s3.apply_translation([300.0, 0, 300.0])
    export_mesh(dend, d / "dendrite.ply")
    export_mesh(s0, d / "spine_0.ply", spine_id=0)
    export_mesh(s3, d / "spine_3.ply", spine_id=3)
    return d


def _locs(tmp_path, pts):
    from smlmspine import write
    from smlmspine.schema import make_table

    t = make_table({"x": pts[:, 0], "y": pts[:, 1], "z": pts[:, 2],
                    "frame": np.arange(len(pts))})
    path = tmp_path / "locs.parquet"
    write(t, path)
    return path


@pytest.mark.parametrize("ext", [".ome.tif", ".ome.zarr"])
def test_voxelize_then_label_points(tmp_path, mesh_dir, ext, capsys):
    from smlmspine import read
    from smlmspine.voxel import read_image

    out = tmp_path / f"labels{ext}"
    assert main(["voxelize", str(mesh_dir), "-o", str(out), "--voxel-nm", "20"]) == 0
    img = read_image(out)
    assert img.data.dtype == np.uint32
    assert set(np.unique(np.asarray(img.data))) == {0, 1, 4, 5}   # spines 0, 3; dendrite 5
    assert "2 spine(s) and the dendrite (label 5)" in capsys.readouterr().out
    pts = np.array([[-300.0, 0, 250.0],     # spine 0 (cone, above the box)
                    [300.0, 0, 400.0],      # spine 3
                    [0.0, 0, 0],            # dendrite only
                    [0.0, 0, 1000.0],       # background
                    [5e4, 0, 0]])           # outside the image
    locs = _locs(tmp_path, pts)
    res = tmp_path / "labelled.csv"
    assert main(["label-points", str(locs), str(out), "-o", str(res)]) == 0
    got = read(res).column("spine_id").to_pylist()
    assert got == [0, 3, -1, -1, -1]
    # raw labels with --offset 0 and another column name
    assert main(["label-points", str(locs), str(out), "-o", str(tmp_path / "raw.parquet"),
                 "--offset", "0", "--column", "region", "--outside", "-9", "--quiet"]) == 0
    assert read(tmp_path / "raw.parquet").column("region").to_pylist() == [1, 4, -9, -9, -9]


def test_voxelize_like_render_lines_up(tmp_path, mesh_dir):
    from smlmspine.voxel import read_image, render, write_image
    from smlmspine.schema import make_table

    rng = np.random.default_rng(0)
    p = rng.uniform(-700, 700, (2000, 3))
    t = make_table({"x": p[:, 0], "y": p[:, 1], "z": p[:, 2]})
    image = render(t, voxel_nm=25.0, dims=3)
    write_image(image, tmp_path / "render.ome.tif")
    out = tmp_path / "labels.ome.tif"
    frac = tmp_path / "fraction.ome.tif"
    assert main(["voxelize", str(mesh_dir), "-o", str(out), "--like",
                 str(tmp_path / "render.ome.tif"), "--fraction", str(frac), "--quiet"]) == 0
    lab, f = read_image(out), read_image(frac)
    assert lab.data.shape == image.data.shape == f.data.shape
    assert np.allclose(lab.origin_nm, image.origin_nm) and lab.voxel_nm == image.voxel_nm
    fd = np.asarray(f.data)
    assert np.all(fd[np.asarray(lab.data) > 0] > 0)          # labelled voxels are covered
    # the fraction sums to the union's volume (box with the cone sticking out, sphere)
    assert fd.sum() * 25.0 ** 3 == pytest.approx(1200 * 400 * 400 + 0.6e7 + 1.5e7, rel=0.15)


def test_spine_grids_cli(tmp_path, mesh_dir, capsys):
    from smlmspine.voxel import read_spine_grids

    locs = _locs(tmp_path, np.array([[-300.0, 0, 300.0], [-300.0, 10, 320.0],
                                     [300.0, 0, 300.0]]))
    out = tmp_path / "grids"
    assert main(["spine-grids", str(mesh_dir), "-o", str(out), "--size", "16", "--points",
                 "128", "--channels", "mask,sdf,density", "--table", str(locs)]) == 0
    assert "2 spine(s)" in capsys.readouterr().out
    back = read_spine_grids(out / "spine_grids.npz")
    assert back["grids"].shape == (2, 3, 16, 16, 16)
    assert back["points"].shape == (2, 128, 3)
    index = pq.read_table(out / "spine_grids.parquet")
    assert index.column("spine_id").to_pylist() == [0, 3]
    assert index.column("frame_source").to_pylist()[0] == "cap"
    assert index.column("n_localizations").to_pylist() == [2, 1]
    # zarr on request
    assert main(["spine-grids", str(mesh_dir), "-o", str(tmp_path / "z"), "--size", "8",
                 "--points", "16", "--format", "zarr", "--quiet"]) == 0
    assert (tmp_path / "z" / "spine_grids.zarr" / "zarr.json").is_file()


@pytest.mark.parametrize("argv, message", [
    (["voxelize", "{mesh}", "-o", "{tmp}/l.ome.tif"], "give --voxel-nm or --like"),
    (["voxelize", "{mesh}", "-o", "{tmp}/l.png", "--voxel-nm", "10"], "extension"),
    (["voxelize", "{tmp}/nope", "-o", "{tmp}/l.ome.tif", "--voxel-nm", "10"],
     "no such mesh folder"),
    (["voxelize", "{mesh}", "-o", "{tmp}/l.ome.tif", "--voxel-nm", "0.01"], "memory budget"),
    (["voxelize", "{mesh}", "-o", "{tmp}/l.ome.tif", "--voxel-nm", "10", "--roi-nm", "1,2"],
     "--roi-nm must be 6"),
    (["label-points", "{locs}", "{tmp}/missing.ome.tif", "-o", "{tmp}/o.csv"],
     "no such file"),
    (["spine-grids", "{mesh}", "-o", "{tmp}/g", "--channels", "density"], "needs --table"),
    (["spine-grids", "{mesh}", "-o", "{tmp}/g", "--channels", "mask,rgb"], "channels must"),
])
def test_refusals_one_line_exit_2_no_output(tmp_path, mesh_dir, capsys, argv, message):
    locs = _locs(tmp_path, np.zeros((2, 3)))
    before = set(tmp_path.iterdir())
    args = [a.format(mesh=mesh_dir, tmp=tmp_path, locs=locs) for a in argv]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and message in err and "Traceback" not in err
    assert set(tmp_path.iterdir()) == before


def test_label_points_2d_plain_npy(tmp_path, capsys):
    from smlmspine import read

    a = np.zeros((4, 5), np.uint16)
    a[1:3, 2:4] = 7
    np.save(tmp_path / "seg.npy", a)
    locs = _locs(tmp_path, np.array([[25.0, 15.0, 0.0], [5.0, 5.0, 0.0], [35.0, 25.0, 9.0]]))
    out = tmp_path / "o.parquet"
    assert main(["label-points", str(locs), str(tmp_path / "seg.npy"), "-o", str(out),
                 "--image-voxel-nm", "10", "--column", "seg"]) == 0
    assert read(out).column("seg").to_pylist() == [7, -1, 7]
    assert "2 of 3 localizations in 1 label(s)" in capsys.readouterr().out
    # a plain array has no voxel size: refused, never guessed
    assert main(["label-points", str(locs), str(tmp_path / "seg.npy"), "-o",
                 str(tmp_path / "p.parquet")]) == 2


def test_label_points_keeps_table(tmp_path):
    from smlmspine import read
    from smlmspine.voxel import VoxelImage, write_image

    img = VoxelImage(np.ones((3, 3, 3), np.uint32) * 2, ("z", "y", "x"), (10.0,) * 3,
                     (0.0,) * 3, value_unit="label")
    write_image(img, tmp_path / "l.ome.tif")
    locs = _locs(tmp_path, np.array([[0.0, 0, 0], [10.0, 10, 10]]))
    out = tmp_path / "o.parquet"
    assert main(["label-points", str(locs), str(tmp_path / "l.ome.tif"), "-o", str(out),
                 "--quiet"]) == 0
    t = read(out)
    assert t.column("spine_id").to_pylist() == [2, 2]
    assert t.column("frame").to_pylist() == [0, 1]
    assert isinstance(t, pa.Table)


@pytest.mark.parametrize("ext", [".ome.tif", ".ome.zarr"])
def test_voxelize_failure_at_the_second_image_leaves_nothing(tmp_path, mesh_dir, capsys,
                                                             monkeypatch, ext):
    import smlmspine.voxel as voxel

    real = voxel.write_image
    calls = []

    def flaky(image, path, **kw):
        calls.append(path)
        if len(calls) == 2:
            raise OSError(28, "No space left on device", str(path))
        return real(image, path, **kw)

    monkeypatch.setattr(voxel, "write_image", flaky)
    before = set(tmp_path.iterdir())
    rc = main(["voxelize", str(mesh_dir), "-o", str(tmp_path / f"l{ext}"), "--voxel-nm", "40",
               "--fraction", str(tmp_path / f"f{ext}")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "No space left" in err and "\n" not in err
    assert len(calls) == 2
    assert set(tmp_path.iterdir()) == before


def test_spine_grids_in_batches_under_a_small_budget(tmp_path, mesh_dir, monkeypatch):
    from smlmspine.voxel import read_spine_grids

    whole = tmp_path / "whole"
    assert main(["spine-grids", str(mesh_dir), "-o", str(whole), "--size", "16", "--points",
                 "128", "--format", "zarr", "--quiet"]) == 0
    # 16^3 x 1 channel: 19.5 kB per spine, 164 kB of temporaries: one spine per batch
    monkeypatch.setenv("SMLMSPINE_MEMORY_BUDGET_GB", "0.00038")
    parts = tmp_path / "parts"
    assert main(["spine-grids", str(mesh_dir), "-o", str(parts), "--size", "16", "--points",
                 "128", "--quiet"]) == 0
    a = read_spine_grids(whole / "spine_grids.zarr")
    b = read_spine_grids(parts / "spine_grids.zarr")
    for key in ("grids", "points", "normals", "affines", "spine_ids"):
        assert np.array_equal(a[key], b[key]), key
    ia = pq.read_table(whole / "spine_grids.parquet")
    ib = pq.read_table(parts / "spine_grids.parquet")
    assert ia.equals(ib) and ib.column("row").to_pylist() == [0, 1]
    # npz cannot be appended to: refused, nothing left
    assert main(["spine-grids", str(mesh_dir), "-o", str(tmp_path / "n"), "--size", "16",
                 "--points", "128", "--format", "npz", "--quiet"]) == 2
    assert not (tmp_path / "n").exists()


def test_voxelize_like_a_2d_render_then_label_2d_points(tmp_path, mesh_dir):
    from smlmspine import read, write
    from smlmspine.schema import make_table
    from smlmspine.voxel import read_image, render, write_image

    rng = np.random.default_rng(1)
    p = rng.uniform(-700, 700, (500, 2))
    write_image(render(make_table({"x": p[:, 0], "y": p[:, 1]}), voxel_nm=20.0, dims=2),
                tmp_path / "overview.ome.tif")
    out = tmp_path / "labels2d.ome.tif"
    assert main(["voxelize", str(mesh_dir), "-o", str(out), "--like",
                 str(tmp_path / "overview.ome.tif"), "--quiet"]) == 0
    lab = read_image(out)
    assert lab.axes == ("y", "x")
    locs = tmp_path / "locs2d.csv"
    write(make_table({"x": [-300.0, 300.0, 0.0], "y": [0.0, 0.0, 0.0]}), locs)
    res = tmp_path / "out.parquet"
    assert main(["label-points", str(locs), str(out), "-o", str(res), "--quiet"]) == 0
    # columns under the cone (spine 0) and the sphere (spine 3); the box centre: dendrite
    assert read(res).column("spine_id").to_pylist() == [0, 3, -1]
