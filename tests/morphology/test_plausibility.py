"""No impossible numbers: implausible features become NaN with the reason, EM-range flags."""

import math

import numpy as np
import pyarrow.compute as pc
import pytest

from smlmspine.morphology import (EM_RANGES, PLAUSIBILITY_RULES, NeckFit, check_plausibility,
                                  features_table, measure_spine, quality_columns)
from smlmspine.morphology._ringfit import fit_ring
from smlmspine.testing import analytic_spine


def _good():
    """Features of a plausible thin spine (the measured analytic spine, r 50, L 500, R 250)."""
    return measure_spine(analytic_spine(50.0, 500.0, 250.0, sections=64),
                         base_point_nm=[0, 0, 0]).to_dict()


@pytest.fixture(scope="module")
def good():
    return _good()


def test_a_plausible_spine_passes_every_rule(good):
    out, why = check_plausibility({**good, "neck_fit_diameter_nm": 102.0,
                                   "neck_fit_diameter_err_nm": 3.0}, precision_nm=12.0)
    assert why == []
    assert out["neck_min_diameter_nm"] == good["neck_min_diameter_nm"]
    assert quality_columns(why) == {"quality": "ok", "quality_reason": "", "trustworthy": True}


@pytest.mark.parametrize("fit_nm", [0.1, 4.0, 19.0])
def test_neck_fits_below_two_membranes_are_nan(good, fit_nm):
    """The issue's point-based fits of 0.1 and 4.0 nm: no membrane can be that narrow."""
    out, why = check_plausibility({**good, "neck_fit_diameter_nm": fit_nm,
                                   "neck_fit_diameter_err_nm": 0.5})
    assert why == ["neck_fit_below_resolution"]
    assert math.isnan(out["neck_fit_diameter_nm"]) and math.isnan(out["neck_fit_diameter_err_nm"])
    assert out["neck_min_diameter_nm"] == good["neck_min_diameter_nm"]   # the mesh neck stays


def test_resolution_limit_is_half_the_precision_when_that_is_larger(good):
    f = {**good, "neck_fit_diameter_nm": 25.0, "neck_fit_diameter_err_nm": 2.0}
    assert "neck_fit_below_resolution" not in check_plausibility(f, precision_nm=12.0)[1]
    out, why = check_plausibility(f, precision_nm=60.0)          # 25 < 60 / 2
    assert "neck_fit_below_resolution" in why and math.isnan(out["neck_fit_diameter_nm"])


def test_mesh_neck_below_twenty_nm_is_nan():
    """A measured 16 nm neck (analytic spine, r = 8 nm) cannot be a spine's."""
    m = measure_spine(analytic_spine(8.0, 400.0, 250.0, sections=64), base_point_nm=[0, 0, 0],
                      step_nm=5.0)
    assert m.neck_min_diameter_nm == pytest.approx(16.0, rel=0.05)
    t = features_table([m])
    row = t.to_pylist()[0]
    assert math.isnan(row["neck_min_diameter_nm"]) and math.isnan(row["head_neck_ratio"])
    assert row["quality_reason"].split("; ")[0] == "neck_below_resolution"
    assert row["quality"] == "flagged" and row["trustworthy"] is False
    assert row["head_diameter_nm"] == pytest.approx(500.0, rel=0.02)   # other features stay


def test_neck_wider_than_head(good):
    out, why = check_plausibility({**good, "neck_min_diameter_nm": good["head_diameter_nm"] * 1.1})
    assert "neck_wider_than_head" in why
    assert math.isnan(out["neck_min_diameter_nm"]) and math.isnan(out["head_neck_ratio"])
    out, why = check_plausibility({**good, "neck_fit_diameter_nm": good["head_diameter_nm"] + 5,
                                   "neck_fit_diameter_err_nm": 5.0})
    assert "neck_fit_wider_than_head" in why and math.isnan(out["neck_fit_diameter_nm"])


def test_neck_longer_than_spine(good):
    out, why = check_plausibility({**good, "neck_length_nm": good["length_nm"] + 1.0})
    assert why == ["neck_length_above_length"] and math.isnan(out["neck_length_nm"])


def test_head_volume_above_spine_volume(good):
    out, why = check_plausibility({**good, "head_volume_um3": good["volume_um3"] * 1.5})
    assert why == ["head_volume_above_volume"] and math.isnan(out["head_volume_um3"])
    assert out["volume_um3"] == good["volume_um3"]


def test_surface_below_the_isoperimetric_bound(good):
    v = good["volume_um3"]
    sphere = (36 * math.pi * v ** 2) ** (1 / 3)
    # the measured spine: surface (without its base section) + base area > the bound
    assert good["surface_area_um2"] + good["base_area_nm2"] * 1e-6 > sphere
    out, why = check_plausibility({**good, "surface_area_um2": 0.9 * sphere, "base_area_nm2": 0.0})
    assert why == ["surface_below_isoperimetric"]
    assert math.isnan(out["surface_area_um2"]) and math.isnan(out["volume_um3"])


def test_inside_out_mesh_has_no_volume():
    mesh = analytic_spine(50.0, 400.0, 250.0, sections=64)
    mesh.invert()
    row = features_table([measure_spine(mesh, base_point_nm=[0, 0, 0])]).to_pylist()[0]
    assert "volume_not_positive" in row["quality_reason"].split("; ")
    assert all(math.isnan(row[k]) for k in ("volume_um3", "head_volume_um3", "convex_hull_ratio"))


