"""Fuzz corpus: small valid files of every reader format, and hostile mutations of them.

``write_seeds(folder)`` writes one small valid file per reader format/layout (with the
package's own writers where it has one, else by hand here) and returns them as
:class:`Seed`. ``cases(seeds, rng, size)`` yields :class:`Case` objects: a name, the seed
it derives from, a function writing the mutated file(s) into a folder, and what the
mutation must not change when the file still reads (``same_values``).
"""

from __future__ import annotations

import io
import json
import struct
import warnings
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

N_ROWS = 12


@dataclass
class Seed:
    name: str             # e.g. "thunderstorm_csv"
    filename: str         # main file name (its extension matters for some readers)
    data: bytes           # main file content
    sidecars: dict = field(default_factory=dict)   # other files next to it: name -> bytes
    text: bool = False    # a text format (encodings and value edits apply)
    values: dict = field(default_factory=dict)      # "x"/"y"/"z" -> reference values (nm), as read


@dataclass
class Case:
    name: str
    seed: Seed
    write: Callable[[Path], Path]   # writes the case into an empty folder, returns the main file
    same_values: bool = False       # if it still reads, x/y/z must equal the seed's
    heavy: bool = False             # may need memory/time: run under the tighter cap


def _table(rng, *, z=True, minflux=False):
    from smlmspine.schema import make_table

    cols = {"x": rng.uniform(100, 9000, N_ROWS).round(3), "y": rng.uniform(100, 9000, N_ROWS).round(3)}
    if z:
        cols["z"] = rng.uniform(-400, 400, N_ROWS).round(3)
    if minflux:
        cols["time_s"] = np.sort(rng.uniform(0, 30, N_ROWS))
        cols["track_id"] = np.repeat(np.arange(N_ROWS // 3), 3)
    else:
        cols["frame"] = np.sort(rng.integers(0, 500, N_ROWS))
        cols["photons"] = rng.uniform(200, 3000, N_ROWS).round(2)
        cols["precision_xy"] = rng.uniform(3, 20, N_ROWS).round(3)
    return make_table(cols)


def _write(table, folder: Path, name: str, **kw) -> Path:
    from smlmspine.io import write

    return write(table, folder / name, **kw)


def _rows_text(header: str, rows, sep: str) -> bytes:
    return (header + "\n" + "".join(sep.join(r) + "\n" for r in rows)).encode()


def _f(v) -> str:
    return repr(float(v))


def write_seeds(folder: Path) -> list[Seed]:
    """Write the valid seed files into ``folder``; return them with their content."""
    import h5py
    import scipy.io

    from smlmspine.io.minflux import write_abberior_npy

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(20261204)
    t3 = _table(rng)
    mf = _table(rng, minflux=True)
    seeds: list[Seed] = []

    def add(name, path, *, text=False, sidecars=()):
        path = Path(path)
        seeds.append(Seed(name, path.name, path.read_bytes(),
                          {Path(s).name: Path(s).read_bytes() for s in sidecars}, text))

    # The package's writers.
    add("parquet", _write(t3, folder, "locs.parquet"))
    add("arrow", _write(t3, folder, "locs.arrow"))
    add("smlm", _write(t3, folder, "locs.smlm"))
    add("thunderstorm_csv", _write(t3, folder, "locs.csv"), text=True)
    p = _write(t3, folder, "picasso_locs.hdf5", pixel_size_nm=107.0)
    add("picasso_hdf5", p, sidecars=[p.with_suffix(".yaml")])
    for ext, version in ((".npy", "m2205"), (".json", "m2205"), (".mat", "m2205")):
        p = write_abberior_npy(mf, folder / f"minflux_{version}{ext}")
        add(f"minflux_{version}{ext[1:]}", p, text=ext == ".json")
    p = write_abberior_npy(mf, folder / "minflux_flat.npy", version="m2410")
    add("minflux_m2410npy", p)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("minflux.npy", (folder / "minflux_m2205.npy").read_bytes())
    (folder / "minflux.npy.zip").write_bytes(buf.getvalue())
    add("minflux_npyzip", folder / "minflux.npy.zip")

    x, y, z = (t3.column(c).to_numpy() for c in ("x", "y", "z"))
    frame = t3.column("frame").to_numpy()
    ph = t3.column("photons").to_numpy()

    # DECODE HDF5 (nm variant).
    p = folder / "emitters.h5"
    with h5py.File(p, "w") as f:
        f.create_group("meta").attrs["xy_unit"] = "nm"
        f.create_group("decode").attrs["version"] = "v0.10.0"
        g = f.create_group("data")
        g.create_dataset("xyz", data=np.column_stack([x, y, z]).astype("f4"))
        g.create_dataset("phot", data=ph.astype("f4"))
        g.create_dataset("frame_ix", data=frame.astype("i8"))
    add("decode_h5", p)

    # SMAP _sml.mat, MATLAB v5 (scipy) and v7.3 (HDF5 with a MATLAB header block).
    loc = {"xnm": x, "ynm": y, "znm": z, "frame": frame.astype(float), "phot": ph}
    p = folder / "cell_sml.mat"
    scipy.io.savemat(p, {"saveloc": {"loc": {k: v.reshape(-1, 1) for k, v in loc.items()},
                                     "file": {"info": {"cam_pixelsize_um": np.array([0.1, 0.1])}}}})
    add("smap_v5", p)
    p = folder / "cell73_sml.mat"
    with h5py.File(p, "w", userblock_size=512) as f:
        s = f.create_group("saveloc")
        s.attrs["MATLAB_class"] = np.bytes_("struct")
        g = s.create_group("loc")
        g.attrs["MATLAB_class"] = np.bytes_("struct")
        for k, v in loc.items():
            g.create_dataset(k, data=np.asarray(v, float).reshape(1, -1)).attrs["MATLAB_class"] = np.bytes_("double")
    with open(p, "r+b") as fh:
        fh.write(b"MATLAB 7.3 MAT-file, Platform: GLNXA64, HDF5 schema 1.00 .".ljust(116, b" ")
                 + b"\x00" * 8 + b"\x00\x02" + b"IM")
    add("smap_v73", p)

    # Text formats without a writer, written here from their documented layouts.
    hdr = ('# <localizations insequence="true" repetitions="variable">'
           '<field identifier="Position-0-0" unit="nanometer" />'
           '<field identifier="Position-1-0" unit="nanometer" />'
           '<field identifier="Position-2-0" unit="nanometer" />'
           '<field identifier="ImageNumber-0-0" unit="frame" />'
           '<field identifier="Amplitude-0-0" unit="A/D count" /></localizations>')
    p = folder / "rapid.txt"
    p.write_bytes(_rows_text(hdr, [(_f(a), _f(b), _f(c), str(d), _f(e)) for a, b, c, d, e
                                   in zip(x, y, z, frame, ph)], " "))
    add("rapidstorm_txt", p, text=True)
    p = folder / "zeiss.txt"
    p.write_bytes(_rows_text("Index\tFirst Frame\tNumber Frames\tPosition X [nm]\tPosition Y [nm]\t"
                             "Position Z [nm]\tNumber Photons",
                             [(str(i + 1), str(d + 1), "1", _f(a), _f(b), _f(c), _f(e))
                              for i, (a, b, c, d, e) in enumerate(zip(x, y, z, frame, ph))], "\t"))
    add("zeiss_txt", p, text=True)
    p = folder / "oni.csv"
    p.write_bytes(_rows_text("Channel,Frame,X (nm),Y (nm),Z (nm),Photons",
                             [("0", str(d), _f(a), _f(b), _f(c), _f(e))
                              for a, b, c, d, e in zip(x, y, z, frame, ph)], ","))
    add("oni_csv", p, text=True)
    p = folder / "nstorm.txt"
    p.write_bytes(_rows_text("Channel Name\tX\tY\tXc\tYc\tZc\tFrame\tPhotons",
                             [("647", _f(a + 1), _f(b + 1), _f(a), _f(b), _f(c), str(d + 1), _f(e))
                              for a, b, c, d, e in zip(x, y, z, frame, ph)], "\t"))
    add("nstorm_txt", p, text=True)
    return seeds


# ----------------------------------------------------------------------------- mutations
def _put(data, name: str, sidecars: dict | None = None):
    """A writer of ``data`` (bytes, or a function making them when the case runs)."""
    def write(folder: Path) -> Path:
        for sname, sdata in (sidecars or {}).items():
            (folder / sname).write_bytes(sdata)
        (folder / name).write_bytes(data() if callable(data) else data)
        return folder / name
    return write


def _case(seed, label, data, *, same_values=False, heavy=False, sidecars=None, filename=None):
    return Case(f"{seed.name}:{label}", seed,
                _put(data, filename or seed.filename, seed.sidecars if sidecars is None else sidecars),
                same_values=same_values, heavy=heavy)


def _zip(members: list[tuple[str, int, bytes, int, int]]) -> bytes:
    """A ZIP from (name, method, stored bytes, crc32, uncompressed size) members."""
    out, central = bytearray(), bytearray()
    for name, method, data, crc, usize in members:
        n = name.encode()
        offset = len(out)
        out += struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, method, 0, 0x21, crc, len(data), usize,
                           len(n), 0) + n + data
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, method, 0, 0x21, crc,
                               len(data), usize, len(n), 0, 0, 0, 0, 0, offset) + n
    eocd = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(members), len(members), len(central), len(out), 0)
    return bytes(out + central + eocd)


