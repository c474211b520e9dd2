# Reference values for analysis.weighting, computed with R's survey package on its `api` data.
#
# Run from the repository root:
#     Rscript tests/r/weighting_reference.R
# Writes tests/data/api_strat.csv and tests/data/api_clus1.csv (the samples used, exported from
# survey's `data(api)`) and tests/r/weighting_reference.json (read by tests/test_weighting_r.py).
#
# Designs (as in survey's own examples):
#   strat: svydesign(id = ~1, strata = ~stype, weights = ~pw, fpc = ~fpc, data = apistrat)
#   clus1: svydesign(id = ~dnum, weights = ~pw, fpc = ~fpc, data = apiclus1)
# Population margins come from apipop (6194 schools).
#
# Conventions:
# * rake() stops early by default (epsilon = 1 on the scale of the weights); every rake here uses
#   control = list(epsilon = 1e-12, maxit = 1000), and calibrate() with an iterative calfun uses
#   epsilon = 1e-12, so the weights are converged to ~1e-12 and comparable at 1e-6.
# * Linearisation SEs are R's defaults (svyrecvar; options survey.lonely.psu = "fail").
#   For raked designs svyrecvar approximates the projection on the margins by 10 sweeps of
#   backfitting; the Python code does the same.
# * Replicate designs use as.svrepdesign(compress = FALSE) and calibrate(compress = FALSE)
#   (survey 4.1-1 fails with the default compress = NA) and mse = FALSE (centre at the mean of
#   the replicates). For the bootstrap the replicate factors R drew are exported ("factors",
#   rows = respondents in data order), so Python can use exactly the same replicates.
# * Estimates exported for every case: svymean(~api00), svytotal(~enroll), svymean(~awards)
#   (proportions), svyby(~api00, ~awards, svymean) and svyby(~enroll, ~awards, svytotal).

options(digits = 15)
suppressPackageStartupMessages({
  library(survey)
  library(jsonlite)
})

data(api)
keep <- c("snum", "dnum", "stype", "sch.wide", "awards", "api00", "api99", "enroll", "pw", "fpc")
for (nm in c("apistrat", "apiclus1")) {
  d <- get(nm)[, keep]
  for (v in c("stype", "sch.wide", "awards")) d[[v]] <- as.character(d[[v]])
  write.csv(d, file.path("tests", "data", paste0(if (nm == "apistrat") "api_strat" else "api_clus1", ".csv")),
            row.names = FALSE)
}
strat <- read.csv("tests/data/api_strat.csv", stringsAsFactors = TRUE)
clus1 <- read.csv("tests/data/api_clus1.csv", stringsAsFactors = TRUE)

dstrat <- svydesign(id = ~1, strata = ~stype, weights = ~pw, fpc = ~fpc, data = strat)
dclus1 <- svydesign(id = ~dnum, weights = ~pw, fpc = ~fpc, data = clus1)

pop_N <- nrow(apipop)
pop_types <- data.frame(stype = c("E", "H", "M"), Freq = as.vector(table(apipop$stype)[c("E", "H", "M")]))
pop_schwide <- data.frame(sch.wide = c("No", "Yes"),
                          Freq = as.vector(table(apipop$sch.wide)[c("No", "Yes")]))
pop_joint <- as.data.frame(table(stype = apipop$stype, sch.wide = apipop$sch.wide))
pop_api99 <- sum(apipop$api99)
tight <- list(epsilon = 1e-12, maxit = 1000)

estimates <- function(des) {
  one <- function(est) list(names = names(coef(est)), estimate = unname(coef(est)), se = unname(SE(est)))
  by <- function(est) list(names = as.character(est$awards), estimate = unname(coef(est)),
                           se = unname(SE(est)))
  list(
    mean_api00 = one(svymean(~api00, des)),
    total_enroll = one(svytotal(~enroll, des)),
    mean_awards = one(svymean(~awards, des)),
    by_awards_mean_api00 = by(svyby(~api00, ~awards, des, svymean)),
    by_awards_total_enroll = by(svyby(~enroll, ~awards, des, svytotal))
  )
}

