"""Small MINFLUX exports built straight from the documented dtypes (shared by the tests)."""

from pathlib import Path

import numpy as np

from smlmspine.io.minflux import FLAT_DTYPE, NESTED_ITR_DTYPE, NESTED_TOP_FIELDS

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "minflux"


def nested_array(positions_m, tid, tim, vld, *, n_itr=4, itr_dtype=NESTED_ITR_DTYPE,
                 top_fields=NESTED_TOP_FIELDS):
    """Nested (m2205) records; positions_m (N, n_itr, 3) in metres, NaN where not measured."""
    positions_m = np.asarray(positions_m, dtype=float)
    n = positions_m.shape[0]
    dtype = np.dtype([("itr", itr_dtype, (n_itr,))] + [f for f in top_fields])
    a = np.zeros(n, dtype=dtype)
    a["itr"]["itr"] = np.arange(n_itr)
    a["itr"]["loc"] = positions_m
    names = itr_dtype.names
    if "efo" in names:
        a["itr"]["efo"] = 1e4 * (1 + np.arange(n_itr))[None, :] + np.arange(n)[:, None]
    if "eco" in names:
        a["itr"]["eco"] = 10 * (1 + np.arange(n_itr))[None, :] + np.arange(n)[:, None]
    if "cfr" in names:
        cfr = np.full((n, n_itr), -3.0517578125e-05)
        cfr[:, 1] = 0.1 + 0.1 * np.arange(n)  # measured in iteration 1 only
        a["itr"]["cfr"] = cfr
    if "efc" in names:  # NaN/-inf where no centre-frequency check was made
        efc = np.full((n, n_itr), -np.inf)
        efc[:, 0] = np.nan
        efc[:, 1] = 5000.0
        a["itr"]["efc"] = efc
    if "dcr" in names:
        a["itr"]["dcr"] = 0.3 + 0.01 * np.arange(n)[:, None]
    a["tid"] = tid
    a["tim"] = tim
    a["vld"] = vld
    return a


def flat_array(groups):
    """Flat (m2410) records from a list of (tid, vld, [(itr, loc_m (3,), cfr), ...])."""
    rows = []
    for tid, vld, its in groups:
        for k, (itr, loc, cfr) in enumerate(its):
            rows.append((tid, vld, k == len(its) - 1, itr, loc, cfr))
    a = np.zeros(len(rows), dtype=FLAT_DTYPE)
    for i, (tid, vld, fnl, itr, loc, cfr) in enumerate(rows):
        a[i]["tid"] = tid
        a[i]["vld"] = vld
        a[i]["fnl"] = fnl
        a[i]["itr"] = itr
        a[i]["loc"] = loc
        a[i]["lnc"] = loc
        a[i]["cfr"] = cfr
        a[i]["efc"] = 1000.0 * (i + 1) * cfr if cfr > 0 else -np.inf
        a[i]["efo"] = 1000.0 * (i + 1)
        a[i]["eco"] = 10 * (i + 1)
        a[i]["dcr"] = (0.25 + 0.01 * i, 0.75 - 0.01 * i)
        a[i]["tim"] = 0.5 * i
    return a
