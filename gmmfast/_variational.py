"""The variational Bayesian mixture as an engine model: scikit-learn's variational
inference for a Gaussian mixture (Dirichlet-process or Dirichlet prior on the weights,
Gaussian-Wishart on the components) in the EM kernels' form.

The variational E-step is the EM kernel: with scikit-learn's normalised covariances the
precisions' factor U is that of the expected precision νW, and every variational term of
log ρ_ik (the digamma terms of the weights and of log det Λ_k, −D/(2κ_k)) is a constant
per component, carried in the kernels' ``log_norm``. The statistics are EM's, so a fit makes
one pass over the rows per iteration, in memory or on the blocks of a dask array.

No estimator is imported here: the command line scores and samples a saved model through
this module without importing scikit-learn.
"""

import math

import numpy as np
from scipy.special import betaln, digamma, gammaln

from gmmfast import _mstep_core
from gmmfast._engine import KernelParameters, mixture_kernel_parameters
from gmmfast._mstep import kernel_form, precision_cholesky

PRIOR_TYPES = ("dirichlet_process", "dirichlet_distribution")


# ----------------------------------------------------------------------------------------
# the normalisers of the variational posteriors (without the terms scikit-learn drops)
# ----------------------------------------------------------------------------------------


def log_dirichlet_norm(concentration):
    """log of the normaliser of a Dirichlet distribution with ``concentration`` (K,)."""
    return gammaln(np.sum(concentration)) - np.sum(gammaln(concentration))


def log_wishart_norm(degrees_of_freedom, log_det_precisions_chol, n_features):
    """log of the Wishart normaliser per component, without the log π term (as
    scikit-learn's, which drops it from the bound)."""
    return -(
        degrees_of_freedom * log_det_precisions_chol
        + degrees_of_freedom * n_features * 0.5 * np.log(2.0)
        + np.sum(gammaln(0.5 * (degrees_of_freedom - np.arange(n_features)[:, np.newaxis])),
                 0)
    )


def log_det_cholesky(precisions_chol, covariance_type, n_features):
    """log det U per component ((K,), or a scalar for tied), U in scikit-learn's shapes."""
    if covariance_type == "full":
        return np.sum(np.log(np.diagonal(precisions_chol, axis1=1, axis2=2)), axis=1)
    if covariance_type == "tied":
        return np.sum(np.log(np.diag(precisions_chol)))
    if covariance_type == "diag":
        return np.sum(np.log(precisions_chol), axis=1)
    return n_features * np.log(precisions_chol)


def dirichlet_process_weights(concentration):
    """E[π] of the stick-breaking posterior with Beta parameters ``(a, b)``, normalised
    (as scikit-learn's ``weights_``)."""
    a, b = concentration
    total = a + b
    weights = a / total * np.hstack((1, np.cumprod(b / total)[:-1]))
    return weights / np.sum(weights)


# ----------------------------------------------------------------------------------------
# the model
# ----------------------------------------------------------------------------------------


class Priors:
    """The resolved priors of a fit, float64: ``weight_concentration`` (α₀),
    ``mean_precision`` (κ₀), ``mean`` (m₀, (D,)), ``degrees_of_freedom`` (ν₀) and
    ``covariance`` (W₀⁻¹ in the covariance type's shape)."""

    def __init__(self, weight_concentration, mean_precision, mean, degrees_of_freedom,
                 covariance):
        self.weight_concentration = float(weight_concentration)
        self.mean_precision = float(mean_precision)
        self.mean = np.asarray(mean, dtype=np.float64)
        self.degrees_of_freedom = float(degrees_of_freedom)
        self.covariance = np.asarray(covariance, dtype=np.float64)