def test_uncertain_and_unconverged_fits(good):
    out, why = check_plausibility({**good, "neck_fit_diameter_nm": 100.0,
                                   "neck_fit_diameter_err_nm": 60.0})
    assert why == ["neck_fit_uncertain"] and math.isnan(out["neck_fit_diameter_nm"])
    out, why = check_plausibility({**good, "neck_fit_diameter_nm": 100.0,
                                   "neck_fit_diameter_err_nm": math.nan})
    assert why == ["neck_fit_uncertain"]
    out, why = check_plausibility({**good, "neck_fit_diameter_nm": 100.0,
                                   "neck_fit_diameter_err_nm": 30.0})
    assert why == ["neck_fit_imprecise"] and out["neck_fit_diameter_nm"] == 100.0   # kept
    out, why = check_plausibility({**good, "neck_fit_diameter_nm": 100.0,
                                   "neck_fit_diameter_err_nm": 2.0}, neck_fit_converged=False)
    assert why == ["neck_fit_not_converged"] and math.isnan(out["neck_fit_diameter_nm"])


def test_outside_the_em_ranges_is_flagged_not_nan(good):
    f = {**good, "neck_min_diameter_nm": 700.0, "head_diameter_nm": 900.0, "length_nm": 3500.0,
         "neck_length_nm": 400.0}
    out, why = check_plausibility(f)
    assert why == ["neck_outside_em_range", "length_outside_em_range"]
    assert out["neck_min_diameter_nm"] == 700.0 and out["length_nm"] == 3500.0
    # a filopodium may be longer than 3 um
    assert "length_outside_em_range" not in check_plausibility({**f, "spine_class": "filopodium"})[1]
    # a stubby spine has no neck: its narrowest section above 600 nm is not flagged ...
    assert "neck_outside_em_range" not in check_plausibility({**f, "spine_class": "stubby"})[1]
    # ... but below 30 nm it is, and a mushroom's 700 nm neck is
    assert "neck_outside_em_range" in check_plausibility(
        {**good, "neck_min_diameter_nm": 25.0, "spine_class": "stubby"})[1]
    assert "neck_outside_em_range" in check_plausibility({**f, "spine_class": "mushroom"})[1]
    lo, hi = EM_RANGES["volume_um3"]
    assert check_plausibility({**good, "volume_um3": 2 * hi, "head_volume_um3": hi,
                               "surface_area_um2": 100.0})[1] == ["volume_outside_em_range"]


def test_every_rule_is_documented():
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "morphology.md").read_text()
    for name, action, _, _ in PLAUSIBILITY_RULES:
        assert f"`{name}`" in doc, name
        assert action in ("nan", "flag")


def test_features_table_marks_untrustworthy_spines_and_filters_in_one_expression():
    meas = [measure_spine(analytic_spine(r, 500.0, 250.0, sections=64), base_point_nm=[0, 0, 0])
            for r in (50.0, 60.0, 70.0)]
    fits = [NeckFit(4.0, 0.3, 12.0, 500, "membrane", True),           # the 4.0 nm
            NeckFit(121.0, 2.0, 12.0, 500, "membrane", True),
            None]
    t = features_table(meas, neck_fits=fits, precision_nm=12.0)
    rows = t.to_pylist()
    assert math.isnan(rows[0]["neck_fit_diameter_nm"])
    assert rows[0]["quality_reason"] == "neck_fit_below_resolution"
    assert rows[1]["neck_fit_diameter_nm"] == 121.0 and rows[1]["quality"] == "ok"
    assert rows[2]["trustworthy"] is True
    kept = t.filter(pc.field("trustworthy"))
    assert kept.num_rows == 2
    assert np.all(np.isfinite(kept.column("neck_min_diameter_nm").to_numpy()))
    df = t.to_pandas()
    assert len(df[df.trustworthy]) == 2


def test_ring_fit_uncertainty_matches_the_scatter_of_repeated_fits():
    """fit_ring(with_error=True): the BFGS inverse-Hessian error of the radius within 35 %
    of the standard deviation over 30 independent samples (400 points, sigma 12/30 nm)."""
    radii, errs = [], []
    for seed in range(30):
        rng = np.random.default_rng(seed)
        phi = rng.uniform(0, 2 * np.pi, 400)
        uv = 50.0 * np.c_[np.cos(phi), np.sin(phi)] + rng.normal(0, 1, (400, 2)) * [12.0, 30.0]
        r, _, _, _, err = fit_ring(uv, sigma_u_nm=12.0, sigma_v_nm=30.0, r_max_nm=150.0,
                                   radius0_nm=70.0, with_error=True)
        radii.append(r)
        errs.append(err)
    assert np.median(errs) == pytest.approx(np.std(radii), rel=0.35)


def test_features_table_refuses_mismatched_lengths():
    import trimesh

    from smlmspine.errors import ParameterError
    from smlmspine.morphology import features_table, measure_spine

    m = measure_spine(trimesh.creation.cylinder(radius=100.0, height=600.0, sections=32),
                      base_point_nm=[0, 0, -300])
    for kw in ({"sources": ["a", "b"]}, {"spine_ids": []}, {"neck_fits": [None, None]},
               {"classes": ["thin", "thin"]}):
        with pytest.raises(ParameterError, match=f"{next(iter(kw))} has"):
            features_table([m], **kw)
