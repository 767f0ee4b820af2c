"""Statistics the report prints beside every rate."""
from __future__ import annotations

import math
from dataclasses import dataclass

#: the normal quantile for a two-sided 95% interval
Z95 = 1.959963984540054


@dataclass(frozen=True)
class Rate:
    """``numerator`` out of ``denominator``, with its 95% Wilson score interval."""

    numerator: int
    denominator: int

    @property
    def value(self) -> float | None:
        return self.numerator / self.denominator if self.denominator else None

    @property
    def interval(self) -> tuple[float, float] | None:
        return wilson(self.numerator, self.denominator)

    def as_dict(self) -> dict:
        low_high = self.interval
        return {"numerator": self.numerator, "denominator": self.denominator, "value": self.value,
                "ci95": list(low_high) if low_high else None}


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float] | None:
    """The Wilson score interval for a proportion (better than the normal approximation
    for small groups and rates near 0 or 1); None when there is nobody to count."""
    if n <= 0:
        return None
    if not 0 <= successes <= n:
        raise ValueError(f"{successes} successes out of {n}")
    p = successes / n
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return max(0.0, centre - half), min(1.0, centre + half)