def _zip_bomb(member: str, n_bytes: int, extra: dict | None = None) -> bytes:
    """A ZIP whose ``member`` inflates to ``n_bytes`` zeros (~1000:1; made without inflating)."""
    chunk = bytes(1 << 20)
    co = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = co.compress(chunk) + co.flush(zlib.Z_FULL_FLUSH)
    stream = block * (n_bytes >> 20) + co.flush()
    crc = 0
    for _ in range(n_bytes >> 20):
        crc = zlib.crc32(chunk, crc)
    members = [(k, 0, v, zlib.crc32(v), len(v)) for k, v in (extra or {}).items()]
    return _zip(members + [(member, 8, stream, crc, (n_bytes >> 20) << 20)])


def _lying_zip(member: str, payload: bytes, declared: int, extra: dict | None = None) -> bytes:
    """A ZIP whose member's headers declare ``declared`` uncompressed bytes (stored)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for k, v in (extra or {}).items():
            zf.writestr(k, v)
        zf.writestr(member, payload)
    raw = bytearray(buf.getvalue())
    name = member.encode()
    # local header: sig PK\3\4, size fields at +18 (compressed) +22 (uncompressed)
    i = raw.find(b"PK\x03\x04")
    while i >= 0:
        n_len = struct.unpack_from("<H", raw, i + 26)[0]
        if raw[i + 30:i + 30 + n_len] == name:
            struct.pack_into("<I", raw, i + 22, min(declared, 0xFFFFFFFE))
        i = raw.find(b"PK\x03\x04", i + 4)
    j = raw.find(b"PK\x01\x02")
    while j >= 0:
        n_len = struct.unpack_from("<H", raw, j + 28)[0]
        if raw[j + 46:j + 46 + n_len] == name:
            struct.pack_into("<I", raw, j + 24, min(declared, 0xFFFFFFFE))
        j = raw.find(b"PK\x01\x02", j + 4)
    return bytes(raw)


def _npy_huge(data: bytes) -> bytes | None:
    """Rewrite the shape in a .npy header to 10^12 rows (same header length)."""
    if not data.startswith(b"\x93NUMPY"):
        return None
    hlen = struct.unpack_from("<H", data, 8)[0] if data[6] == 1 else struct.unpack_from("<I", data, 8)[0]
    start = 10 if data[6] == 1 else 12
    header = data[start:start + hlen].decode("latin-1")
    i = header.find("'shape': (")
    j = header.find(")", i)
    new = header[:i] + "'shape': (1000000000000,)" + header[j + 1:]
    new = new.rstrip("\n ")
    if len(new) + 1 > hlen:
        return None
    new = new.ljust(hlen - 1) + "\n"
    return data[:start] + new.encode("latin-1") + data[start + hlen:]


def _text_value_edits(seed: Seed):
    """(label, bytes) edits of the first data row's first number."""
    text = seed.data.decode("utf-8")
    lines = text.split("\n")
    k = 1 if seed.name != "minflux_m2205json" else None
    if k is None:
        # JSON: x of the final iteration of the first record (the one the reader uses)
        i = text.rfind('"loc": [', 0, text.find('{"itr": [', 2))
        if i < 0:
            return
        j = i + len('"loc": [')
        e = min(text.find(",", j), text.find("]", j))
        for label, tok in (("nan", "NaN"), ("inf", "Infinity"), ("null", "null"), ("string", '"x"'),
                           ("neg", "-1e300"), ("huge", "1e400")):
            yield label, (text[:j] + tok + text[e:]).encode()
        yield "tid string", text.replace('"tid": 0', '"tid": "zero"', 1).encode()
        yield "tid negative", text.replace('"tid": 0', '"tid": -5', 1).encode()
        return
    row = lines[k]
    import re

    m = list(re.finditer(r"-?\d+\.?\d*(?:e-?\d+)?", row))
    if not m:
        return
    # Edit the first coordinate-looking number (skip a leading integer index/channel column).
    target = next((t for t in m if "." in t.group()), m[0])
    for label, tok in (("nan", "nan"), ("inf", "inf"), ("-inf", "-Infinity"), ("empty", ""),
                       ("string", "abc"), ("neg", "-1e300"), ("huge", "1e400"), ("comma-dec", target.group().replace(".", ","))):
        lines_m = list(lines)
        lines_m[k] = row[:target.start()] + tok + row[target.end():]
        yield label, "\n".join(lines_m).encode()
    # negative values in integer-looking fields (frame / index / channel)
    ints = [t for t in m if "." not in t.group()]
    if ints:
        t = ints[-1] if len(ints) > 1 else ints[0]
        lines_m = list(lines)
        lines_m[k] = row[:t.start()] + "-" + t.group() + row[t.end():]
        yield "neg int", "\n".join(lines_m).encode()
        lines_m[k] = row[:t.start()] + "99999999999999999999999" + row[t.end():]
        yield "int overflow", "\n".join(lines_m).encode()


