"""Temperature schedules for contrastive losses on long-tailed data (Kukleva, Böhle, Schiele,
Kuehne, Rupprecht, ICLR 2023, "Temperature Schedules for Self-Supervised Contrastive Methods on
Long-Tail Data"): a high temperature stresses group-wise discrimination (what frequent classes
gain from), a low one instance discrimination (what rare classes need); a cosine between them
switches the task back and forth at no extra cost. A setting of SimCLR, MoCo v2 and the methods
built on SimCLR (`temperature_schedule`), so each keeps its loss and cache keys when unset.

As the authors' released code runs it (Annusha/temperature_schedules, train_simCLR.py): the
temperature is set once per epoch, at epoch e = 1, 2, ... (1-based), to
tau_min + (tau_max - tau_min) (1 + cos(pi e / t_max)) / 2 with t_max = 200: tau_min at epoch
200, tau_max again at 400, a full cycle every 400 epochs (5 in the README's 2000 CIFAR epochs).
The paper's text writes cos(2 pi t / T) with T = 200, twice as many cycles; the code is followed.
Here the cycle is a fraction of the run (`period`, 400 / 2000 = 0.2), so a 30-epoch run keeps
the authors' 5 cycles (6 epochs each), and e / t_max = 2 (e / E) / period for a run of E epochs.
"""

from __future__ import annotations

import math

from ..config import TemperatureScheduleConfig


def scheduled_temperature(
    schedule: TemperatureScheduleConfig | None, fixed: float, epoch: int, epochs: int
) -> float:
    """The temperature of the whole of 0-based `epoch` of `epochs`:
    tau_min + (tau_max - tau_min) (1 + cos(2 pi ((epoch + 1) / epochs) / period)) / 2, the
    released formula at its 1-based epoch e = epoch + 1 (module doc); `fixed` without a schedule.

    The authors' CIFAR run (2000 epochs, t_max 200), at their epochs 1, 100, 200, 400 and 600:
    >>> [round(scheduled_temperature(TemperatureScheduleConfig(), 0.2, e - 1, 2000), 6)
    ...  for e in (1, 100, 200, 400, 600)]
    [0.999944, 0.55, 0.1, 1.0, 0.1]
    """
    if schedule is None:
        return fixed
    done = (epoch + 1) / epochs  # the released code's epoch counts from 1
    cycle = (1.0 + math.cos(2.0 * math.pi * done / schedule.period)) / 2.0
    return schedule.tau_min + (schedule.tau_max - schedule.tau_min) * cycle