class VariationalMixtureModel:
    """Variational inference for a Gaussian mixture with a Dirichlet-process or Dirichlet
    prior on the weights and a Gaussian-Wishart prior on each component (scikit-learn's
    ``BayesianGaussianMixture``), as an engine model.

    θ is scikit-learn's ``(weight_concentration, mean_precision, means, degrees_of_freedom,
    covariances, precisions_cholesky)`` in float64 (``weight_concentration`` a pair of
    arrays for the Dirichlet process). The bound that an iteration returns is
    scikit-learn's: the entropy of the responsibilities of its E-step plus the normalisers
    of the parameters its M-step produced, a sum over the (weighted) samples.
    """

    def __init__(self, covariance_type, prior_type, priors, n_components, reg_covar, dtype):
        self.covariance_type = covariance_type
        self.prior_type = prior_type
        self.priors = priors
        self.n_components = n_components
        self.n_features = priors.mean.shape[0]
        self.reg_covar = float(reg_covar)
        self.form = kernel_form(covariance_type)
        self.float32 = np.dtype(dtype) == np.float32
        self.eps = float(np.finfo(dtype).eps)

    # -- E-step ------------------------------------------------------------------------------

    def expected_log_weights(self, weight_concentration):
        """E[log π_k] under the weights' posterior."""
        if self.prior_type == "dirichlet_process":
            a, b = weight_concentration
            digamma_sum = digamma(a + b)
            return (digamma(a) - digamma_sum
                    + np.hstack((0, np.cumsum(digamma(b) - digamma_sum)[:-1])))
        return digamma(weight_concentration) - digamma(np.sum(weight_concentration))

    def kernel_parameters(self, theta):
        """The kernels' form of θ: U is the expected precision's factor; ``log_norm``
        carries E[log π_k], ½ E[log det Λ_k] (less the log det νW in U) and −D/(2κ_k)."""
        weight_concentration, mean_precision, means, dof, _, chol = theta
        d = self.n_features
        gaussian = mixture_kernel_parameters((np.ones(len(means)), means, None, chol),
                                             self.covariance_type)
        log_lambda = d * np.log(2.0) + np.sum(
            digamma(0.5 * (dof - np.arange(d)[:, np.newaxis])), 0)
        log_norm = (gaussian.log_norm + self.expected_log_weights(weight_concentration)
                    - 0.5 * d * np.log(dof) + 0.5 * (log_lambda - d / mean_precision))
        # Its tied M-step, as EM's, needs only the components' scatters summed.
        return KernelParameters(gaussian.means, gaussian.precisions_chol, log_norm,
                                pooled=self.covariance_type == "tied")

    # -- M-step ------------------------------------------------------------------------------

    def m_step(self, stats):
        """θ from the statistics of the responsibilities (also the initialisation: scikit-
        learn's first parameters are this update applied to the initial ones)."""
        nk, xk, sk = _mstep_core.estimate_parameters(*stats, self.covariance_type,
                                                     self.reg_covar, self.eps)
        prior = self.priors
        weight_concentration = self._weight_concentration(nk)
        mean_precision = prior.mean_precision + nk
        means = (prior.mean_precision * prior.mean + nk[:, np.newaxis] * xk) \
            / mean_precision[:, np.newaxis]
        dof, covariances = self._wishart(nk, xk, sk, mean_precision)
        chol = precision_cholesky(covariances, self.covariance_type, self.float32)
        return weight_concentration, mean_precision, means, dof, covariances, chol

    def _weight_concentration(self, nk):
        alpha = self.priors.weight_concentration
        if self.prior_type == "dirichlet_process":
            # Beta(1 + n_k, α + Σ_{j>k} n_j) for each stick.
            return 1.0 + nk, alpha + np.hstack((np.cumsum(nk[::-1])[-2::-1], 0))
        return alpha + nk

    def _wishart(self, nk, xk, sk, mean_precision):
        """(ν, covariances) of the Wishart posteriors; the covariances are normalised by ν
        (scikit-learn's convention, so that their inverse is E[Λ])."""
        prior = self.priors
        diff = xk - prior.mean
        shrink = prior.mean_precision / mean_precision
        if self.covariance_type == "tied":
            n_mean = nk.sum() / self.n_components
            dof = prior.degrees_of_freedom + n_mean
            covariances = (prior.covariance + sk * n_mean
                           + prior.mean_precision / self.n_components
                           * np.dot((nk / mean_precision) * diff.T, diff))
            return dof, covariances / dof
        dof = prior.degrees_of_freedom + nk
        if self.covariance_type == "full":
            covariances = (prior.covariance + nk[:, None, None] * sk
                           + (nk * shrink)[:, None, None]
                           * diff[:, :, None] * diff[:, None, :])
            return dof, covariances / dof[:, None, None]
        if self.covariance_type == "diag":
            covariances = prior.covariance + nk[:, None] * (sk + shrink[:, None] * diff**2)
            return dof, covariances / dof[:, None]
        covariances = prior.covariance + nk * (sk + shrink * np.mean(diff**2, 1))
        return dof, covariances / dof

    # -- the bound ---------------------------------------------------------------------------

    def sum_resp_log_resp(self, loglik, stats, kernel_params):
        """Σ_i w_i Σ_k r_ik log r_ik from the pass's results, without another pass.

        r_ik = p̃_ik / p̃_i, so Σ_k r_ik log r_ik = Σ_k r_ik log p̃_ik − log p̃_i, and
        Σ_i w_i r_ik log p̃_ik = n_k log_norm_k − ½ tr(Uᵀ S_k U) with S_k the scatter about
        the kernels' means (tied: one U, so the pooled scatter Σ_k S_k serves).
        """
        chol = kernel_params.precisions_chol
        if stats.form != "diag":
            precisions = np.matmul(chol, np.swapaxes(chol, 1, 2))
            quadratic = np.einsum("kij,kij->k", stats.scatter, precisions)
        else:
            quadratic = np.einsum("kj,kj->k", stats.scatter, chol**2)
        return float(np.dot(stats.nk, kernel_params.log_norm) - 0.5 * quadratic.sum()
                     - loglik)

    def parameters_term(self, theta):
        """The part of scikit-learn's bound that depends on θ alone (its normalisers)."""
        weight_concentration, mean_precision, _, dof, _, chol = theta
        d = self.n_features
        # U is νW's factor: log det W^½ = log det U − ½ D log ν.
        log_det_chol = (log_det_cholesky(chol, self.covariance_type, d)
                        - 0.5 * d * np.log(dof))
        log_wishart = np.sum(log_wishart_norm(dof, log_det_chol, d))
        if self.covariance_type == "tied":
            log_wishart *= self.n_components
        if self.prior_type == "dirichlet_process":
            log_norm_weight = -np.sum(betaln(*weight_concentration))
        else:
            log_norm_weight = log_dirichlet_norm(weight_concentration)
        return float(-log_wishart - log_norm_weight
                     - 0.5 * d * np.sum(np.log(mean_precision)))

    # -- the engine's protocol -----------------------------------------------------------------

    def log_resp_floor(self, total_weight):
        """The log-responsibility, relative to its row's largest, below which a fit leaves a
        responsibility out of the statistics.

        Every count n_k enters the M-step added to a prior count (κ₀, ν₀, the weights'
        concentrations, and 1 in the stick-breaking weights). The responsibilities left out
        weigh at most total_weight · K · exp(floor), which this floor makes the float64
        rounding error of the smallest of those prior counts: the parameters do not move,
        while rows far from a component skip its accumulation.
        """
        priors = self.priors
        smallest_prior_count = min(priors.mean_precision, priors.degrees_of_freedom,
                                   priors.weight_concentration, 1.0)
        at_most = max(total_weight * self.n_components, 1.0)
        return math.log(np.finfo(np.float64).eps * smallest_prior_count / at_most)

    def em_step(self, source, n_threads):
        """A function θ → (bound, next θ): the E-step under θ, the M-step, and the bound
        from the entropy of that E-step and the normalisers of the next θ."""
        floor = self.log_resp_floor(source.total_weight)

        def step(theta):
            kernel_params = self.kernel_parameters(theta)._replace(log_resp_floor=floor)
            loglik, stats = source.statistics(kernel_params, n_threads)
            next_theta = self.m_step(stats)
            bound = (-self.sum_resp_log_resp(loglik, stats, kernel_params)
                     + self.parameters_term(next_theta))
            # The bound is a sum over the samples, compared in float64 whatever X's dtype
            # (as scikit-learn's, whose bound is float64 for float32 data too): rounded to
            # float32 it would move in steps of ~0.5 at 10⁶ rows, far above ``tol``.
            return bound, next_theta

        return step


