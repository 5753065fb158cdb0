"""smlmspine.report: the HTML report of a real (small, simulated) run folder, and of a batch
folder assembled from it; every section present, every figure embedded, nothing external."""

import base64
import io
import json
import re
import shutil
import warnings

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from smlmspine.cli import main
from smlmspine.errors import FormatError, ParameterError, QualityWarning
from smlmspine.report import SECTIONS, build_report, write_report

SECTION_IDS = [sid for sid, _ in SECTIONS]
_IMG = re.compile(r'<img class="(\w+)" alt="([^"]*)" src="data:image/png;base64,([A-Za-z0-9+/=]+)">')


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory):
    """A real `smlmspine run` output: two spines (volume label, alpha envelopes, ~5 s), plus
    the output of a SODA coupling analysis in its coupling/ subfolder."""
    from smlmspine.coupling import BoxRegion, soda
    from smlmspine.pipeline import run
    from smlmspine.simulate import Acquisition, Geometry, Labeling, SimulatedDrift, dendrite
    from smlmspine.simulate.synapses import SynapsePopulations, synapses

    spines = [{"spine_class": "mushroom", "neck_diameter_nm": 200.0, "neck_length_nm": 500.0,
               "head_diameter_nm": 800.0, "head_length_nm": 800.0, "position_nm": 1500.0},
              {"spine_class": "stubby", "neck_diameter_nm": 450.0, "neck_length_nm": 250.0,
               "head_diameter_nm": 550.0, "head_length_nm": 400.0, "position_nm": 3500.0}]
    sim = dendrite(geometry=Geometry(spines=spines, shaft_length_nm=5000.0),
                   labeling=Labeling(label="volume"), acquisition=Acquisition(n_frames=2000),
                   drift=SimulatedDrift(drift_nm=120.0), rng=5)
    out = tmp_path_factory.mktemp("report") / "run"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", QualityWarning)
        run(sim.localizations, out, label="volume", method="alpha", neck_surface=False,
            workers=1, quiet=True)
    syn = synapses(populations=SynapsePopulations(n_pre=150, n_post=150, coupled_fraction=0.5),
                   region=BoxRegion((0, 0), (5000, 5000)), rng=1)
    res = soda(syn.pre_objects, syn.post_objects, region=BoxRegion((0, 0), (5000, 5000)))
    (out / "coupling").mkdir()
    pq.write_table(res.rings_table(), out / "coupling" / "rings.parquet")
    pq.write_table(res.pairs_table(), out / "coupling" / "pairs.parquet")
    (out / "coupling" / "summary.json").write_text(json.dumps(res.to_dict()))
    return out


def _section(html, sid):
    m = re.search(rf'<section id="{sid}">(.*?)</section>', html, re.S)
    assert m, f"section {sid} missing"
    return m.group(1)


def _images(text):
    return [(cls, alt, base64.b64decode(data)) for cls, alt, data in _IMG.findall(text)]


