"""Small structured synthetic acquisitions with a known drift (test helper)."""

from __future__ import annotations

import numpy as np

from smlmspine.schema import make_table


def drift_curve(frames, n_frames, *, amplitude_nm=(150.0, -120.0, 100.0)):
    """Smooth 3D drift: observed = true + drift; zero at frame 0."""
    u = np.asarray(frames, float) / n_frames
    ax, ay, az = amplitude_nm
    dx = ax * (u + 0.3 * np.sin(2.5 * np.pi * u))
    dy = ay * (u ** 2 - 0.4 * np.sin(1.7 * np.pi * u))
    dz = az * np.sin(1.3 * np.pi * u)
    return np.column_stack([dx, dy, dz])


def dendrite_like(n_emitters=4000, n_frames=10000, blinks_per_emitter=25, *, dims=3,
                  precision_xy=8.0, precision_z=20.0, rng=0, beads=0, bead_precision=2.0):
    """Emitters on a tube surface (radius 400 nm, 6 um long) plus spine-like blobs.

    Each emitter blinks ``blinks_per_emitter`` times at random frames, each blink one
    localization. Returns (table, truth positions per localization, drift per loc).
    """
    rng = np.random.default_rng(rng)
    n_spine = n_emitters // 4
    n_tube = n_emitters - n_spine
    s = rng.uniform(0, 6000, n_tube)
    phi = rng.uniform(0, 2 * np.pi, n_tube)
    tube = np.column_stack([s, 400 * np.cos(phi) + 1500, 400 * np.sin(phi)])
    centres = np.column_stack([rng.uniform(300, 5700, 12), np.full(12, 1500.0),
                               np.zeros(12)])
    dirs = rng.normal(size=(12, 3))
    dirs /= np.linalg.norm(dirs, axis=1)[:, None]
    centres = centres + 900 * dirs
    k = rng.integers(0, 12, n_spine)
    v = rng.normal(size=(n_spine, 3))
    v /= np.linalg.norm(v, axis=1)[:, None]
    spines = centres[k] + 200 * v
    em = np.vstack([tube, spines])
    n_b = rng.poisson(blinks_per_emitter, len(em))
    site = np.repeat(np.arange(len(em)), n_b)
    frame = rng.integers(0, n_frames, site.size)
    true = em[site]
    prec = np.array([precision_xy, precision_xy, precision_z])
    photons = rng.gamma(4.0, 500.0, site.size)
    if beads:
        bpos = np.column_stack([rng.uniform(0, 6000, beads), rng.uniform(0, 3000, beads),
                                rng.uniform(-300, 300, beads)])
        bf = np.tile(np.arange(n_frames), beads)
        bs = np.repeat(np.arange(beads), n_frames)
        keep = rng.random(bf.size) < 0.95
        bf, bs = bf[keep], bs[keep]
        frame = np.concatenate([frame, bf])
        true = np.vstack([true, bpos[bs]])
        photons = np.concatenate([photons, np.full(bf.size, 50000.0)])
        site = np.concatenate([site, len(em) + bs])
        noise = np.vstack([rng.normal(0, 1, (site.size - bf.size, 3)) * prec,
                           rng.normal(0, 1, (bf.size, 3)) * np.array(
                               [bead_precision, bead_precision, 2.5 * bead_precision])])
    else:
        noise = rng.normal(0, 1, (site.size, 3)) * prec
    d = drift_curve(frame, n_frames)
    obs = true + d + noise
    order = np.argsort(frame, kind="stable")
    cols = {"x": obs[order, 0], "y": obs[order, 1], "frame": frame[order],
            "photons": photons[order], "precision_xy": np.full(site.size, precision_xy)}
    if dims == 3:
        cols["z"] = obs[order, 2]
        cols["precision_z"] = np.full(site.size, precision_z)
    return make_table(cols), true[order], d[order], site[order]


def residual_rms(model, n_frames, dims=3):
    """RMS of (estimated - true) drift per axis over all frames, mean offset removed."""
    f = np.arange(n_frames)
    est = model.at(f)
    tru = drift_curve(f, n_frames)
    r = est[:, :dims] - tru[:, :dims]
    r -= r.mean(axis=0)
    return np.sqrt((r ** 2).mean(axis=0))