def sample_covariance(source, form, n_threads):
    """The rows' covariance with ddof 1 counted in weights (``np.cov`` of the rows repeated
    by integer weights): (D, D) in the "full" form, its diagonal (D,) in the "diag" form.

    One pass of the EM kernel with a single component, so that any source computes it.
    With missing entries (``nan_policy="omit"``) a missing entry counts at its column's
    mean with its column's variance (the component's covariance is that diagonal): the
    diagonal is the observed entries' variance, the covariances shrink toward 0 with the
    fraction of rows missing either column.
    """
    mean, variance = source.mean_and_variance(n_threads)
    d = source.n_features
    unit = np.eye(d)[None] if form == "full" else np.ones((1, d))
    covariance = np.diag(variance)[None] if form == "full" else variance[None]
    _, stats = source.statistics(KernelParameters(mean[None], unit, np.zeros(1), covariance),
                                 n_threads)
    total, offset = stats.nk[0], stats.sums[0]
    # About the exact mean: the rounding of ``mean`` leaves a small offset in the sums.
    correction = np.outer(offset, offset) if form == "full" else offset**2
    return (stats.scatter[0] - correction / total) / (total - 1.0)


# ----------------------------------------------------------------------------------------
# a fitted model, from its attributes
# ----------------------------------------------------------------------------------------


