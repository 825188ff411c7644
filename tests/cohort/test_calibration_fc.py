"""Calibration of the effect-size p / q on seed-based connectivity tables (measure fc_<seed>).

FC rows have a dependence regional tables like ReHo's lack: within a subject every region's z is
a correlation with the same seed series, so seed noise moves the whole row; autocorrelated
(slow) series give few effective degrees of freedom, so z varies a lot between subjects; a site
with more noise attenuates every correlation. The null here has all of it: per subject, T = 100
volumes of three AR(1) (phi 0.7) network signals with subject-specific loadings on 30 regions
and on the seed, AR(1) region and seed noise whose SD depends on the site, coupling falling with
age; diagnosis independent of everything. z is Fisher z of Pearson r (the formula
rviflow.measures.connectivity.seed_connectivity applies, equal to numpy corrcoef + arctanh in
tests/measures/test_connectivity.py; computed here in one vectorised step over subjects for speed).
Planted effect: in cases, the seed loads more on network 1 (its 10 regions).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from calibration_record import binomial_interval, record

ALPHA = 0.05
N_REGIONS, N_T, N_NET = 30, 100, 3


def _ar1(rng, shape, phi=0.7):
    """AR(1) series along the last axis, unit variance."""
    e = rng.normal(size=shape)
    x = np.empty(shape)
    x[..., 0] = e[..., 0]
    for t in range(1, shape[-1]):
        x[..., t] = phi * x[..., t - 1] + np.sqrt(1 - phi**2) * e[..., t]
    return x


def simulate_fc(n: int, seed: int, planted: float = 0.0):
    """(fc values: subjects x regions DataFrame, design matrix) of one simulated cohort."""
    from calibration_sim import design_matrix
    from rviflow.measures.connectivity import fisher_z

    rng = np.random.default_rng([seed, 18])
    net = np.repeat(np.arange(N_NET), N_REGIONS // N_NET)  # region -> network
    case = rng.permutation(np.arange(n) % 2 == 0)
    site = np.arange(n) % 3
    age = rng.uniform(20, 65, n)
    male = rng.random(n) < 0.5
    latent = _ar1(rng, (n, N_NET, N_T))
    load = 0.8 * np.eye(N_NET)[net] + rng.normal(0, 0.25, (n, N_REGIONS, N_NET))  # subject-specific
    load *= (1 - 0.005 * (age - 45))[:, None, None]
    seed_load = np.array([0.6, 0.2, 0.0]) + rng.normal(0, 0.25, (n, N_NET))
    seed_load[:, 0] += planted * case
    noise_sd = np.array([0.8, 1.0, 1.3])[site][:, None, None]
    regions = np.einsum("srk,skt->srt", load, latent) + noise_sd * _ar1(rng, (n, N_REGIONS, N_T))
    seed_ts = np.einsum("sk,skt->st", seed_load, latent) + noise_sd[:, 0] * _ar1(rng, (n, N_T))
    rc = regions - regions.mean(axis=2, keepdims=True)
    sc = seed_ts - seed_ts.mean(axis=1, keepdims=True)
    r = np.einsum("srt,st->sr", rc, sc) / np.sqrt((rc**2).sum(axis=2) * (sc**2).sum(axis=1)[:, None])
    ids = [f"sub-{i:04d}" for i in range(n)]
    values = pd.DataFrame(fisher_z(r), index=ids, columns=[f"region{i:02d}" for i in range(N_REGIONS)])
    parts = pd.DataFrame(dict(participant_id=ids, diagnosis=np.where(case, "MDD", "HC"), age=age,
                              sex=np.where(male, "M", "F"), site=[f"site{s + 1}" for s in site]))
    return values, design_matrix(parts, "diagnosis", "MDD", "HC", ["age", "sex"], "site")


def test_fc_effect_size_p_and_q():
    from rviflow.cohort.effects import effect_sizes

    n_sim = 200
    p_rej, q_rej = [], []
    for s in range(n_sim):
        values, design = simulate_fc(60, s)
        eff = effect_sizes(values, design, "fc_seed")
        p_rej.append(eff["p"].iloc[s % N_REGIONS] < ALPHA)  # one region per simulation
        q_rej.append((eff["q_fdr"] < ALPHA).any())
    power_p, power_q = [], []
    for s in range(40):
        values, design = simulate_fc(60, 50_000 + s, planted=0.6)
        eff = effect_sizes(values, design, "fc_seed")
        power_p.append(eff["p"].iloc[s % (N_REGIONS // N_NET)] < ALPHA)  # a network-1 region
        power_q.append((eff["q_fdr"] < ALPHA).any())
    lo, hi = binomial_interval(n_sim, ALPHA)
    rows = [{"p-value": "effect_sizes.tsv p, fc_<seed> (one region)", "n_sim": n_sim,
             "FPR at 0.05": float(np.mean(p_rej)), "99% interval": f"[{lo:.3f}, {hi:.3f}]",
             "power": float(np.mean(power_p))},
            {"p-value": "effect_sizes.tsv q_fdr, fc_<seed> (any region, FWER)", "n_sim": n_sim,
             "FPR at 0.05": float(np.mean(q_rej)), "99% interval": f"<= {hi:.3f}",
             "power": float(np.mean(power_q))}]
    record("fc: effect sizes on seed connectivity", rows,
           "n = 60 (30/30), 3 sites (noise SD 0.8/1.0/1.3), age + sex; 30 regions in 3 AR(1) networks, "
           "T = 100, subject-specific loadings; planted: seed loading on network 1 + 0.6 in cases.")
    assert lo <= np.mean(p_rej) <= hi
    assert np.mean(q_rej) <= hi  # BH over positively dependent rows: at most alpha
    assert np.mean(power_p) >= 0.8 and np.mean(power_q) >= 0.8