case <- function(des, call) {
  out <- list(call = call, weights = as.numeric(weights(des, "sampling")), estimates = estimates(des))
  if (inherits(des, "svyrep.design")) {
    out$scale <- as.numeric(des$scale)
    out$replicate_weights_first <- as.numeric(as.matrix(weights(des, "analysis"))[, 1])
  }
  out
}

rake_margins <- list(~stype, ~sch.wide)
rake_pops <- list(pop_types, pop_schwide)
cal_lin_pop <- c(`(Intercept)` = pop_N, stypeH = pop_types$Freq[2], stypeM = pop_types$Freq[3],
                 api99 = pop_api99)
cal_rak_pop <- c(`(Intercept)` = pop_N, stypeH = pop_types$Freq[2], stypeM = pop_types$Freq[3],
                 sch.wideYes = pop_schwide$Freq[2])
logit_bounds <- c(0.7, 1.7)
# wider bounds for the JK1 replicates: with c(0.7, 1.7) some replicates cannot be calibrated
jk_logit_bounds <- c(0.4, 3)

cases <- list()
cases$strat_base <- case(dstrat, "dstrat")
cases$clus1_base <- case(dclus1, "dclus1")
rstrat <- rake(dstrat, rake_margins, rake_pops, control = tight)
cases$strat_rake <- case(rstrat, "rake(dstrat, list(~stype, ~sch.wide), ..., control = tight)")
rclus <- rake(dclus1, rake_margins, rake_pops, control = tight)
cases$clus1_rake <- case(rclus, "rake(dclus1, list(~stype, ~sch.wide), ..., control = tight)")
cases$clus1_poststrat <- case(postStratify(dclus1, ~stype, pop_types), "postStratify(dclus1, ~stype, pop_types)")
cases$strat_poststrat_joint <- case(postStratify(dstrat, ~stype + sch.wide, pop_joint),
                                    "postStratify(dstrat, ~stype + sch.wide, pop_joint)")
cases$clus1_cal_linear <- case(calibrate(dclus1, ~stype + api99, cal_lin_pop),
                               "calibrate(dclus1, ~stype + api99, pop)")
cases$strat_cal_linear <- case(calibrate(dstrat, ~stype + api99, cal_lin_pop),
                               "calibrate(dstrat, ~stype + api99, pop)")
cases$clus1_cal_raking <- case(calibrate(dclus1, ~stype + sch.wide, cal_rak_pop, calfun = "raking",
                                         epsilon = 1e-12),
                               "calibrate(dclus1, ~stype + sch.wide, pop, calfun = 'raking')")
cases$clus1_cal_logit <- case(calibrate(dclus1, ~stype + api99, cal_lin_pop, calfun = "logit",
                                        bounds = logit_bounds, epsilon = 1e-12),
                              "calibrate(dclus1, ~stype + api99, pop, calfun = 'logit', bounds = c(0.7, 1.7))")
# The raked strat weights take six values (about 15.04, 15.16, 20.31, 20.48, 44.18, 44.54).
# upper = 44.18 trims the largest; redistribution then lifts the 44.177 weights above 44.18, so
# strict = TRUE needs a second round. Bounds are kept away from the weight values themselves.
trim_upper <- 44.18
trim_lower <- 15.1
cases$strat_rake_trim <- case(trimWeights(rstrat, upper = trim_upper, lower = trim_lower),
                              "trimWeights(rstrat, upper = 44.18, lower = 15.1)")
cases$strat_rake_trim_strict <- case(trimWeights(rstrat, upper = trim_upper, lower = trim_lower,
                                                 strict = TRUE),
                                     "trimWeights(rstrat, upper = 44.18, lower = 15.1, strict = TRUE)")

pop_awards <- data.frame(awards = c("No", "Yes"), Freq = as.vector(table(apipop$awards)[c("No", "Yes")]))
cases$strat_rake_joint <- case(rake(dstrat, list(~stype + sch.wide, ~awards), list(pop_joint, pop_awards),
                                    control = tight),
                               "rake(dstrat, list(~stype + sch.wide, ~awards), ..., control = tight)")
