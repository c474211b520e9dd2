# Reference values for analysis.matching, computed with R's MatchIt on the Lalonde data.
#
# Run from the repository root:
#     Rscript tests/r/matching_reference.R
# Writes tests/data/lalonde.csv (the data, exported from MatchIt) and
# tests/r/matching_reference.json (the reference values read by tests/test_matching_reference.py).
#
# Only specifications that MatchIt 4.5.1 handles correctly are used: no calipers, and no
# replace = TRUE together with ratio > 1 (both have known bugs in that release).
#
# Conventions of the exported values:
# * match_matrix: 1-based row numbers of the matched controls, one row per treated unit in data
#   order, NA where no match.
# * subclass: integer subclass (NA when unmatched, or NULL when MatchIt assigns none).
# * summary_all / summary_matched: summary(m) tables (standardize = TRUE; the SMD denominator is
#   the SD of the treated group in the full sample, MatchIt's default for the ATT).
# * att: lm(re78 ~ treat + covariates, weights = weights) on match.data(m) with
#   sandwich::vcovCL(fit, cluster = ~subclass) (type HC1, MatchIt's recommended default) for
#   matching without replacement and sandwich::vcovHC(fit, type = "HC3") with replacement.

options(digits = 15)
suppressPackageStartupMessages({
  library(MatchIt)
  library(sandwich)
  library(jsonlite)
})

data("lalonde", package = "MatchIt")
lalonde$race <- as.character(lalonde$race)
write.csv(data.frame(id = rownames(lalonde), lalonde, stringsAsFactors = FALSE),
          "tests/data/lalonde.csv", row.names = FALSE)
d <- read.csv("tests/data/lalonde.csv", stringsAsFactors = FALSE)
rownames(d) <- d$id
d$race <- factor(d$race)

f <- treat ~ age + educ + race + married + nodegree + re74 + re75
outcome_f <- re78 ~ treat + age + educ + race + married + nodegree + re74 + re75

specs <- list(
  nn1 = list(ratio = 1, replace = FALSE, m.order = "largest"),
  ratio2 = list(ratio = 2, replace = FALSE, m.order = "largest"),
  replace1 = list(ratio = 1, replace = TRUE),
  smallest = list(ratio = 1, replace = FALSE, m.order = "smallest"),
  data_order = list(ratio = 1, replace = FALSE, m.order = "data"),
  exact_married = list(ratio = 1, replace = FALSE, m.order = "largest", exact = ~married),
  mahalanobis = list(ratio = 1, replace = FALSE, distance = "mahalanobis"),
  mahvars = list(ratio = 1, replace = FALSE, m.order = "largest",
                 mahvars = ~ age + educ + re74 + re75)
)

table_to_list <- function(tab) {
  tab <- as.data.frame(tab)
  out <- lapply(names(tab), function(col) unname(tab[[col]]))
  names(out) <- names(tab)
  list(rows = rownames(tab), columns = out)
}

results <- list()
for (name in names(specs)) {
  args <- c(list(formula = f, data = d, method = "nearest"), specs[[name]])
  m <- do.call(matchit, args)
  mm <- m$match.matrix
  mm_num <- matrix(match(mm, rownames(d)), nrow = nrow(mm))
  s <- summary(m)
  md <- match.data(m)
  fit <- lm(outcome_f, data = md, weights = weights)
  if (isTRUE(specs[[name]]$replace)) {
    V <- vcovHC(fit, type = "HC3")
    vtype <- "HC3"
  } else {
    V <- vcovCL(fit, cluster = ~subclass)
    vtype <- "vcovCL(cluster = ~subclass), HC1"
  }
  res <- list(
    args = specs[[name]][setdiff(names(specs[[name]]), c("exact", "mahvars"))],
    exact = if (!is.null(specs[[name]]$exact)) deparse(specs[[name]]$exact) else NULL,
    mahvars = if (!is.null(specs[[name]]$mahvars)) deparse(specs[[name]]$mahvars) else NULL,
    distance = if (is.null(m$distance)) NULL else unname(m$distance),
    weights = unname(m$weights),
    subclass = if (is.null(m$subclass)) NULL else unname(as.integer(m$subclass)),
    match_matrix = lapply(seq_len(ncol(mm_num)), function(j) mm_num[, j]),
    summary_all = table_to_list(s$sum.all),
    summary_matched = table_to_list(s$sum.matched),
    nn = table_to_list(s$nn),
    att = list(
      vcov_type = vtype,
      params = as.list(coef(fit)),
      bse = as.list(sqrt(diag(V))),
      nobs = nrow(md)
    )
  )
  results[[name]] <- res
}

versions <- list(
  R = R.version.string,
  MatchIt = as.character(packageVersion("MatchIt")),
  sandwich = as.character(packageVersion("sandwich")),
  jsonlite = as.character(packageVersion("jsonlite"))
)
out <- list(versions = versions, formula = deparse(f), outcome_formula = deparse(outcome_f),
            results = results)
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, na = "null", null = "null", pretty = TRUE),
           "tests/r/matching_reference.json")
cat("wrote tests/r/matching_reference.json\n")
