"""Plausibility of spine features: no impossible numbers, flags outside the EM ranges.

Every feature of a spine is checked against what the data can resolve and what a spine
can be. A value that cannot be (a neck narrower than two membranes and a lumen or than
the localizations resolve, a neck wider than the head, a neck longer than the spine, a
head larger than the spine, a surface smaller than a sphere's of the same volume, a fit
whose uncertainty is as large as the value) becomes NaN with the rule's name in the
spine's ``quality_reason``; a value that can be but lies outside the range measured by
electron microscopy is kept and flagged. ``quality`` is ``"ok"`` when no rule fired,
else ``"flagged"``; ``trustworthy`` is ``quality == "ok"``. The rule table is
:data:`PLAUSIBILITY_RULES` (``docs/morphology.md``).
"""

from __future__ import annotations

import math
from typing import Mapping

__all__ = ["check_plausibility", "quality_columns", "PLAUSIBILITY_RULES", "EM_RANGES",
           "MEMBRANE_LIMIT_NM"]

#: Narrowest neck a spine can have (nm): two membranes (~2 x 5 nm) and a lumen.
MEMBRANE_LIMIT_NM = 20.0

#: Ranges of electron-microscopy measurements of spines (outside them: flagged, kept).
#: Neck diameters ~30-600 nm (medians 100-200 nm), volumes ~0.003-0.8 um^3, lengths
#: ~0.2-3 um (filopodia longer: not flagged above the range).
EM_RANGES = {"neck_diameter_nm": (30.0, 600.0), "volume_um3": (0.003, 0.8),
             "length_nm": (200.0, 3000.0)}

#: Relative standard error of the point-based neck fit above which it is NaN / flagged.
FIT_REL_ERR_NAN = 0.5
FIT_REL_ERR_FLAG = 0.25

_NECK = ("neck_min_diameter_nm", "neck_mean_diameter_nm", "head_neck_ratio")
_FIT = ("neck_fit_diameter_nm", "neck_fit_diameter_err_nm")

#: (reason, action, columns set to NaN, rule). Action "nan": impossible, the columns
#: become NaN; "flag": possible but outside the EM range (or imprecise), values kept.
PLAUSIBILITY_RULES = (
    ("neck_below_resolution", "nan", _NECK,
     "mesh neck minimum < max(20 nm, precision/2): narrower than two membranes and a lumen, "
     "or than the localizations resolve"),
    ("neck_fit_below_resolution", "nan", _FIT,
     "point-based neck fit < max(20 nm, precision/2)"),
    ("neck_fit_not_converged", "nan", _FIT, "the neck fit's optimiser did not converge"),
    ("neck_fit_uncertain", "nan", _FIT,
     "neck fit standard error > 50 % of the diameter, or not finite"),
    ("neck_fit_wider_than_head", "nan", _FIT, "neck fit > head diameter"),
    ("neck_wider_than_head", "nan", _NECK, "mesh neck minimum > head diameter"),
    ("neck_length_above_length", "nan", ("neck_length_nm",), "neck length > spine length"),
    ("volume_not_positive", "nan", ("volume_um3", "head_volume_um3", "convex_hull_ratio"),
     "volume <= 0 (an inside-out or degenerate mesh)"),
    ("surface_below_isoperimetric", "nan", ("surface_area_um2", "volume_um3"),
     "surface area + base area < that of a sphere of the same volume, (36 pi V^2)^(1/3)"),
    ("head_volume_above_volume", "nan", ("head_volume_um3",), "head volume > spine volume"),
    ("convex_hull_ratio_above_one", "nan", ("convex_hull_ratio",),
     "volume / convex hull volume > 1"),
    ("neck_outside_em_range", "flag", (),
     "mesh neck minimum outside 30-600 nm (above 600 nm not flagged for a stubby spine: it "
     "has no neck, its narrowest section is not one)"),
    ("neck_fit_outside_em_range", "flag", (), "neck fit outside 30-600 nm"),
    ("neck_fit_imprecise", "flag", (), "neck fit standard error 25-50 % of the diameter"),
    ("volume_outside_em_range", "flag", (), "volume outside 0.003-0.8 um^3"),
    ("length_outside_em_range", "flag", (),
     "length outside 0.2-3 um (above 3 um not flagged for a filopodium)"),
)
_COLUMNS = {name: cols for name, _, cols, _ in PLAUSIBILITY_RULES}


def _num(features: Mapping, key: str) -> float:
    v = features.get(key, math.nan)
    try:
        v = float(v)
    except (TypeError, ValueError):
        return math.nan
    return v