def test_run_report_has_every_section_embedded_and_self_contained(run_dir):
    path = write_report(run_dir)
    assert path == run_dir / "report.html"
    html = path.read_text(encoding="utf-8")
    spines = pq.read_table(run_dir / "spines.parquet").to_pylist()
    assert len(spines) == 2
    for sid, heading in SECTIONS:
        body = _section(html, sid)
        assert f"<h2>{heading}</h2>" in body
    # nothing that would load anything: no script, no external reference of any kind
    assert not re.search(r"https?:", html)
    assert "<script" not in html and "<link" not in html and "@import" not in html
    assert re.findall(r'\bsrc="([^"]*)"', html) and all(
        s.startswith("data:image/png;base64,") for s in re.findall(r'\bsrc="([^"]*)"', html))
    assert all(h.startswith("#") for h in re.findall(r'\bhref="([^"]*)"', html))
    # every embedded image is a PNG that decodes
    import matplotlib.image as mpimg

    for sid in ("drift", "overview", "gallery", "features", "coupling"):
        imgs = _images(_section(html, sid))
        assert imgs, sid
        for _, _, data in imgs:
            assert data[:8] == b"\x89PNG\r\n\x1a\n"
            assert mpimg.imread(io.BytesIO(data), format="png").ndim == 3
    # one thumbnail per spine, captioned with its own numbers from spines.parquet
    gallery = _section(html, "gallery")
    thumbs = [alt for cls, alt, _ in _images(gallery) if cls == "thumb"]
    assert thumbs == [f"spine {s['spine_id']}" for s in spines]
    from smlmspine.report._html import fmt

    for s in spines:
        assert f"neck {fmt(s['neck_min_diameter_nm'])} nm" in gallery
        assert f"head {fmt(s['head_diameter_nm'])} nm" in gallery
    # sections whose inputs exist are not "not run"; failures of a single run: none
    for sid in ("drift", "overview", "gallery", "coupling"):
        assert "not run" not in _section(html, sid)
    assert "none: a single run" in _section(html, "failures")
    assert "not run: one run has no manifest conditions" in _section(html, "features")
    # parameters: every run parameter as recorded in run.json
    params = json.loads((run_dir / "run.json").read_text())["parameters"]
    body = _section(html, "parameters")
    assert all(f"<td>{k}</td>" in body for k in params)
    assert "<td>alpha</td>" in body  # method="alpha", as run
    # coupling: the summary numbers of the analysis
    s = json.loads((run_dir / "coupling" / "summary.json").read_text())
    assert f"<td class=\"num\">{fmt(s['coupling_index_pre'])}</td>" in _section(html, "coupling")


def test_report_is_deterministic(run_dir):
    html = build_report(run_dir, max_thumbnails=1)
    assert html == build_report(run_dir, max_thumbnails=1)
    assert "showing the first 1 of 2 spines" in _section(html, "gallery")


def test_absent_inputs_say_not_run(run_dir, tmp_path):
    d = tmp_path / "bare"
    shutil.copytree(run_dir, d)
    shutil.rmtree(d / "coupling")
    (d / "drift.csv").unlink()
    (d / "localizations.parquet").unlink()
    (d / "report.html").unlink(missing_ok=True)
    for mesh in d.glob("spine_*.ply"):
        mesh.unlink()
    info = json.loads((d / "run.json").read_text())
    info["stages"]["drift"] = {"skipped": "drift='none'"}
    (d / "run.json").write_text(json.dumps(info))
    html = write_report(d).read_text()
    assert "not run: no drift.csv (drift=&#x27;none&#x27;)" in _section(html, "drift")
    assert "not run: no localizations.parquet" in _section(html, "overview")
    assert "not run: no smlmspine couple output" in _section(html, "coupling")
    gallery = _section(html, "gallery")
    assert gallery.count("no mesh file: spine_") == 2 and "neck " in gallery
    (d / "spines.parquet").unlink()
    html = build_report(d)
    for sid in ("gallery", "features"):
        assert "not run: no spines.parquet" in _section(html, sid)


def test_flagged_and_nan_values_shown_as_untrustworthy(run_dir, tmp_path):
    d = tmp_path / "flagged"
    shutil.copytree(run_dir, d)
    t = pq.read_table(d / "spines.parquet")
    rows = t.to_pylist()
    rows[0].update(quality="flagged", trustworthy=False, quality_reason="neck_wider_than_head")
    rows[1].update(quality="not_measured", trustworthy=False, quality_reason="open_envelope",
                   neck_min_diameter_nm=float("nan"), head_diameter_nm=float("nan"))
    pq.write_table(pa.Table.from_pylist(rows, schema=t.schema), d / "spines.parquet")
    html = build_report(d)
    gallery = _section(html, "gallery")
    assert ('<span class="untrusted" title="neck_wider_than_head">flagged: neck_wider_than_head'
            '</span>') in gallery
    assert ('<span class="untrusted" title="open_envelope">not_measured: open_envelope</span>'
            in gallery)
    assert "neck n/a nm · head n/a nm" in gallery
    summary = _section(html, "summary")
    assert re.search(r"<td>trustworthy \(quality ok\)</td><td class=\"num\">0</td>", summary)
    assert re.search(r"<td>flagged</td><td class=\"num\">1</td>", summary)
    table = _section(html, "features")
    assert '<tr class="flagged">' in table and '<tr class="not_measured">' in table