def cases(seeds: list[Seed], *, rng: np.random.Generator, n_flips: int, heavy_bytes: int,
          n_meta_flips: int = 12):
    """All mutation cases of ``seeds``.

    ``n_flips`` random single-bit-flip files and as many random byte overwrites per seed,
    ``n_meta_flips`` more bit flips in the metadata region of HDF5 seeds;
    ``heavy_bytes``: inflated size of the zip bombs.
    """
    out: list[Case] = []
    for s in seeds:
        d = s.data
        n = len(d)
        # Truncations (the reads that still succeed must not have changed values).
        for frac in (0.0, 0.02, 0.25, 0.5, 0.75, 0.98):
            k = int(n * frac)
            out.append(_case(s, f"truncate {k}/{n}", d[:k], same_values=True))
        out.append(_case(s, f"truncate {n - 1}/{n}", d[:-1], same_values=s.text))
        # Random bit flips and byte overwrites.
        for i in range(n_flips):
            pos = int(rng.integers(n))
            b = bytearray(d)
            b[pos] ^= 1 << int(rng.integers(8))
            out.append(_case(s, f"bitflip@{pos}", bytes(b)))
        for i in range(n_flips):
            b = bytearray(d)
            pos = int(rng.integers(n))
            k = int(rng.integers(1, 9))
            b[pos:pos + k] = bytes(rng.choice([0x00, 0xFF, 0x7F, 0x80, 0x22, 0x0A, 0x2C, 0x2E], k).astype(np.uint8))
            out.append(_case(s, f"overwrite@{pos}+{k}", bytes(b)))
        # Duplicated / appended garbage, swapped halves.
        out.append(_case(s, "appended garbage", d + bytes(rng.integers(0, 256, 300).astype(np.uint8))))
        out.append(_case(s, "zeroed tail half", d[:n // 2] + bytes(n - n // 2)))
        # Sidecars: missing, empty, YAML alias bomb.
        for sname in s.sidecars:
            out.append(_case(s, f"no sidecar {sname}", d,
                             sidecars={k: v for k, v in s.sidecars.items() if k != sname}))
            out.append(_case(s, f"empty sidecar {sname}", d, sidecars={**s.sidecars, sname: b""}))
            bomb = "a: &a [" + ",".join(["x"] * 10) + "]\n"
            for i in range(1, 12):
                bomb += f"{chr(97 + i)}: &{chr(97 + i)} [" + ",".join([f"*{chr(96 + i)}"] * 10) + "]\n"
            out.append(_case(s, "yaml alias bomb", d, sidecars={**s.sidecars, sname: bomb.encode()},
                             heavy=True))
            out.append(_case(s, "yaml python tag", d, sidecars={**s.sidecars, sname:
                             b"!!python/object/apply:os.system ['echo fuzz-ran > fuzz_ran.txt']\n"}))
            out.append(_case(s, "yaml wrong types", d, sidecars={**s.sidecars, sname:
                             b"Pixelsize: [1, 2]\nWidth: -5\nHeight: abc\n"}))
            for val in (b"0", b"-107", b".nan", b".inf", b"1e308", b"'107'"):
                out.append(_case(s, f"yaml Pixelsize {val.decode()}", d,
                                 sidecars={**s.sidecars, sname: b"Pixelsize: " + val + b"\n"}))
        if s.text:
            text = d.decode("utf-8")
            out.append(_case(s, "utf-16", text.encode("utf-16"), same_values=True))
            out.append(_case(s, "utf-16-le no BOM", text.encode("utf-16-le"), same_values=True))
            out.append(_case(s, "utf-8 BOM", b"\xef\xbb\xbf" + d, same_values=True))
            out.append(_case(s, "latin-1 header", text.replace("n", "\u00f1", 1).encode("latin-1"),
                             same_values=True))
            out.append(_case(s, "crlf", text.replace("\n", "\r\n").encode(), same_values=True))
            out.append(_case(s, "cr only", text.replace("\n", "\r").encode(), same_values=True))
            out.append(_case(s, "nul bytes", d.replace(b"\n", b"\n\x00", 2), same_values=True))
            first_line = text.split("\n", 1)[0]
            out.append(_case(s, "header only", (first_line + "\n").encode()))
            out.append(_case(s, "header without newline", first_line.encode()))
            out.append(_case(s, "huge line", lambda d=d: d + b"1" * (heavy_bytes // 8) + b"\n", heavy=True))
            out.append(_case(s, "many columns", (first_line + "," * 200000 + "\n").encode() + d, heavy=True))
            for label, data in _text_value_edits(s):
                out.append(_case(s, label, data))
        if d.startswith(b"\x93NUMPY"):
            huge = _npy_huge(d)
            if huge is not None:
                out.append(_case(s, "npy declares 1e12 rows", huge, heavy=True))
            arr = np.load(io.BytesIO(d), allow_pickle=False)
            for field_name, value in (("itr", 2 ** 30), ("tid", -(2 ** 31)), ("tim", np.inf)):
                if field_name in (arr.dtype.names or ()) and arr.dtype[field_name].shape == ():
                    edited = arr.copy()
                    kind = edited.dtype[field_name].kind
                    if kind == "u" and value < 0:
                        value = np.iinfo(edited.dtype[field_name]).max
                    edited[field_name][0] = value
                    buf = io.BytesIO()
                    np.save(buf, edited, allow_pickle=False)
                    out.append(_case(s, f"npy {field_name}[0] = {value}", buf.getvalue(), heavy=True))
        if d.startswith(b"PK"):
            member = {"smlm": "table0.bin"}.get(s.name.split("_")[0], "minflux.npy")
            with zipfile.ZipFile(io.BytesIO(d)) as zf:
                names = zf.namelist()
                extra = {k: zf.read(k) for k in names if not k.endswith((".bin", ".npy"))}
                payload_name = next((k for k in names if k.endswith((".bin", ".npy"))), member)
                payload = zf.read(payload_name)
            out.append(_case(s, "zip bomb", _zip_bomb(payload_name, heavy_bytes, extra), heavy=True))
            out.append(_case(s, "zip declared 4 GB", _lying_zip(payload_name, payload, 0xFFFFFFF0, extra),
                             heavy=True))
            crc_bad = bytearray(d)
            at = d.find(b"PK\x03\x04" if payload_name == names[0] else payload_name.encode())
            mid = at + 60 + (len(d) - at) // 8
            crc_bad[mid] ^= 0x55
            out.append(_case(s, "zip member data corrupted (CRC)", bytes(crc_bad)))
            out.append(_case(s, "zip member missing",
                             _lying_zip("other.dat", payload, len(payload), extra)))
            if "manifest.json" in extra:
                man = json.loads(extra["manifest.json"])
                for label, edit in _manifest_edits(man):
                    out.append(_case(s, f"manifest {label}",
                                     _lying_zip(payload_name, payload, len(payload),
                                                {**extra, "manifest.json": json.dumps(edit).encode()}),
                                     heavy=label.startswith("rows")))
        if s.name.endswith(("h5", "hdf5", "v73")):
            out.extend(_hdf5_cases(s, rng))
            # Bit flips in the metadata region (superblock, object headers, heaps: the first
            # ~2.4 kB of these small files), where libhdf5 itself has to cope.
            for i in range(n_meta_flips):
                pos = int(rng.integers(min(n, 2400)))
                b = bytearray(d)
                b[pos] ^= 1 << int(rng.integers(8))
                out.append(_case(s, f"hdf5 metadata bitflip@{pos}", bytes(b)))
            if s.name == "decode_h5":
                # found by an exhaustive single-bit scan: libhdf5 loops (> 2 min) reading
                # 'meta' attributes of this damaged file (h5py 3.16 / HDF5 2.0 layout of the
                # seed); refused by the readers' probe process after its time limit
                for pos, bit in ((2072, 1), (2073, 0), (2096, 3)):
                    b = bytearray(d)
                    b[pos] ^= 1 << bit
                    out.append(_case(s, f"hdf5 flip {pos}.{bit} (attribute loop)", bytes(b)))
        if s.name == "minflux_m2205mat":
            # byte 297 bit 3: a miMATRIX element's length grows from 288 to 2336 bytes, still
            # inside the file; scipy's MAT reader segfaults on it (caught by the probe process)
            b = bytearray(d)
            b[297] ^= 1 << 3
            out.append(_case(s, "mat flip 297.3 (scipy segfault)", bytes(b)))
    out.extend(_generic_cases(seeds))
    return out


def _manifest_edits(man):
    import copy

    def edit(fn):
        m = copy.deepcopy(man)
        fn(m)
        return m

    f0 = lambda m: m["files"][0]  # noqa: E731
    fmt0 = lambda m: next(iter(m["formats"].values()))  # noqa: E731
    yield "rows 1e12", edit(lambda m: f0(m).__setitem__("rows", 10 ** 12))
    yield "rows -1", edit(lambda m: f0(m).__setitem__("rows", -1))
    yield "rows string", edit(lambda m: f0(m).__setitem__("rows", "many"))
    yield "no files", edit(lambda m: m.__setitem__("files", []))
    yield "files not a list", edit(lambda m: m.__setitem__("files", {"a": 1}))
    yield "dtype object", edit(lambda m: fmt0(m).__setitem__("dtype", ["object"] * len(fmt0(m)["dtype"])))
    yield "dtype bogus", edit(lambda m: fmt0(m).__setitem__("dtype", ["float128x"] * len(fmt0(m)["dtype"])))
    yield "shape huge", edit(lambda m: fmt0(m).__setitem__("shape", [10 ** 9] * len(fmt0(m)["shape"])))
    yield "headers short", edit(lambda m: fmt0(m).__setitem__("headers", fmt0(m)["headers"][:1]))
    yield "units km", edit(lambda m: fmt0(m).__setitem__("units", ["km"] * len(fmt0(m)["units"])))
    yield "units missing", edit(lambda m: fmt0(m).pop("units"))
    yield "mode text", edit(lambda m: fmt0(m).__setitem__("mode", "text"))
    yield "offset nan", edit(lambda m: f0(m).__setitem__("offset", {"x": float("nan")}))
    yield "top-level list", [man]


def _hdf5_cases(s: Seed, rng):
    """Datasets of the wrong type/shape/values inside a valid HDF5 container."""
    import tempfile

    import h5py

    out = []
    edits = {
        "nan coordinates": lambda ds: ds.__setitem__(Ellipsis, np.nan),
        "inf coordinates": lambda ds: ds.__setitem__(Ellipsis, np.inf),
        "negative coordinates": lambda ds: ds.__setitem__(Ellipsis, -1e300),
    }
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / s.filename
        src.write_bytes(s.data)
        with h5py.File(src, "r") as f:
            coord = []
            f.visititems(lambda name, obj: coord.append(name) if isinstance(obj, h5py.Dataset)
                         and obj.dtype.kind in "fV" and obj.size > 1 else None)
        for label, fn in edits.items():
            for target in coord[:2]:
                p = Path(tmp) / f"e_{len(out)}"
                p.write_bytes(s.data)
                with h5py.File(p, "r+") as f, warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)   # -1e300 into float32
                    ds = f[target]
                    if ds.dtype.kind == "V":
                        arr = ds[()]
                        for name in arr.dtype.names[:3]:
                            if arr.dtype[name].kind == "f":
                                arr[name] = {"nan coordinates": np.nan, "inf coordinates": np.inf,
                                             "negative coordinates": -1e300}[label]
                        ds[...] = arr
                    else:
                        fn(ds)
                out.append(_case(s, f"hdf5 {label} in {target}", p.read_bytes()))
        # A declared size of 10^10 rows whose chunks were never written (a few kB file).
        for target in coord[:2]:
            p = Path(tmp) / f"e_{len(out)}"
            p.write_bytes(s.data)
            with h5py.File(p, "r+") as f:
                old = f[target]
                shape, dtype = old.shape, old.dtype
                del f[target]
                big = (10 ** 10,) + shape[1:] if shape[0] >= shape[-1] else shape[:-1] + (10 ** 10,)
                f.create_dataset(target, shape=big, dtype=dtype, chunks=True)
            out.append(_case(s, f"hdf5 {target} declares 1e10 rows", p.read_bytes(), heavy=True))
        # Wrong type: replace the dataset by a string / empty / 3-D array.
        for kind, value in (("string", np.bytes_("not numbers")), ("empty", np.zeros((0,))),
                            ("3d", np.zeros((2, 2, 2))), ("int", np.arange(3))):
            for target in coord[:1]:
                p = Path(tmp) / f"e_{len(out)}"
                p.write_bytes(s.data)
                with h5py.File(p, "r+") as f:
                    del f[target]
                    f.create_dataset(target, data=value)
                out.append(_case(s, f"hdf5 {target} as {kind}", p.read_bytes()))
    return out


def _generic_cases(seeds):
    """Files that belong to no seed: empty, zero-row tables, random bytes, a directory name."""
    from smlmspine.schema import make_table

    base = Seed("misc", "misc.bin", b"")
    out = []
    for name in ("empty.csv", "empty.parquet", "empty.npy", "empty.smlm", "empty.hdf5", "empty.txt",
                 "empty.mat", "empty.json", "empty.npy.zip"):
        out.append(_case(base, f"empty file {name}", b"", sidecars={}, filename=name))
    for ext in ("parquet", "arrow", "csv"):
        t = make_table({"x": np.zeros(0), "y": np.zeros(0)})
        buf = io.BytesIO()
        if ext == "parquet":
            import pyarrow.parquet as pq
            pq.write_table(t, buf)
        elif ext == "arrow":
            import pyarrow.feather as feather
            feather.write_feather(t, buf)
        else:
            buf.write(b'"x [nm]","y [nm]"\n')
        out.append(_case(base, f"zero rows .{ext}", buf.getvalue(), sidecars={}, filename=f"zero.{ext}"))
    rng = np.random.default_rng(7)
    for ext in ("csv", "txt", "npy", "parquet", "h5", "json"):
        out.append(_case(base, f"random bytes .{ext}", bytes(rng.integers(0, 256, 2000).astype(np.uint8)),
                         sidecars={}, filename=f"random.{ext}"))
    # Wrong types in Parquet/Arrow: coordinates as strings, as lists, as int with km units.
    import pyarrow as pa
    import pyarrow.parquet as pq

    for label, table in (
        ("x as strings", pa.table({"x": pa.array(["1", "2"]), "y": pa.array([1.0, 2.0])})),
        ("x as lists", pa.table({"x": pa.array([[1.0], [2.0]]), "y": pa.array([1.0, 2.0])})),
        ("x nan", make_table({"x": np.array([np.nan, 1.0]), "y": np.array([1.0, 2.0])})),
        ("x inf", pa.table({"x": pa.array([np.inf, 1.0]), "y": pa.array([1.0, 2.0])},
                           metadata={b"smlmspine.schema": b"1"})),
        ("frame negative", make_table({"x": np.array([0.0, 1.0]), "y": np.array([1.0, 2.0]),
                                       "frame": np.array([-5, 1])})),
    ):
        buf = io.BytesIO()
        pq.write_table(table, buf)
        out.append(_case(base, f"parquet {label}", buf.getvalue(), sidecars={}, filename="typed.parquet"))
    # A .npy of object dtype (pickled objects; must not be unpickled).
    buf = io.BytesIO()
    np.save(buf, np.array([{"tid": 1, "itr": None}], dtype=object), allow_pickle=True)
    out.append(_case(base, "npy object array", buf.getvalue(), sidecars={}, filename="obj.npy"))
    # Deeply nested JSON.
    out.append(_case(base, "json nested 1e5", b'{"tid": 1, "itr": ' + b"[" * 100000 + b"]" * 100000 + b"}",
                     sidecars={}, filename="deep.json", heavy=True))
    # A zlib bomb inside Parquet is covered by the zip bombs; a gzip-compressed CSV:
    out.append(_case(base, "gzip csv", zlib.compress(seeds[0].data), sidecars={}, filename="g.csv"))
    return out