def check_plausibility(features: Mapping, *, precision_nm: float | None = None,
                       neck_fit_converged: bool | None = None) -> tuple[dict, list[str]]:
    """Check one spine's features; impossible values become NaN.

    Parameters
    ----------
    features : mapping
        Feature names as in the spine tables (missing features are not checked; a
        ``spine_class`` of ``"filopodium"`` lifts the upper length bound).
    precision_nm : float, optional
        Localization precision (1 sigma, nm): diameters below half of it are not
        resolved. Default: only the 20 nm membrane limit applies.
    neck_fit_converged : bool, optional
        Whether the point-based neck fit converged (False: the fit becomes NaN).

    Returns
    -------
    (dict, list of str)
        A copy of ``features`` with the impossible values set to NaN, and the reasons
        (rule names of :data:`PLAUSIBILITY_RULES`, in table order).

    Examples
    --------
    >>> f = {"neck_min_diameter_nm": 150.0, "head_diameter_nm": 400.0, "length_nm": 900.0,
    ...      "neck_fit_diameter_nm": 4.0, "neck_fit_diameter_err_nm": 1.0}
    >>> out, why = check_plausibility(f, precision_nm=12.0)
    >>> why, out["neck_fit_diameter_nm"], out["neck_min_diameter_nm"]
    (['neck_fit_below_resolution'], nan, 150.0)
    """
    out = dict(features)
    reasons: list[str] = []
    limit = MEMBRANE_LIMIT_NM
    if precision_nm is not None and math.isfinite(float(precision_nm)):
        limit = max(limit, 0.5 * float(precision_nm))

    def fire(name: str) -> None:
        reasons.append(name)
        for col in _COLUMNS[name]:
            if col in out:
                out[col] = math.nan

    fin = math.isfinite
    neck, head = _num(out, "neck_min_diameter_nm"), _num(out, "head_diameter_nm")
    if fin(neck) and neck < limit:
        fire("neck_below_resolution")
    fit = _num(out, "neck_fit_diameter_nm")
    if fin(fit):
        err = _num(out, "neck_fit_diameter_err_nm")
        if fit < limit:
            fire("neck_fit_below_resolution")
        elif neck_fit_converged is False:
            fire("neck_fit_not_converged")
        elif not fin(err) or err > FIT_REL_ERR_NAN * fit:
            fire("neck_fit_uncertain")
        elif fin(head) and fit > head:
            fire("neck_fit_wider_than_head")
    neck = _num(out, "neck_min_diameter_nm")
    if fin(neck) and fin(head) and neck > head * (1 + 1e-9):
        fire("neck_wider_than_head")
    length, neck_len = _num(out, "length_nm"), _num(out, "neck_length_nm")
    if fin(length) and fin(neck_len) and neck_len > length * (1 + 1e-9):
        fire("neck_length_above_length")
    vol = _num(out, "volume_um3")
    if fin(vol) and vol <= 0:
        fire("volume_not_positive")
    vol, area = _num(out, "volume_um3"), _num(out, "surface_area_um2")
    if fin(vol) and fin(area) and vol > 0:
        base = _num(out, "base_area_nm2")
        closed = area + (base * 1e-6 if fin(base) else 0.0)
        if closed < (36 * math.pi * vol ** 2) ** (1 / 3) * (1 - 1e-3):
            fire("surface_below_isoperimetric")
    vol, head_vol = _num(out, "volume_um3"), _num(out, "head_volume_um3")
    if fin(vol) and fin(head_vol) and head_vol > vol * (1 + 1e-6):
        fire("head_volume_above_volume")
    ratio = _num(out, "convex_hull_ratio")
    if fin(ratio) and ratio > 1 + 1e-6:
        fire("convex_hull_ratio_above_one")
    lo, hi = EM_RANGES["neck_diameter_nm"]
    neck = _num(out, "neck_min_diameter_nm")
    if fin(neck) and (neck < lo or (neck > hi and out.get("spine_class") != "stubby")):
        fire("neck_outside_em_range")
    fit = _num(out, "neck_fit_diameter_nm")
    if fin(fit) and not lo <= fit <= hi:
        fire("neck_fit_outside_em_range")
    if fin(fit) and _num(out, "neck_fit_diameter_err_nm") > FIT_REL_ERR_FLAG * fit:
        fire("neck_fit_imprecise")
    lo, hi = EM_RANGES["volume_um3"]
    vol = _num(out, "volume_um3")
    if fin(vol) and not lo <= vol <= hi:
        fire("volume_outside_em_range")
    lo, hi = EM_RANGES["length_nm"]
    length = _num(out, "length_nm")
    if fin(length) and (length < lo or (length > hi and out.get("spine_class") != "filopodium")):
        fire("length_outside_em_range")
    return out, reasons


def quality_columns(reasons: list[str] | None, *, measured: bool = True) -> dict:
    """``quality``, ``quality_reason`` and ``trustworthy`` of one spine.

    ``quality`` is ``"ok"`` (no rule fired), ``"flagged"`` or ``"not_measured"``;
    ``quality_reason`` the reasons joined by ``"; "``.

    Parameters
    ----------
    reasons : list of str or None
        Rule names that fired (from :func:`check_plausibility`), or the reasons a
        spine could not be measured; None is no reason.
    measured : bool
        False when the spine could not be measured at all (its features are NaN).

    Returns
    -------
    dict
        ``{"quality": str, "quality_reason": str, "trustworthy": bool}``;
        ``trustworthy`` is True only for a measured spine with no reason.

    Examples
    --------
    >>> quality_columns([])
    {'quality': 'ok', 'quality_reason': '', 'trustworthy': True}
    >>> quality_columns(["neck_fit_imprecise", "volume_outside_em_range"])["quality_reason"]
    'neck_fit_imprecise; volume_outside_em_range'
    >>> quality_columns(["open mesh"], measured=False)["quality"]
    'not_measured'
    """
    if not measured:
        return {"quality": "not_measured", "quality_reason": "; ".join(reasons or []),
                "trustworthy": False}
    reasons = list(reasons or [])
    return {"quality": "flagged" if reasons else "ok", "quality_reason": "; ".join(reasons),
            "trustworthy": not reasons}