def test_histogram_streams_and_keeps_every_localization(run_dir):
    from smlmspine.report._collect import histogram_xy

    n = pq.read_metadata(run_dir / "localizations.parquet").num_rows
    whole, extent, count = histogram_xy(run_dir / "localizations.parquet", bins=200)
    batched, extent2, count2 = histogram_xy(run_dir / "localizations.parquet", bins=200,
                                            batch_rows=1000)
    assert count == count2 == n == whole.sum()
    assert extent == extent2 and np.array_equal(whole, batched)
    t = pq.read_table(run_dir / "localizations.parquet", columns=["x", "y"])
    x, y = t.column("x").to_numpy(), t.column("y").to_numpy()
    assert extent[0] <= x.min() and extent[1] >= x.max()
    assert extent[2] <= y.min() and extent[3] >= y.max()


def _fake_batch(run_dir, root):
    """A batch folder as `smlmspine batch` lays it out (smlmspine/_batch.py): one run folder
    per file, the tidy spines table with source, run_folder and the manifest's columns,
    localizations_summary.parquet, failures.csv and batch.json."""
    root.mkdir()
    tables, summary = [], []
    for stem, condition in (("cellA", "control"), ("cellB", "tetrodotoxin")):
        shutil.copytree(run_dir, root / stem, ignore=shutil.ignore_patterns("coupling", "report.html"))
        t = pq.read_table(root / stem / "spines.parquet")
        n = t.num_rows
        ident = pa.table({"source": [f"data/{stem}.csv"] * n, "run_folder": [stem] * n,
                          "condition": [condition] * n})
        tables.append(pa.Table.from_arrays(ident.columns + t.columns,
                                           names=ident.column_names + t.column_names))
        summary.append({"source": f"data/{stem}.csv", "run_folder": stem, "condition": condition,
                        "status": "done", "n_localizations": 1000, "n_spines": n})
    summary.append({"source": "data/cellC.csv", "run_folder": "cellC", "condition": "control",
                    "status": "failed", "n_localizations": None, "n_spines": None})
    pq.write_table(pa.concat_tables(tables), root / "spines.parquet")
    pq.write_table(pa.Table.from_pylist(summary), root / "localizations_summary.parquet")
    (root / "failures.csv").write_text(
        "source,run_folder,error_type,error\ndata/cellC.csv,cellC,FormatError,"
        "\"cellC.csv: missing column(s) ['x [nm]']\"\n")
    (root / "batch.json").write_text(json.dumps({
        "smlmspine_version": "0.1.0", "config": {"run": {"label": "volume", "drift": "aim"}},
        "metadata_columns": ["condition"], "n_files": 3,
        "counts": {"done": 2, "skipped": 0, "failed": 1},
        "files": [{"source": f"data/{s}.csv", "run_folder": s, "status": st}
                  for s, st in (("cellA", "done"), ("cellB", "done"), ("cellC", "failed"))]}))
    return root


