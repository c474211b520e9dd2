# Reference values for analysis.effects.reliability (tests/test_effects_reference.py).
#
# Cronbach's alpha of four Likert items (tests/r/reliability_items.csv, one answer missing: complete
# cases) by psych::alpha, with Feldt's F-based interval by psych::alpha.ci at the 95 % and 90 %
# levels; Hedges' g of two groups (tests/r/hedges_groups.csv) by its definition: Cohen's d with the
# pooled SD times 1 - 3 / (4 (n1 + n2) - 9), the means and SDs from R.
#
# Run from the repository root: Rscript tests/r/reliability_reference.R
suppressPackageStartupMessages(library(psych))
library(jsonlite)
options(digits = 15)

items <- read.csv("tests/r/reliability_items.csv")
complete <- items[complete.cases(items), ]
a <- psych::alpha(complete, warnings = FALSE)$total$raw_alpha
ci <- lapply(c(0.05, 0.10), function(p) {
  r <- psych::alpha.ci(a, n.obs = nrow(complete), n.var = ncol(complete), p.val = p)
  list(level = 1 - p, lower = r$lower.ci, upper = r$upper.ci)
})

g <- read.csv("tests/r/hedges_groups.csv")
x <- g$y[g$group == 1]
y <- g$y[g$group == 0]
pooled <- sqrt(((length(x) - 1) * var(x) + (length(y) - 1) * var(y)) / (length(x) + length(y) - 2))
hedges <- (mean(x) - mean(y)) / pooled * (1 - 3 / (4 * (length(x) + length(y)) - 9))

out <- list(
  versions = list(R = R.version.string, psych = as.character(packageVersion("psych"))),
  alpha = list(nobs = nrow(complete), alpha = a, intervals = ci),
  hedges_g = hedges
)
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE), "tests/r/reliability_reference.json")
