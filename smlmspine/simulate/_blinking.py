"""Blinking, photons, localization precision and noise: emitters -> localizations."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ParameterError

__all__ = ["PhotophysicsModel", "mortensen_precision", "blink"]


def mortensen_precision(photons, background, *, psf_sigma_nm: float, pixel_size_nm: float):
    """Lateral localization precision (1 sigma, nm) from photons and background.

    Mortensen et al. (2010), Nat. Methods 7:377, least-squares/MLE bound without EM gain:
    ``sigma^2 = s_a^2 / N * (16/9 + 8 pi s_a^2 b^2 / (N a^2))`` with
    ``s_a^2 = s^2 + a^2 / 12``, ``N`` photons, ``b`` background photons per pixel
    (standard deviation), ``a`` pixel size, ``s`` PSF sigma.

    Parameters
    ----------
    photons : float or array_like
        Detected photons per localization, ``N`` (> 0).
    background : float or array_like
        Background photons per pixel, ``b`` (broadcast against ``photons``).
    psf_sigma_nm : float
        Standard deviation of the Gaussian PSF, nm.
    pixel_size_nm : float
        Camera pixel size in the sample plane, nm.

    Returns
    -------
    float or ndarray
        Lateral precision (1 sigma) in nm, with the broadcast shape of the inputs.

    Examples
    --------
    >>> round(float(mortensen_precision(1500.0, 20.0, psf_sigma_nm=150.0, pixel_size_nm=160.0)), 1)
    11.6
    """
    n = np.asarray(photons, float)
    b = np.asarray(background, float)
    sa2 = psf_sigma_nm ** 2 + pixel_size_nm ** 2 / 12.0
    out = b * b
    out *= 8.0 * np.pi * sa2 / pixel_size_nm ** 2
    out /= n
    out += 16.0 / 9.0
    out *= sa2
    out /= n
    return np.sqrt(out, out=out) if isinstance(out, np.ndarray) else np.sqrt(out)


@dataclass(frozen=True, slots=True)
class PhotophysicsModel:
    """Blinking and detection parameters of the STORM simulation.

    Attributes
    ----------
    labeling_efficiency : float
        Probability that a placed fluorophore is ever detected.
    blinks_per_fluorophore : float
        Mean number of on-events of a detected fluorophore (geometric, >= 1).
    frames_per_blink : float
        Mean on-time of an event in frames (geometric, >= 1); every on frame gives one
        localization, so a fluorophore gives ``blinks * frames_per_blink`` on average.
    photons_median, photons_sigma_log : float
        Log-normal photon count per localization.
    background_photons : float
        Median background per pixel (photons); per localization it varies log-normally
        by about 20 % (``exp(N(0, 0.2))``).
    psf_sigma_nm, pixel_size_nm : float
        For the precision formula (:func:`mortensen_precision`).
    axial_factor : float
        ``precision_z = axial_factor * precision_xy``.
    precision_xy_nm : float or None
        If given, precisions are rescaled so that a localization with the median photon
        count and ``background_photons`` has this lateral precision.
    """

    labeling_efficiency: float = 0.8
    blinks_per_fluorophore: float = 3.0
    frames_per_blink: float = 1.5
    photons_median: float = 1500.0
    photons_sigma_log: float = 0.5
    background_photons: float = 20.0
    psf_sigma_nm: float = 150.0
    pixel_size_nm: float = 160.0
    axial_factor: float = 2.5
    precision_xy_nm: float | None = None

    def __post_init__(self):
        if not 0.0 <= self.labeling_efficiency <= 1.0:
            raise ParameterError(f"labeling_efficiency must be in [0, 1], got {self.labeling_efficiency}")
        if self.blinks_per_fluorophore < 1 or self.frames_per_blink < 1:
            raise ParameterError("blinks_per_fluorophore and frames_per_blink must be >= 1")
        for name in ("photons_median", "psf_sigma_nm", "pixel_size_nm", "axial_factor"):
            if not getattr(self, name) > 0:
                raise ParameterError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.background_photons < 0 or self.photons_sigma_log < 0:
            raise ParameterError("background_photons and photons_sigma_log must be >= 0")
        if self.precision_xy_nm is not None and not self.precision_xy_nm > 0:
            raise ParameterError(f"precision_xy_nm must be > 0, got {self.precision_xy_nm}")

    def precision(self, photons, background):
        """Lateral and axial precision (nm) of localizations.

        Parameters
        ----------
        photons : float or array_like
            Photons per localization.
        background : float or array_like
            Background photons per pixel.

        Returns
        -------
        precision_xy : float or ndarray
            Lateral precision (1 sigma) in nm: :func:`mortensen_precision`, rescaled so
            that the median photon count and ``background_photons`` give ``precision_xy_nm``
            when that is set.
        precision_z : float or ndarray
            ``axial_factor * precision_xy``, nm.

        Examples
        --------
        >>> m = PhotophysicsModel(precision_xy_nm=10.0)
        >>> sxy, sz = m.precision(m.photons_median, m.background_photons)
        >>> round(float(sxy), 6), round(float(sz), 6)
        (10.0, 25.0)
        """
        sxy = mortensen_precision(photons, background, psf_sigma_nm=self.psf_sigma_nm,
                                  pixel_size_nm=self.pixel_size_nm)
        if self.precision_xy_nm is not None:
            ref = mortensen_precision(self.photons_median, self.background_photons,
                                      psf_sigma_nm=self.psf_sigma_nm, pixel_size_nm=self.pixel_size_nm)
            sxy *= self.precision_xy_nm / ref
        return sxy, self.axial_factor * sxy

    def draw_photons(self, n: int, rng, *, median: float | None = None):
        """Photon counts and backgrounds of ``n`` localizations.

        Parameters
        ----------
        n : int
            Number of localizations.
        rng : numpy.random.Generator
            Random source.
        median : float, optional
            Median photon count (default ``photons_median``).

        Returns
        -------
        photons : (n,) ndarray
            Log-normal: ``median * exp(N(0, photons_sigma_log))``.
        background : (n,) ndarray
            Photons per pixel, log-normal around ``background_photons``:
            ``background_photons * exp(N(0, 0.2))``.
        """
        ph = rng.normal(0.0, self.photons_sigma_log, n)
        np.exp(ph, out=ph)
        ph *= self.photons_median if median is None else median
        bg = rng.normal(0.0, 0.2, n)
        np.exp(bg, out=bg)
        bg *= self.background_photons
        return ph, bg


def blink(n_emitters: int, *, n_frames: int, model: PhotophysicsModel, rng):
    """Localization events of ``n_emitters`` fluorophores.

    Returns
    -------
    emitter : (L,) ndarray of int
        Emitter index of each localization (sorted by emitter).
    frame : (L,) ndarray of int
    """
    if n_frames < 1:
        raise ParameterError(f"n_frames must be >= 1, got {n_frames}")
    detected = np.flatnonzero(rng.random(n_emitters) < model.labeling_efficiency)
    n_ev = rng.geometric(1.0 / model.blinks_per_fluorophore, len(detected))
    ev_emitter = np.repeat(detected, n_ev)
    dur = rng.geometric(1.0 / model.frames_per_blink, len(ev_emitter))
    dur = np.minimum(dur, n_frames)
    start = (rng.random(len(ev_emitter)) * (n_frames - dur + 1)).astype(np.int64)
    emitter = np.repeat(ev_emitter, dur)
    first = np.repeat(np.cumsum(dur) - dur, dur)
    frame = np.repeat(start, dur) + (np.arange(len(emitter)) - first)
    return emitter.astype(np.int64), frame.astype(np.int64)