def test_batch_report(run_dir, tmp_path):
    root = _fake_batch(run_dir, tmp_path / "batch")
    html = write_report(root).read_text()
    for sid, heading in SECTIONS:
        assert f"<h2>{heading}</h2>" in _section(html, sid)
    assert "smlmspine batch report" in html
    fails = _section(html, "failures")
    assert "1 file(s) failed" in fails and "cellC.csv: missing column(s)" in fails
    feats = _section(html, "features")
    assert len(_images(feats)) == 2  # by class, by condition
    assert 'alt="features by condition"' in feats
    gallery = _section(html, "gallery")
    n = pq.read_metadata(root / "spines.parquet").num_rows
    assert len([1 for cls, _, _ in _images(gallery) if cls == "thumb"]) == n  # meshes found
    assert "cellA.csv" in gallery and "cellB.csv" in gallery
    assert len(_images(_section(html, "overview"))) == 2
    assert "not run" not in _section(html, "drift")
    summary = _section(html, "summary")
    assert "<td>files done</td><td>2</td>" in summary and "<td>files failed</td><td>1</td>" in summary
    assert "<h3>Files (localizations_summary.parquet)</h3>" in summary
    assert '<tr class="flagged"><td>cellC.csv</td><td>control</td><td>failed</td>' in summary
    assert "<td>run.label</td><td>volume</td>" in _section(html, "parameters")
    assert not re.search(r"https?:", html)


def test_report_refuses_what_is_not_an_output_folder(tmp_path):
    with pytest.raises(FormatError, match="not a run or batch output folder"):
        write_report(tmp_path)
    with pytest.raises(FormatError, match="no such folder"):
        write_report(tmp_path / "missing")
    (tmp_path / "run.json").write_text("[1, 2]")
    with pytest.raises(FormatError, match="expected a JSON object"):
        write_report(tmp_path)
    with pytest.raises(FormatError, match="not a batch output folder"):
        write_report(tmp_path, kind="batch")
    with pytest.raises(ParameterError, match="kind"):
        write_report(tmp_path, kind="movie")
    assert not (tmp_path / "report.html").exists()


