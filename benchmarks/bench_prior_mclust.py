"""gmmfast's MAP M-step under the default conjugate prior (``prior="default"``) against R's
mclust (``mstep(..., prior = priorControl())``), from the same responsibilities, for the
ten models that take the prior; and gmmfast's default hyperparameters against mclust's
``defaultPrior``.

mclust is a reference here, never a dependency (``apt-get install r-cran-mclust``). The
responsibilities are those of a 3-component VVV fit of iris (150 × 4, from scikit-learn);
``benchmarks/bench_prior_mclust.R`` runs mclust on them. Printed: per model, the largest
relative difference of the means and of the covariances, and of the prior's scale.

    python benchmarks/bench_prior_mclust.py
"""

import csv
import os
import subprocess
import tempfile

import numpy as np
from sklearn.datasets import load_iris

from gmmfast import GaussianMixture
from gmmfast._engine import InMemorySource, MixtureModel, Statistics
from gmmfast._prior import PRIOR_MODELS, conjugate_prior, data_moments

HERE = os.path.dirname(os.path.abspath(__file__))


def mclust_results(X, resp):
    """{(model, what): values} of the R script, in R's column-major order."""
    with tempfile.TemporaryDirectory() as directory:
        data, z = os.path.join(directory, "X.csv"), os.path.join(directory, "z.csv")
        np.savetxt(data, X, delimiter=",", fmt="%.17g")
        np.savetxt(z, resp, delimiter=",", fmt="%.17g")
        output = subprocess.run(["Rscript", os.path.join(HERE, "bench_prior_mclust.R"),
                                 data, z], capture_output=True, text=True, check=True,
                                cwd=directory).stdout
    results = {}
    for row in csv.DictReader(output.splitlines()):
        results.setdefault((row["model"], row["what"]), []).append(float(row["value"]))
    return {key: np.array(values) for key, values in results.items()}


def gmmfast_m_step(model_name, X, resp):
    """(means (K, D), covariances (K, D, D), prior scale) of gmmfast's MAP M-step."""
    source = InMemorySource(X)
    prior = conjugate_prior({}, model_name, resp.shape[1], X.shape[1],
                            lambda: data_moments(source, 1))
    model = MixtureModel(model_name, 0.0, np.float64, prior=prior)
    full = model.form == "full"
    scatter = (np.einsum("ik,id,ie->kde", resp, X, X) if full
               else resp.T @ X**2)
    sums = resp.T @ X
    theta = model.m_step(Statistics(resp.sum(axis=0), sums, scatter, np.zeros_like(sums)))
    covariances = theta[4].covariances  # (K, D, D), or the diagonals (K, D)
    if covariances.ndim == 2:
        covariances = np.array([np.diag(c) for c in covariances])
    return theta[1], covariances, prior.scale


def relative_difference(ours, theirs):
    return float(np.max(np.abs(ours - theirs)) / np.max(np.abs(theirs)))


def main():
    X = load_iris().data.astype(np.float64)
    resp = GaussianMixture(3, random_state=0).fit(X).predict_proba(X)
    reference = mclust_results(X, resp)
    k, d = resp.shape[1], X.shape[1]
    print("model  means      covariances  prior scale")
    for model_name in PRIOR_MODELS:
        means, covariances, scale = gmmfast_m_step(model_name, X, resp)
        their_means = reference[model_name, "mean"].reshape(k, d)
        their_sigma = reference[model_name, "sigma"].reshape(k, d, d)
        their_scale = reference[model_name, "scale"]
        print(f"{model_name}    {relative_difference(means, their_means):9.2e}  "
              f"{relative_difference(covariances, their_sigma):9.2e}    "
              f"{relative_difference(np.ravel(scale), np.ravel(their_scale)):9.2e}")


if __name__ == "__main__":
    main()
