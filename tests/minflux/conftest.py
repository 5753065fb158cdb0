"""Fixtures for the MINFLUX tests."""

import zipfile

import pytest
from minflux_samples import SHARED


@pytest.fixture(scope="session")
def real_minflux(tmp_path_factory):
    """Paths of the two real Abberior exports, unzipped into a temporary folder."""
    files = {"2D": SHARED / "2D_ValidOnly.npy.zip", "3D": SHARED / "3D_ValidOnly.npy.zip"}
    missing = [str(p) for p in files.values() if not p.exists()]
    if missing:
        pytest.skip(f"real MINFLUX data not available (looked for {missing}; they live in "
                    "../shared/data/minflux beside the repository)")
    out = tmp_path_factory.mktemp("minflux_real")
    paths = {}
    for key, z in files.items():
        with zipfile.ZipFile(z) as zf:
            member = [m for m in zf.namelist() if m.endswith(".npy")][0]
            zf.extract(member, out)
            paths[key] = out / member
    return paths
