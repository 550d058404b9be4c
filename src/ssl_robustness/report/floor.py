"""The random-init floor rule, decided on rounded values so that a margin of exactly 3.0 points
falls on one side, whatever the floating-point noise of the accuracies it came from.

Fit for the confirmatory family is decided on the balanced arm alone: whether a method learned
anything when the data are balanced does not carry the outcome; an imbalanced arm at the floor
is a large loss, and it counts."""

from __future__ import annotations

import math

NEAR_FLOOR_POINTS = 3.0  # a representation within 3 points of random init learned ~nothing
NEAR_FLOOR = NEAR_FLOOR_POINTS / 100  # the same as a fraction of accuracy
ROUND_TO = 1  # decimals of a point: margins are compared as shown, to 0.1 points
NEAR_FLOOR_RULE = (
    f"a method (SSL or the SL comparator) enters the confirmatory family only if its balanced "
    f"arm beats the random-init floor by at least {NEAR_FLOOR_POINTS:.1f} points of the "
    f"verdict's metric, on average over seeds, rounded to 0.1 points; its imbalanced arm never "
    f"decides"
)


def margin_points(margin: float) -> float:
    """A margin over the floor (a fraction of accuracy) in points, rounded as shown."""
    return round(100 * margin, ROUND_TO)


def below_floor_margin(margin: float, points: float = NEAR_FLOOR_POINTS) -> bool:
    """True when `margin` (a fraction) is less than `points` once rounded to 0.1 points; NaN
    (no floor to compare with) is never below.

    >>> below_floor_margin(0.0299999999), below_floor_margin(0.03), below_floor_margin(0.0294)
    (False, False, True)
    """
    if margin is None or (isinstance(margin, float) and math.isnan(margin)):
        return False
    return margin_points(margin) < points
