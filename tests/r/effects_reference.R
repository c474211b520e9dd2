# Reference values for analysis.effects: the survey-weighted ordered logit (proportional odds)
# against survey::svyolr.
#
# Run from the repository root:
#     Rscript tests/r/effects_reference.R
# Writes tests/r/effects_olr_data.csv (simulated data, committed) and
# tests/r/effects_reference.json (read by tests/test_effects_reference.py).
#
# The design is svydesign(ids = ~1, weights = ~w): independent units with unequal weights, so
# svyolr's standard errors are the linearisation (sandwich) ones with the n/(n-1) factor.

options(digits = 15)
suppressPackageStartupMessages({
  library(survey)
  library(jsonlite)
})

set.seed(20240611)
n <- 600
x1 <- rnorm(n)
x2 <- rbinom(n, 1, 0.4)
treat <- rbinom(n, 1, plogis(-0.3 + 0.5 * x1))
eta <- 0.6 * treat + 0.8 * x1 - 0.5 * x2
cuts <- c(-1.5, -0.3, 0.8, 2.0)
u <- rlogis(n)
y <- 1 + findInterval(eta + u, cuts)
w <- round(runif(n, 0.5, 3), 3)
d <- data.frame(y = y, treat = treat, x1 = round(x1, 6), x2 = x2, w = w)
write.csv(d, "tests/r/effects_olr_data.csv", row.names = FALSE)
d <- read.csv("tests/r/effects_olr_data.csv")
d$yf <- factor(d$y, levels = 1:5, ordered = TRUE)

des <- svydesign(ids = ~1, weights = ~w, data = d)
fit <- svyolr(yf ~ treat + x1 + x2, design = des)
V <- vcov(fit)
est <- c(coef(fit), fit$zeta)
est <- est[!duplicated(names(est))]
se <- sqrt(diag(V))[names(est)]

out <- list(
  versions = list(
    R = R.version.string,
    survey = as.character(packageVersion("survey")),
    jsonlite = as.character(packageVersion("jsonlite"))
  ),
  call = "svyolr(yf ~ treat + x1 + x2, design = svydesign(ids = ~1, weights = ~w, data = d))",
  params = as.list(est),
  bse = as.list(se),
  vcov = unname(V[names(est), names(est)]),
  names = names(est)
)
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE),
           "tests/r/effects_reference.json")
cat("wrote tests/r/effects_reference.json\n")
