# Fit R's mclust on one CSV (no header, numeric columns) over G = 1..9 and its 14 models.
#
#   Rscript benchmarks/bench_mclust.R data.csv
#
# Prints one line "seconds,<elapsed>" (the Mclust call alone: hierarchical initialisation,
# EM of every (model, G), BIC), then "model,G,bic,n_parameters,log_likelihood" rows.
# mclust's BIC is 2 log L - p log n (higher is better), so log L = (BIC + p log n) / 2;
# cells mclust could not fit are NA.
suppressPackageStartupMessages(library(mclust))
args <- commandArgs(trailingOnly = TRUE)
X <- as.matrix(read.csv(args[1], header = FALSE))
G <- 1:9
elapsed <- system.time(fit <- Mclust(X, G = G, verbose = FALSE))[["elapsed"]]
cat(sprintf("seconds,%.6f\n", elapsed))
cat("model,G,bic,n_parameters,log_likelihood\n")
bic <- fit$BIC
n <- nrow(X)
d <- ncol(X)
for (model in colnames(bic)) {
  for (g in G) {
    value <- bic[as.character(g), model]
    p <- nMclustParams(model, d, g)
    cat(sprintf("%s,%d,%.10g,%d,%.10g\n", model, g, value, p, (value + p * log(n)) / 2))
  }
}
