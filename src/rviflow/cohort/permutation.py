"""Diagnosis-label permutations of effect-size maps (Freedman-Lane, within site), vectorised.

Under the null of no case-control difference the diagnosis labels are exchangeable within each
site (exchangeability blocks, Winkler et al. 2014, NeuroImage 92:381). With covariates the
Freedman & Lane (1983, J Bus Econ Stat 1:292) scheme permutes the residuals of the reduced model
(``value ~ covariates + site``) and refits the full model: Y* = Z g + P R_z. The full model's
case coefficient and residual SD of Y* need only P R_z (Z g lies in the design's span), so with
the thin QR factorisation X = Q U of the full design (intercept, case, covariates, site dummies):

    G = Q' P R_z,   beta_case = (U^-1 G)[case],   RSS = ||R_z||^2 - ||G||^2 (per column),
    d* = beta_case / sqrt(RSS / dof)

-- the same adjusted d as :func:`rviflow.cohort.effects.effect_sizes` on the permuted data. The Q' P
of a block of permutations is stacked into one (block * p, n) matrix: one matrix product per
block gives every region of every measure (here written by hand because no maintained library
does Freedman-Lane for many responses at once; statsmodels fits one response per call).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from rviflow.errors import InputError


def within_block_permutations(blocks: np.ndarray | None, n: int, n_perm: int, seed: int = 0) -> np.ndarray:
    """(n_perm, n) index arrays, each a random permutation of 0..n-1 within every block (site).

    ``blocks`` (n,) labels; None = one block. Row i: subject i takes the residual of subject perm[i].
    """
    rng = np.random.default_rng(seed)
    out = np.empty((n_perm, n), dtype=np.int64)
    groups = [np.arange(n)] if blocks is None else [np.flatnonzero(blocks == b) for b in pd.unique(blocks)]
    for idx in groups:
        out[:, idx] = idx[rng.permuted(np.broadcast_to(np.arange(idx.size), (n_perm, idx.size)), axis=1)]
    return out


class FreedmanLane:
    """Case-control adjusted d of many columns under many within-site label permutations.

    Parameters
    ----------
    values : (n_subjects, n_columns) array without missing values (e.g. two measures' regions
        side by side)
    design : (n_subjects, p) full design, column ``k`` the case indicator (0/1), the others the
        nuisance terms (intercept, covariates, site dummies); full column rank
    """

    def __init__(self, values: np.ndarray, design: np.ndarray, k: int = 1):
        Y = np.asarray(values, float)
        X = np.asarray(design, float)
        if np.isnan(Y).any():
            raise ValueError("FreedmanLane needs complete data")
        Z = np.delete(X, k, axis=1)
        qz, _ = np.linalg.qr(Z)
        self.resid = Y - qz @ (qz.T @ Y)            # R_z: (n, m)
        q, u = np.linalg.qr(X)
        if np.min(np.abs(np.diag(u))) < 1e-10 * np.max(np.abs(np.diag(u))):
            raise InputError("the design (case, covariates, site) is rank deficient; cannot permute labels")
        self.q = q                                   # (n, p)
        self.u_inv_k = np.linalg.inv(u)[k]          # (p,): row of U^-1 giving beta_case
        self.rss_reduced = (self.resid**2).sum(0)    # (m,)
        self.dof = X.shape[0] - X.shape[1]

    def d(self, perms: np.ndarray | None = None, block: int | None = None) -> np.ndarray:
        """(n_perm, n_columns) adjusted d; ``perms`` from :func:`within_block_permutations`
        (None = the observed labels: a (1, n_columns) array). ``block`` permutations per matrix
        product (default: as many as fit ~64 MB of permuted Q)."""
        n, p = self.q.shape
        block = block or max(1, int(64e6 // (8 * n * p)))
        if perms is None:
            perms = np.arange(n)[None, :]
        out = np.empty((len(perms), self.resid.shape[1]))
        for s in range(0, len(perms), block):
            pb = perms[s:s + block]
            # (P R_z)_i = R_z[perm[i]], so Q' P R_z = Q[inv]' R_z, inv the inverse permutation
            inv = np.empty_like(pb)
            np.put_along_axis(inv, pb, np.arange(n)[None, :].repeat(len(pb), 0), axis=1)
            qp = self.q[inv]                                       # (b, n, p)
            g = (qp.transpose(0, 2, 1).reshape(-1, n) @ self.resid).reshape(len(pb), p, -1)  # one GEMM
            beta = np.einsum("p,bpm->bm", self.u_inv_k, g)
            rss = np.maximum(self.rss_reduced[None, :] - (g**2).sum(1), 1e-300)
            out[s:s + len(pb)] = beta / np.sqrt(rss / self.dof)
        return out


def complete_design(values: list[pd.DataFrame], design: pd.DataFrame, min_present: float = 0.9,
                    what: str = "") -> tuple[list[pd.DataFrame], pd.DataFrame]:
    """The subjects and regions a label permutation of several measures can use together.

    Regions (columns common to every table) present in fewer than ``min_present`` of the
    subjects are left out, then subjects missing any remaining value; constant design columns
    (a site with no subject left) are dropped. Returns the tables and design on those rows.
    """
    subj = design.index
    for v in values:
        subj = subj.intersection(v.index)
    regions = [r for r in values[0].columns if all(r in v.columns for v in values[1:])]
    keep = [r for r in regions if all(v.loc[subj, r].notna().mean() >= min_present for v in values)]
    ok = np.ones(len(subj), bool)
    for v in values:
        ok &= v.loc[subj, keep].notna().all(1).to_numpy()
    subj = subj[ok]
    X = design.loc[subj]
    X = X.loc[:, X.std(ddof=0).gt(0) | X.columns.isin(["intercept", "case"])]
    n1 = int(X["case"].sum())
    if min(n1, len(X) - n1) < 2:
        raise InputError(f"{what}: {n1} cases and {len(X) - n1} controls with complete values; too few to permute")
    return [v.loc[subj, keep] for v in values], X
