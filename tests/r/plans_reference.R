# Reference values for analysis.plans (agreement and design-based shares), computed in R.
#
# Run from the repository root:
#     Rscript tests/r/plans_reference.R
# Needs Debian's r-base-core, r-cran-survey, r-cran-psych and r-cran-jsonlite.  R's `irr` package
# (kappam.fleiss, kripp.alpha) is not packaged by Debian, so Krippendorff's alpha is computed here
# from its definition (the coincidence matrix, Krippendorff 2011, nominal metric) and Cohen's kappa
# by psych::cohen.kappa.
#
# Writes tests/r/plans_ratings.csv and tests/r/plans_sample.csv (the data, drawn here with a fixed
# seed) and tests/r/plans_reference.json (read by tests/test_plans_reference.py):
#
# * ratings: 150 POPs coded by three coders on one code with values ja / nee / nvt (each coder copies
#   a latent true value with probability 0.8, else picks a value at random); percent agreement,
#   Cohen's kappa (psych::cohen.kappa, unweighted) for coders 1-2 and for every pair, Krippendorff's
#   alpha for coders 1-2 and for all three;
# * sample: a stratified simple random sample (4 strata, N_h 400/250/120/60, n_h 30/25/20/15) with
#   the codes training_recommended, reason_derivable, attest_match; svymean of the shares
#   no_training, mismatch (overall and svyby stratum) and of no_reason in the domain
#   training_recommended == "ja", with svydesign(ids = ~1, strata = ~stratum, fpc = ~N_h).

options(digits = 15)
suppressPackageStartupMessages({
  library(survey)
  library(psych)
  library(jsonlite)
})
options(survey.lonely.psu = "fail")
set.seed(20231)

# ---------------------------------------------------------------- ratings and agreement
U <- 150
cats <- c("ja", "nee", "nvt")
truth <- sample(cats, U, replace = TRUE, prob = c(0.5, 0.35, 0.15))
coder <- function() ifelse(runif(U) < 0.8, truth, sample(cats, U, replace = TRUE))
ratings <- data.frame(unit = sprintf("U%03d", 1:U), c1 = coder(), c2 = coder(), c3 = coder(), stringsAsFactors = FALSE)
write.csv(ratings, "tests/r/plans_ratings.csv", row.names = FALSE, quote = TRUE)

as_codes <- function(x) as.integer(factor(x, levels = cats))
kappa_pair <- function(a, b) psych::cohen.kappa(cbind(as_codes(a), as_codes(b)))$kappa

percent_agreement <- function(m) {
  # share of agreeing ordered coder pairs per unit, averaged over units
  k <- ncol(m)
  mean(apply(m, 1, function(r) {
    tab <- table(r)
    sum(tab * (tab - 1)) / (k * (k - 1))
  }))
}

kripp_alpha_nominal <- function(m) {
  # coincidence matrix o[c, k] = sum_u (number of c-k pairs in unit u) / (m_u - 1)
  lv <- sort(unique(as.vector(m)))
  o <- matrix(0, length(lv), length(lv), dimnames = list(lv, lv))
  for (u in seq_len(nrow(m))) {
    r <- m[u, ]
    mu <- length(r)
    for (i in seq_len(mu)) for (j in seq_len(mu)) if (i != j) o[r[i], r[j]] <- o[r[i], r[j]] + 1 / (mu - 1)
  }
  n_c <- rowSums(o)
  n <- sum(n_c)
  d_o <- sum(o) - sum(diag(o))
  d_e <- (n * n - sum(n_c^2)) / (n - 1)
  1 - d_o / d_e
}

m2 <- as.matrix(ratings[, c("c1", "c2")])
m3 <- as.matrix(ratings[, c("c1", "c2", "c3")])
agreement <- list(
  two = list(
    percent_agreement = percent_agreement(m2),
    kappa = kappa_pair(ratings$c1, ratings$c2),
    alpha = kripp_alpha_nominal(m2)
  ),
  three = list(
    percent_agreement = percent_agreement(m3),
    kappa_mean_pairs = mean(c(kappa_pair(ratings$c1, ratings$c2), kappa_pair(ratings$c1, ratings$c3), kappa_pair(ratings$c2, ratings$c3))),
    alpha = kripp_alpha_nominal(m3)
  )
)

# ---------------------------------------------------------------- stratified sample and shares
N_h <- c(A = 400, B = 250, C = 120, D = 60)
n_h <- c(A = 30, B = 25, C = 20, D = 15)
p_none <- c(A = 0.15, B = 0.25, C = 0.35, D = 0.1)
p_mis <- c(A = 0.1, B = 0.2, C = 0.3, D = 0.25)
rows <- lapply(names(N_h), function(h) {
  n <- n_h[[h]]
  rec <- ifelse(runif(n) < p_none[[h]], "nee", "ja")
  reason <- ifelse(rec == "nee", "nvt", ifelse(runif(n) < 0.55, "ja", "nee"))
  am <- ifelse(rec == "nee", "onbepaald", ifelse(runif(n) < p_mis[[h]], "mismatch", "match"))
  data.frame(pop_id = sprintf("LBT%08d", seq_len(n) + 1000 * match(h, names(N_h))), stratum = h, N_h = N_h[[h]],
             training_recommended = rec, reason_derivable = reason, attest_match = am, stringsAsFactors = FALSE)
})
s <- do.call(rbind, rows)
write.csv(s, "tests/r/plans_sample.csv", row.names = FALSE, quote = TRUE)
s$no_training <- as.numeric(s$training_recommended == "nee")
s$mismatch <- as.numeric(s$attest_match == "mismatch")
s$no_reason <- as.numeric(s$reason_derivable == "nee")
des <- svydesign(ids = ~1, strata = ~stratum, fpc = ~N_h, data = s)

one <- function(est) list(estimate = unname(coef(est))[1], bse = unname(SE(est))[1])
by_stratum <- function(var) {
  b <- svyby(as.formula(paste0("~", var)), ~stratum, des, svymean)
  setNames(lapply(seq_len(nrow(b)), function(i) list(estimate = b[[var]][i], bse = SE(b)[i])), as.character(b$stratum))
}
shares <- list(
  no_training = c(one(svymean(~no_training, des)), list(by_stratum = by_stratum("no_training"))),
  mismatch = c(one(svymean(~mismatch, des)), list(by_stratum = by_stratum("mismatch"))),
  no_reason = one(svymean(~no_reason, subset(des, training_recommended == "ja")))
)

pkg <- function(p) as.character(packageVersion(p))
out <- list(
  versions = list(R = R.version.string, survey = pkg("survey"), psych = pkg("psych"), jsonlite = pkg("jsonlite"), platform = R.version$platform),
  agreement = agreement,
  shares = shares
)
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE, null = "null"), "tests/r/plans_reference.json")
cat("wrote tests/r/plans_reference.json\n")