def test_cli_report(run_dir, tmp_path, capsys):
    out = tmp_path / "r.html"
    assert main(["report", str(run_dir), "-o", str(out), "--title", "my <run>"]) == 0
    assert "<title>my &lt;run&gt;</title>" in out.read_text()
    assert capsys.readouterr().out.strip() == f"wrote {out}"
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a run or batch output folder" in err
    assert "Traceback" not in err and not (tmp_path / "report.html").exists()
    assert main(["report", str(run_dir), "-o", str(tmp_path / "no" / "r.html")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "no").exists()


# A probe added to a copy of the report (the report itself has no script): after load it
# records script/resource errors, each section's box and whether each image decoded.
_PROBE_HEAD = """<script>window.__errors = [];
window.addEventListener('error', e => window.__errors.push(String(e.message || (e.target &&
  (e.target.outerHTML || '').slice(0, 80)))), true);</script>"""
_PROBE_BODY = """<script>window.addEventListener('load', () => {
  const out = {errors: window.__errors, height: document.documentElement.scrollHeight, sections: {}};
  for (const s of document.querySelectorAll('section')) {
    const r = s.getBoundingClientRect(), h = s.querySelector('h2');
    const imgs = [...s.querySelectorAll('img')];
    out.sections[s.id] = {height: r.height, width: r.width, heading: h ? h.innerText : null,
      headingHeight: h ? h.getBoundingClientRect().height : 0,
      images: imgs.length, decoded: imgs.filter(i => i.complete && i.naturalWidth > 0).length,
      displayed: imgs.filter(i => i.getBoundingClientRect().width > 0).length};
  }
  const pre = document.createElement('pre'); pre.id = 'probe';
  pre.textContent = JSON.stringify(out); document.body.appendChild(pre);
});</script>"""


def _chromium(args, tmp_path):
    import subprocess
    from pathlib import Path

    exe = Path("/usr/bin/chromium")
    if not exe.exists():
        pytest.fail("headless Chromium is needed: install the Debian package "
                    "(apt-get install -y chromium)")
    cmd = [str(exe), "--headless", "--no-sandbox", "--disable-gpu",
           "--disable-background-networking", "--no-first-run", "--disable-extensions",
           f"--user-data-dir={tmp_path / 'chromium-profile'}", "--hide-scrollbars", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180, check=True)


@pytest.mark.slow
def test_report_renders_in_headless_chromium(run_dir, tmp_path):
    """The report opens in a real browser without errors, every section is laid out with
    its heading, every image decodes and the page is not blank."""
    import html as html_mod

    report = write_report(run_dir, output=tmp_path / "report.html")
    text = report.read_text()
    probe = tmp_path / "probe.html"
    probe.write_text(text.replace("<head>", "<head>" + _PROBE_HEAD, 1)
                     .replace("</body>", _PROBE_BODY + "</body>", 1))
    dom = _chromium(["--virtual-time-budget=10000", "--dump-dom", probe.as_uri()], tmp_path).stdout
    m = re.search(r'<pre id="probe">(.*?)</pre>', dom, re.S)
    assert m, "the page did not finish loading"
    result = json.loads(html_mod.unescape(m.group(1)))
    assert result["errors"] == []
    assert list(result["sections"]) == SECTION_IDS
    n_images = len(_IMG.findall(text))
    assert sum(s["images"] for s in result["sections"].values()) == n_images > 0
    for (sid, heading), s in zip(SECTIONS, result["sections"].values()):
        assert s["heading"] == heading and s["headingHeight"] > 0, sid
        assert s["height"] > s["headingHeight"] and s["width"] > 300, sid
        assert s["decoded"] == s["displayed"] == s["images"], sid
    # the report itself (no probe): a screenshot of the whole page is not blank
    shot = tmp_path / "shot.png"
    height = min(int(result["height"]) + 50, 16000)
    _chromium([f"--window-size=1200,{height}", f"--screenshot={shot}", report.as_uri()], tmp_path)
    import matplotlib.image as mpimg

    px = mpimg.imread(shot)[..., :3]
    assert px.shape[0] == height
    rows_with_ink = np.mean((px < 0.9).any(axis=(1, 2)))
    assert rows_with_ink > 0.3  # text, tables and figures down the page
    colored = np.abs(px - px.mean(axis=2, keepdims=True)).max(axis=2) > 0.2
    assert colored.mean() > 0.002  # the class-coloured thumbnails and plots are drawn


def test_no_spines_and_unreadable_mesh(run_dir, tmp_path):
    d = tmp_path / "odd"
    shutil.copytree(run_dir, d)
    (d / "spine_0.ply").write_bytes(b"ply\nformat binary_little_endian 1.0\nelement vertex 9\n")
    gallery = _section(build_report(d), "gallery")
    assert "spine_0.ply could not be read" in gallery
    assert len([1 for cls, _, _ in _images(gallery) if cls == "thumb"]) == 1  # the other one
    t = pq.read_table(d / "spines.parquet")
    pq.write_table(t.slice(0, 0), d / "spines.parquet")
    html = build_report(d)
    assert "not run: no spines were found" in _section(html, "gallery")
    assert "not run: no spines were found" in _section(html, "features")
    assert re.search(r"<td>spines</td><td class=\"num\">0</td>", _section(html, "summary"))
    assert len(_images(_section(html, "overview"))) == 1



def test_report_drawn_by_helpers_is_the_same_text(run_dir, monkeypatch):
    """Inside smlmspine._background.helpers (the CLI's run) the sections with figures are
    drawn by helper processes: the page is the same, byte for byte."""
    from smlmspine import _background
    from smlmspine.report import _write

    plain = build_report(run_dir)
    build = _write.build

    def text_only(folder, sid, **options):   # a figure drawn in this process fails
        assert sid not in _write.DRAWN, f"{sid} drawn in the calling process"
        return build(folder, sid, **options)

    monkeypatch.setattr(_write, "build", text_only)
    with pytest.raises(AssertionError, match="drawn in the calling process"):
        build_report(run_dir)
    monkeypatch.setattr(_background, "WAIT_S", 600.0)   # idle-class: wait, even if busy
    with _background.helpers(2) as on:
        assert on
        drawn = build_report(run_dir)
    assert drawn == plain
    assert {"drift", "gallery", "features"} <= set(_write.DRAWN)
