"""Screenshots for docs/report.md: the report of the README's main job, in headless Chromium.

Run the main job first (``smlmspine run examples/data/sample_dendrite.csv -o out/sample``),
then ``python docs/figures/make_report_figures.py out/sample``: writes
``out/sample/report.html``, ``docs/figures/report_top.png`` (summary, drift trace,
overview) and ``docs/figures/report_gallery.png`` (spine gallery, features by class),
900 px wide palette PNGs. Needs the Debian package ``chromium``.
"""

import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from smlmspine.report import write_report

HERE = Path(__file__).resolve().parent
WIDTH = 1150


def screenshot(html: Path, png: Path, height: int) -> np.ndarray:
    """The page rendered ``WIDTH`` x ``height`` px, as an RGB array."""
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(["/usr/bin/chromium", "--headless", "--no-sandbox", "--disable-gpu",
                        "--disable-background-networking", "--no-first-run",
                        f"--user-data-dir={profile}", "--hide-scrollbars",
                        f"--window-size={WIDTH},{height}", f"--screenshot={png}", html.as_uri()],
                       check=True, capture_output=True)
    return np.asarray(Image.open(png).convert("RGB"))


def section_top(text: str, sid: str, tmp: Path) -> int:
    """Pixel row where section ``sid`` starts: the page cut just before it, rendered, ends
    with its last non-white row (the layout above the cut is the same)."""
    part = tmp / f"{sid}.html"
    part.write_text(text[:text.index(f'<section id="{sid}">')] + "</body></html>")
    px = screenshot(part, tmp / f"{sid}.png", 9000)
    ink = np.nonzero((px < 245).any(axis=(1, 2)))[0]
    return int(ink[-1]) + 15


def save(px: np.ndarray, path: Path) -> None:
    img = Image.fromarray(px)
    img = img.resize((900, round(img.height * 900 / img.width)), Image.LANCZOS)
    img.quantize(256, method=Image.Quantize.FASTOCTREE).save(path, optimize=True)
    print(f"wrote {path} ({path.stat().st_size // 1024} KB)")


def main(run_dir: str) -> None:
    report = write_report(run_dir)
    text = report.read_text()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        top = {sid: section_top(text, sid, tmp) for sid in ("overview", "gallery", "features")}
        page = screenshot(report, tmp / "page.png", 9000)
    save(page[: top["overview"] + 640], HERE / "report_top.png")
    save(page[top["gallery"]: top["features"] + 700], HERE / "report_gallery.png")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
