"""Public API of smlmspine.cluster: exported names resolve, heavy imports stay lazy."""

from __future__ import annotations

import subprocess
import sys

import smlmspine.cluster as cluster


def test_all_names_resolve():
    assert sorted(cluster.__all__) == sorted(
        ["dbscan", "hdbscan", "cluster_statistics", "CLUSTER_COLUMNS"])
    for name in cluster.__all__:
        assert getattr(cluster, name) is not None


def test_import_is_light():
    code = ("import sys, smlmspine.cluster; "
            "print(sorted(m for m in ('numba', 'hdbscan', 'sklearn', 'scipy.spatial', 'tqdm') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
