"""Temperature schedules for contrastive losses on long-tailed data (Kukleva, Böhle, Schiele,
Kuehne, Rupprecht, ICLR 2023, "Temperature Schedules for Self-Supervised Contrastive Methods on
Long-Tail Data"): a high temperature stresses group-wise discrimination (what frequent classes
gain from), a low one instance discrimination (what rare classes need); a cosine between them
switches the task back and forth at no extra cost. A setting of SimCLR, MoCo v2 and the methods
built on SimCLR (`temperature_schedule`), so each keeps its loss and cache keys when unset."""

from __future__ import annotations

import math

from ..config import TemperatureScheduleConfig


def scheduled_temperature(
    schedule: TemperatureScheduleConfig | None, fixed: float, progress: float
) -> float:
    """The temperature at `progress` (the fraction of training done, stepped per batch):
    tau_min + (tau_max - tau_min) (1 + cos(2 pi progress / period)) / 2, starting at tau_max
    (the paper's Eq. with t / T = progress / period); `fixed` without a schedule.

    The paper's CIFAR run, 2000 epochs with T = 200 (period 0.1), at epochs 0, 50 and 100:
    >>> [round(scheduled_temperature(TemperatureScheduleConfig(), 0.2, e / 2000), 6)
    ...  for e in (0, 50, 100)]
    [1.0, 0.55, 0.1]
    """
    if schedule is None:
        return fixed
    cycle = (1.0 + math.cos(2.0 * math.pi * progress / schedule.period)) / 2.0
    return schedule.tau_min + (schedule.tau_max - schedule.tau_min) * cycle
