"""Exact EM for a Gaussian mixture with missing entries (NaN), slow and obviously correct:
one row and one component at a time, in float64 (Ghahramani & Jordan 1994).

θ = (weights, means, covariances) with covariances in scikit-learn's shape for the
covariance type. A row with no observed entry is skipped.
"""

import numpy as np
from scipy.special import logsumexp


def full_covariances(covariances, covariance_type, n_components, n_features):
    """Every component's (D, D) covariance."""
    covariances = np.asarray(covariances, dtype=np.float64)
    if covariance_type == "full":
        return covariances
    if covariance_type == "tied":
        return np.repeat(covariances[None], n_components, axis=0)
    if covariance_type == "diag":
        return np.array([np.diag(c) for c in covariances])
    return np.array([c * np.eye(n_features) for c in covariances])


def e_step_row(x, weights, means, covariances):
    """(log p(x_o), responsibilities (K,), completed rows (K, D), conditional covariances
    (K, D, D)) of one row under every component at once; None for a row with no observed
    entry."""
    o = ~np.isnan(x)
    m = ~o
    if not o.any():
        return None
    cov_oo = covariances[:, o][:, :, o]
    cov_mo = covariances[:, m][:, :, o]
    residuals = x[o] - means[:, o]
    # log π_k + log N(x_o | μ_o, Σ_oo), by a solve and a log-determinant.
    _, log_det = np.linalg.slogdet(cov_oo)
    mahalanobis = np.einsum("ki,ki->k", residuals,
                            np.linalg.solve(cov_oo, residuals[:, :, None])[:, :, 0])
    log_joint = np.log(weights) - 0.5 * (o.sum() * np.log(2 * np.pi) + log_det + mahalanobis)
    log_p = logsumexp(log_joint)
    completed = np.empty_like(means)
    completed[:, o] = x[o]
    completed[:, m] = means[:, m] + (cov_mo @ np.linalg.solve(cov_oo, residuals[:, :, None]))[
        :, :, 0]
    corrections = np.zeros_like(covariances)
    corrections[:, m[:, None] & m] = (covariances[:, m][:, :, m] - cov_mo @ np.linalg.solve(
        cov_oo, np.swapaxes(cov_mo, 1, 2))).reshape(len(means), -1)
    return log_p, np.exp(log_joint - log_p), completed, corrections


def em_step(X, sample_weight, theta, covariance_type, reg_covar, eps):
    """(weighted mean log-likelihood under θ, the next θ)."""
    weights, means, covariances = (np.asarray(a, dtype=np.float64) for a in theta)
    n_samples, n_features = X.shape
    n_components = len(weights)
    covariances = full_covariances(covariances, covariance_type, n_components, n_features)
    w = np.ones(n_samples) if sample_weight is None else sample_weight
    loglik = total = 0.0
    nk = np.zeros(n_components)
    rows, resps, completed_rows, correction_sums = [], [], [], np.zeros_like(covariances)
    for i in range(n_samples):
        row = e_step_row(X[i].astype(np.float64), weights, means, covariances)
        if row is None:
            continue
        log_p, resp, completed, corrections = row
        loglik += w[i] * log_p
        total += w[i]
        nk += w[i] * resp
        rows.append(w[i])
        resps.append(resp)
        completed_rows.append(completed)
        correction_sums += w[i] * resp[:, None, None] * corrections
    w_rows, resps, completed_rows = np.array(rows), np.array(resps), np.array(completed_rows)
    nk = nk + 10 * eps
    new_means = np.einsum("i,ik,ikd->kd", w_rows, resps, completed_rows) / nk[:, None]
    empirical = np.empty_like(covariances)
    for k in range(n_components):
        d = completed_rows[:, k] - new_means[k]
        empirical[k] = ((w_rows * resps[:, k])[:, None] * d).T @ d
        empirical[k] = (empirical[k] + correction_sums[k]) / nk[k]
    identity = np.eye(n_features)
    if covariance_type == "full":
        new_covariances = empirical + reg_covar * identity
    elif covariance_type == "tied":
        new_covariances = np.einsum("k,kij->ij", nk, empirical) / nk.sum() + reg_covar * identity
    elif covariance_type == "diag":
        new_covariances = np.array([np.diag(c) for c in empirical]) + reg_covar
    else:
        new_covariances = np.array([np.diag(c).mean() for c in empirical]) + reg_covar
    return loglik / total, (nk / nk.sum(), new_means, new_covariances)


def marginal_log_density(X, theta, covariance_type):
    """log p(x_o) of every row under θ (0 for a row with no observed entry) and its
    responsibilities (the weights for such a row)."""
    weights, means, covariances = (np.asarray(a, dtype=np.float64) for a in theta)
    covariances = full_covariances(covariances, covariance_type, *means.shape)
    log_prob = np.zeros(len(X))
    resp = np.tile(weights, (len(X), 1))
    for i, x in enumerate(X.astype(np.float64)):
        row = e_step_row(x, weights, means, covariances)
        if row is not None:
            log_prob[i], resp[i] = row[0], row[1]
    return log_prob, resp


def conditional_mean_imputation(X, theta, covariance_type):
    """X with each NaN replaced by Σ_k r_ik E[x_m | x_o, k] under θ, one row at a time (a
    row with no observed entry: the mixture's mean Σ_k π_k μ_k)."""
    weights, means, covariances = (np.asarray(a, dtype=np.float64) for a in theta)
    covariances = full_covariances(covariances, covariance_type, *means.shape)
    imputed = np.array(X, dtype=np.float64)
    for i, x in enumerate(imputed):
        row = e_step_row(x, weights, means, covariances)
        imputed[i] = weights @ means if row is None else row[1] @ row[2]
    return imputed


def conditional_covariance(covariance, observed):
    """Σ_mm − Σ_mo Σ_oo⁻¹ Σ_om of one (D, D) covariance, ``observed`` a boolean mask."""
    m = ~observed
    cov_mo = covariance[np.ix_(m, observed)]
    return (covariance[np.ix_(m, m)]
            - cov_mo @ np.linalg.solve(covariance[np.ix_(observed, observed)], cov_mo.T))
