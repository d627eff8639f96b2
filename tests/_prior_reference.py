"""Slow, obviously-correct references of the conjugate prior (gmmfast._prior): the prior's
log density from SciPy's distributions, the expected complete-data log posterior, mclust's
default hyperparameters by hand, and the closed-form MAP M-steps of Fraley & Raftery
(2007) written out model by model."""

import numpy as np
from scipy import stats

ELLIPSOIDAL = ("EEE", "EEV", "VEV", "VVV")
SPHERICAL = ("EII", "VII")
SHARED = ("EII", "EEI", "EEE")


def default_hyperparameters(X, n_components, model):
    """mclust's defaultPrior: shrinkage 0.01, the column means, d + 2 degrees of freedom,
    var(X) / G^(2/d) (a matrix, or the mean of the variances for the diagonal and
    spherical models)."""
    d = X.shape[1]
    covariance = np.atleast_2d(np.cov(X, rowvar=False))
    volume = n_components ** (2.0 / d)
    scale = (covariance / volume if model in ELLIPSOIDAL
             else np.trace(covariance) / d / volume)
    return {"shrinkage": 0.01, "mean": X.mean(axis=0), "dof": d + 2.0, "scale": scale}


def log_prior(model, means, covariances, prior):
    """log p(μ, Σ): normal means given Σ_k / κ, and an inverse Wishart (ellipsoidal),
    inverse gammas on the diagonal entries (diagonal) or on σ² (spherical); one covariance
    prior for the models whose covariance is shared. ``covariances`` (K, D, D)."""
    kappa, mu, nu, scale = (prior[k] for k in ("shrinkage", "mean", "dof", "scale"))
    total = 0.0
    if kappa > 0:
        for mean, covariance in zip(means, covariances):
            total += stats.multivariate_normal.logpdf(mean, mu, covariance / kappa)
    for covariance in (covariances[:1] if model in SHARED else covariances):
        if model in ELLIPSOIDAL:
            total += stats.invwishart.logpdf(covariance, df=nu, scale=scale)
        elif model in SPHERICAL:
            total += stats.invgamma.logpdf(covariance[0, 0], a=nu / 2, scale=scale / 2)
        else:
            total += stats.invgamma.logpdf(np.diag(covariance), a=nu / 2,
                                           scale=scale / 2).sum()
    return float(total)


def expected_log_posterior(X, resp, weights, means, covariances, model, prior):
    """Σ_i Σ_k r_ik [log π_k + log N(x_i | μ_k, Σ_k)] + log p(μ, Σ)."""
    total = 0.0
    for k in range(len(weights)):
        log_density = stats.multivariate_normal.logpdf(X, means[k], covariances[k])
        total += float(resp[:, k] @ (np.log(weights[k]) + log_density))
    return total + log_prior(model, means, covariances, prior)


def log_posterior(X, weights, means, covariances, model, prior):
    """Σ_i log Σ_k π_k N(x_i | μ_k, Σ_k) + log p(μ, Σ): what EM with the prior climbs."""
    densities = np.column_stack([
        weights[k] * stats.multivariate_normal.pdf(X, means[k], covariances[k])
        for k in range(len(weights))])
    return float(np.log(densities.sum(axis=1)).sum()) + log_prior(model, means, covariances,
                                                                 prior)


def closed_form_map(model, X, resp, prior):
    """The paper's MAP means and covariances (K, D, D) for EII, VII, EEI, VVI, EEE, VVV,
    from the counts n_k, means x̄_k and scatters W_k of the responsibilities."""
    kappa, mu, nu, scale = (prior[k] for k in ("shrinkage", "mean", "dof", "scale"))
    n_components, d = resp.shape[1], X.shape[1]
    nk = resp.sum(axis=0)
    xbar = resp.T @ X / nk[:, None]
    means = (nk[:, None] * xbar + kappa * mu) / (nk + kappa)[:, None]
    # W_k + κ n_k / (n_k + κ) (x̄_k − μ_P)(x̄_k − μ_P)ᵀ
    terms = []
    for k in range(n_components):
        centred = X - xbar[k]
        offset = xbar[k] - mu
        terms.append((resp[:, k, None] * centred).T @ centred
                     + kappa * nk[k] / (nk[k] + kappa) * np.outer(offset, offset))
    terms = np.array(terms)
    n, eye = nk.sum(), np.eye(d)
    mean_prior = 1.0 if kappa > 0 else 0.0
    if model == "VVV":
        covariances = [(scale + terms[k]) / (nu + nk[k] + d + 1 + mean_prior)
                       for k in range(n_components)]
    elif model == "EEE":
        shared = (scale + terms.sum(axis=0)) / (nu + n + mean_prior * n_components + d + 1)
        covariances = [shared] * n_components
    elif model == "VVI":
        covariances = [np.diag((scale + np.diag(terms[k])) / (nu + nk[k] + mean_prior + 2))
                       for k in range(n_components)]
    elif model == "EEI":
        shared = np.diag((scale + np.diag(terms.sum(axis=0)))
                         / (nu + n + mean_prior * n_components + 2))
        covariances = [shared] * n_components
    elif model == "VII":
        covariances = [(scale + np.trace(terms[k])) / (nu + (nk[k] + mean_prior) * d + 2)
                       * eye for k in range(n_components)]
    elif model == "EII":
        shared = ((scale + np.trace(terms.sum(axis=0)))
                  / (nu + (n + mean_prior * n_components) * d + 2) * eye)
        covariances = [shared] * n_components
    else:
        raise ValueError(f"no closed form for {model}")
    return means, np.array(covariances)
