# One M-step of R's mclust under its default conjugate prior (priorControl()), from given
# responsibilities, for the ten models that take a prior.
#
#   Rscript benchmarks/bench_prior_mclust.R data.csv z.csv
#
# Prints "model,what,index,value" rows: the prior's hyperparameters (defaultPrior) and the
# M-step's means (d x G, column-major) and covariances (d x d x G, column-major).
suppressPackageStartupMessages(library(mclust))
args <- commandArgs(trailingOnly = TRUE)
X <- as.matrix(read.csv(args[1], header = FALSE))
z <- as.matrix(read.csv(args[2], header = FALSE))
cat("model,what,index,value\n")
emit <- function(model, what, values) {
  values <- as.vector(values)
  for (i in seq_along(values)) cat(sprintf("%s,%s,%d,%.17g\n", model, what, i - 1, values[i]))
}
for (model in c("EII", "VII", "EEI", "VEI", "EVI", "VVI", "EEE", "EEV", "VEV", "VVV")) {
  prior <- defaultPrior(X, ncol(z), model)
  emit(model, "scale", prior$scale)
  fit <- mstep(data = X, modelName = model, z = z, prior = priorControl())
  emit(model, "mean", fit$parameters$mean)
  emit(model, "sigma", fit$parameters$variance$sigma)
}