# weights from the fpc alone (no weights column): N / n per stratum
cases$clus1_fpc_only <- case(svydesign(id = ~dnum, fpc = ~fpc, data = clus1), "svydesign(id = ~dnum, fpc = ~fpc)")

# replicate designs: JK1 (clus1) and the Rao-Wu rescaling bootstrap (clus1 and strat)
jclus1 <- as.svrepdesign(dclus1, type = "JK1", compress = FALSE)
cases$clus1_jk1_base <- case(jclus1, "as.svrepdesign(dclus1, type = 'JK1')")
cases$clus1_jk1_rake <- case(rake(jclus1, rake_margins, rake_pops, control = tight), "rake(jk1, ...)")
cases$clus1_jk1_poststrat <- case(postStratify(jclus1, ~stype, pop_types), "postStratify(jk1, ~stype)")
cases$clus1_jk1_cal_linear <- case(calibrate(jclus1, ~stype + api99, cal_lin_pop, compress = FALSE),
                                   "calibrate(jk1, ~stype + api99, pop)")
cases$clus1_jk1_cal_raking <- case(calibrate(jclus1, ~stype + sch.wide, cal_rak_pop, calfun = "raking", compress = FALSE,
                                             epsilon = 1e-12),
                                   "calibrate(jk1, ~stype + sch.wide, pop, calfun = 'raking')")
cases$clus1_jk1_cal_logit <- case(calibrate(jclus1, ~stype + api99, cal_lin_pop, calfun = "logit",
                                            bounds = jk_logit_bounds, epsilon = 1e-12, compress = FALSE),
                                  "calibrate(jk1, ~stype + api99, pop, calfun = 'logit', bounds = c(0.4, 3))")

set.seed(20261123)
bclus1 <- as.svrepdesign(dclus1, type = "subbootstrap", replicates = 50, compress = FALSE)
bstrat <- as.svrepdesign(dstrat, type = "subbootstrap", replicates = 50, compress = FALSE)
cases$clus1_boot_base <- case(bclus1, "as.svrepdesign(dclus1, type = 'subbootstrap', replicates = 50)")
cases$clus1_boot_rake <- case(rake(bclus1, rake_margins, rake_pops, control = tight), "rake(boot, ...)")
cases$strat_boot_base <- case(bstrat, "as.svrepdesign(dstrat, type = 'subbootstrap', replicates = 50)")
cases$strat_boot_rake <- case(rake(bstrat, rake_margins, rake_pops, control = tight), "rake(boot, ...)")
cases$strat_boot_cal_linear <- case(calibrate(bstrat, ~stype + api99, cal_lin_pop, compress = FALSE),
                                    "calibrate(boot, ~stype + api99, pop)")

pkg <- function(p) as.character(packageVersion(p))
out <- list(
  versions = list(R = R.version.string, survey = pkg("survey"), jsonlite = pkg("jsonlite"),
                  platform = R.version$platform),
  margins = list(
    N = pop_N,
    stype = setNames(as.list(pop_types$Freq), pop_types$stype),
    sch.wide = setNames(as.list(pop_schwide$Freq), pop_schwide$sch.wide),
    joint = lapply(seq_len(nrow(pop_joint)), function(i)
      list(stype = as.character(pop_joint$stype[i]), sch.wide = as.character(pop_joint$sch.wide[i]),
           Freq = pop_joint$Freq[i])),
    api99 = pop_api99,
    awards = setNames(as.list(pop_awards$Freq), pop_awards$awards)
  ),
  logit_bounds = logit_bounds,
  jk_logit_bounds = jk_logit_bounds,
  trim = list(upper = trim_upper, lower = trim_lower),
  factors = list(clus1 = matrix(as.numeric(bclus1$repweights), nrow = nrow(clus1)), strat = matrix(as.numeric(bstrat$repweights), nrow = nrow(strat))),
  cases = cases
)
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE, null = "null"),
           "tests/r/weighting_reference.json")
cat("wrote tests/r/weighting_reference.json with", length(cases), "cases\n")