def fitted_model(attributes, dtype):
    """The variational model of a Bayesian mixture whose priors are resolved, for data of
    ``dtype``. ``attributes`` maps the estimator's parameter and attribute names to their
    values: a fitted estimator's ``vars``, or the members of its model file."""
    priors = Priors(attributes["weight_concentration_prior_"],
                    attributes["mean_precision_prior_"], attributes["mean_prior_"],
                    attributes["degrees_of_freedom_prior_"], attributes["covariance_prior_"])
    return VariationalMixtureModel(attributes["covariance_type"],
                                   attributes["weight_concentration_prior_type"], priors,
                                   attributes["n_components"], attributes["reg_covar"], dtype)


def fitted_theta(attributes):
    """θ in float64 from a fitted Bayesian mixture's ``attributes`` (see
    :func:`fitted_model`): the Dirichlet process's concentrations are a pair of arrays (a
    tuple on the estimator, one (2, K) array in a model file)."""
    concentration = attributes["weight_concentration_"]
    if np.ndim(concentration) == 2:
        concentration = tuple(np.asarray(a, dtype=np.float64) for a in concentration)
    else:
        concentration = np.asarray(concentration, dtype=np.float64)
    return (concentration,) + tuple(
        np.asarray(attributes[name], dtype=np.float64)
        for name in ("mean_precision_", "means_", "degrees_of_freedom_", "covariances_",
                     "precisions_cholesky_"))


def fitted_kernel_parameters(attributes):
    """A fitted Bayesian mixture in the kernels' form (the variational log ρ of every
    row), from its ``attributes`` (see :func:`fitted_model`)."""
    model = fitted_model(attributes, np.asarray(attributes["means_"]).dtype)
    return model.kernel_parameters(fitted_theta(attributes))
