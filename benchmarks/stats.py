"""Verdicts on throughput ratios from rounds paired by round (pure functions).

The live part measures the raw SDK and ChatVLLM back to back in each round, the order
alternating from round to round. Load from elsewhere on the machine moves both
measurements of a round alike, so the per-round ratio ChatVLLM / raw cancels most of
it; the rounds' ratios are then treated as independent samples of the true ratio.

The interval is t-based on the logarithms of the ratios (a ratio's noise is
multiplicative; the logs of 1.02 and 1/1.02 are symmetric), exponentiated back: a
confidence interval of the geometric mean ratio. The median of the ratios is reported
beside it. A round hit by a load spike widens the interval, which delays a verdict
(more rounds) rather than giving a wrong one.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

PASS = "PASS"
FAIL = "FAIL"
UNDECIDED = "undecided (need more rounds)"


def paired_round_ratios(
    reference: Sequence[float], other: Sequence[float]
) -> list[float]:
    """Per-round ratios other/reference (both measured in the same round)."""
    if len(reference) != len(other):
        msg = f"{len(other)} rounds against {len(reference)}: not paired by round"
        raise ValueError(msg)
    if any(r <= 0 for r in reference) or any(o <= 0 for o in other):
        msg = "throughputs must be positive to be compared as ratios"
        raise ValueError(msg)
    return [o / r for r, o in zip(reference, other, strict=True)]


def _t_two_sided_mass(t: float, df: int) -> float:
    """P(|T| < t) for Student's t with integer `df` (Abramowitz & Stegun 26.7.3-4)."""
    theta = math.atan(t / math.sqrt(df))
    cos2 = math.cos(theta) ** 2
    if df % 2:  # odd: 2/π (θ + sinθ cosθ (1 + 2/3 cos² + 2·4/(3·5) cos⁴ + ...))
        term, total = 1.0, 1.0 if df > 1 else 0.0
        for k in range(1, (df - 1) // 2):
            term *= 2 * k / (2 * k + 1) * cos2
            total += term
        return 2 / math.pi * (theta + math.sin(theta) * math.cos(theta) * total)
    term = total = 1.0  # even: sinθ (1 + 1/2 cos² + 1·3/(2·4) cos⁴ + ...)
    for k in range(1, df // 2):
        term *= (2 * k - 1) / (2 * k) * cos2
        total += term
    return math.sin(theta) * total


def t_quantile(confidence: float, df: int) -> float:
    """t such that P(|T| < t) = confidence, for Student's t with `df` ≥ 1 (exact)."""
    if not 0 < confidence < 1 or df < 1:
        msg = f"need 0 < confidence < 1 and df >= 1, got {confidence}, {df}"
        raise ValueError(msg)
    low, high = 0.0, 1.0
    while _t_two_sided_mass(high, df) < confidence:
        high *= 2
    for _ in range(100):  # bisection to float precision
        mid = (low + high) / 2
        if _t_two_sided_mass(mid, df) < confidence:
            low = mid
        else:
            high = mid
    return (low + high) / 2


@dataclass(frozen=True)
class RatioEstimate:
    """Paired per-round ratios and their interval."""

    ratios: tuple[float, ...]
    median: float
    """Median of the per-round ratios."""
    center: float
    """Geometric mean of the per-round ratios (the interval's center)."""
    low: float
    """Lower bound of the interval (0 with a single round: no interval)."""
    high: float
    """Upper bound of the interval (inf with a single round)."""
    confidence: float

    @property
    def rounds(self) -> int:
        return len(self.ratios)

    def verdict(self, target: float) -> str:
        """PASS if the whole interval is ≥ target, FAIL if all of it is below."""
        if self.low >= target:
            return PASS
        if self.high < target:
            return FAIL
        return UNDECIDED


def ratio_interval(ratios: Sequence[float], confidence: float = 0.95) -> RatioEstimate:
    """Median, geometric mean and t-based `confidence` interval of paired ratios."""
    if not ratios:
        msg = "no rounds to estimate a ratio from"
        raise ValueError(msg)
    logs = [math.log(r) for r in ratios]
    mean = statistics.fmean(logs)
    if len(logs) < 2:
        low, high = 0.0, math.inf
    else:
        half = t_quantile(confidence, len(logs) - 1) * statistics.stdev(logs)
        half /= math.sqrt(len(logs))
        low, high = math.exp(mean - half), math.exp(mean + half)
    return RatioEstimate(
        ratios=tuple(ratios),
        median=statistics.median(ratios),
        center=math.exp(mean),
        low=low,
        high=high,
        confidence=confidence,
    )


def needs_more_rounds(
    ratios: Sequence[float],
    target: float,
    *,
    min_rounds: int,
    max_rounds: int,
    confidence: float = 0.95,
) -> bool:
    """Whether a level should run another round: below the minimum, or undecided
    and still under the cap."""
    if len(ratios) < min_rounds:
        return True
    if len(ratios) >= max_rounds:
        return False
    return ratio_interval(ratios, confidence).verdict(target) == UNDECIDED
