"""What a paired t-test over seeds could have seen: the minimum detectable effect, the seeds a
difference of a named size needs, and the two one-sided tests (TOST) of equivalence.

"No detectable difference" from five seeds is not "no difference": beside it stands the
smallest mean difference the test had 80% power to detect, from the non-central t
distribution. Power is planned from a spread, never computed for the test just made
("observed power" is a function of its p and says nothing new). Pure numbers on floats."""

from __future__ import annotations

import math

from scipy import optimize, stats

POWER = 0.8
MAX_SEEDS = 1000  # seeds_needed gives up beyond this


def power(n: int, effect: float, sd: float, alpha: float) -> float:
    """Power of the two-sided paired t-test of mean 0 at `alpha` with `n` pairs, when the true
    mean difference is `effect` and the differences' sd is `sd`.

    >>> round(power(5, 1.0, 1.0, 0.05), 3)
    0.401
    """
    if n < 2 or sd <= 0 or not math.isfinite(sd):
        return math.nan
    df = n - 1
    crit = stats.t.ppf(1 - alpha / 2, df)
    nc = abs(effect) * math.sqrt(n) / sd
    upper = float(stats.nct.sf(crit, df, nc))
    lower = float(stats.nct.cdf(-crit, df, nc))  # the wrong-sign tail: NaN where it underflows
    return (upper if math.isfinite(upper) else 1.0) + (lower if math.isfinite(lower) else 0.0)


def min_detectable_effect(n: int, sd: float, alpha: float, target: float = POWER) -> float:
    """The smallest true mean difference the test detects with power `target` (same units as
    `sd`); NaN below two pairs or without spread.

    >>> round(min_detectable_effect(5, 1.0, 0.05), 3)
    1.682
    """
    if n < 2 or not math.isfinite(sd) or sd <= 0:
        return math.nan
    f = lambda e: power(n, e, sd, alpha) - target  # noqa: E731
    high = sd
    while f(high) < 0:
        high *= 2
        if high > 1e6 * sd:
            return math.nan
    return float(optimize.brentq(f, 0.0, high, xtol=1e-9 * sd))


def sd_upper(sd: float, n: int, level: float = 0.95) -> float:
    """One-sided upper confidence bound of a standard deviation estimated from `n` values
    (chi-square): five seeds estimate a spread poorly, so plans quote this beside it.

    >>> round(sd_upper(1.0, 5), 3)
    2.372
    """
    if n < 2 or not math.isfinite(sd):
        return math.nan
    return float(sd * math.sqrt((n - 1) / stats.chi2.ppf(1 - level, n - 1)))


def seeds_needed(effect: float, sd: float, alpha: float, target: float = POWER) -> int | None:
    """The fewest seeds (paired) whose test detects `effect` with power `target`, given the
    differences' spread `sd`; None past MAX_SEEDS or without a spread.

    >>> seeds_needed(1.0, 1.0, 0.05)
    10
    """
    if not math.isfinite(sd) or sd <= 0 or effect <= 0:
        return None
    for n in range(2, MAX_SEEDS + 1):
        if power(n, effect, sd, alpha) >= target:
            return n
    return None


def tost_p(mean: float, sd: float, n: int, margin: float) -> float:
    """p of the paired two one-sided tests that the true mean lies within ±`margin`: the larger
    of the two one-sided p-values (equivalence is shown when it is below alpha).

    >>> round(tost_p(0.0, 1.0, 10, 1.0), 4)
    0.0058
    """
    if n < 2 or not math.isfinite(sd) or sd <= 0 or margin <= 0:
        return math.nan
    se = sd / math.sqrt(n)
    df = n - 1
    lower = stats.t.sf((mean + margin) / se, df)  # H0: mean <= -margin
    upper = stats.t.cdf((mean - margin) / se, df)  # H0: mean >= +margin
    return float(max(lower, upper))
