"""CPU threading settings raced on idle cores and beside competing processes.

    python benchmarks/threads.py [--arch resnet_tiny --width 16 --batch 256] [--rounds 3]
    python benchmarks/threads.py --arch resnet18 --batch 128 --steps 2

Each measurement is a fresh process (OpenMP reads its settings once, when torch starts) that
times the same forward + backward + SGD step of a fixed batch (channels_last, our host malloc
setting, as a study's CPU step runs) after a warm-up, and prints images/s. The arms:

- `torch default`: no OMP_*/GOMP_* variables, torch's threading as it comes;
- `ours`: what `ssl-robustness` chooses (`cpu_threads.choose_cpu_threads`, before torch:
  sleeping waiters where other threads are runnable as it starts, else torch's default);
- `PASSIVE`: OMP_WAIT_POLICY=PASSIVE (waiters sleep at once); `spin 10k`/`spin 100k`:
  GOMP_SPINCOUNT (waiters spin that many times, then sleep; libgomp's default is 300k);
  `1 thread`: OMP_NUM_THREADS=1.

Conditions: `idle`, then `busy-N` with N single-threaded busy-loop processes that this script
starts and stops. Rounds alternate the arms (A B C D, then rotated), so a load that changes
between rounds hits every arm alike; the table gives each arm's median images/s and its ratio
to torch's default in the same condition, and to the best arm idle.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

SETTINGS: dict[str, dict[str, str]] = {
    "torch default": {},
    "ours": {},  # the child calls choose_cpu_threads itself
    "PASSIVE": {"OMP_WAIT_POLICY": "PASSIVE"},
    "spin 10k": {"GOMP_SPINCOUNT": "10000"},
    "spin 100k": {"GOMP_SPINCOUNT": "100000"},
    "1 thread": {"OMP_NUM_THREADS": "1"},
}
CLEARED = (
    "OMP_WAIT_POLICY",
    "GOMP_SPINCOUNT",
    "KMP_BLOCKTIME",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
)

CHILD = r"""
import json, statistics, sys, time
args = json.loads(sys.argv[1])
if args["ours"]:
    from ssl_robustness.cpu_threads import choose_cpu_threads
    choose_cpu_threads()
import torch
from ssl_robustness.config import BackboneConfig
from ssl_robustness.engine.device import prepare_model, to_memory_format
from ssl_robustness.models.backbones import build_backbone
torch.manual_seed(0)
backbone = build_backbone(BackboneConfig(name=args["arch"], width=args["width"]), args["size"])
head = torch.nn.Linear(backbone.feature_dim, 10)
model = prepare_model(torch.nn.Sequential(backbone, head), torch.device("cpu"))
x = to_memory_format(torch.randn(args["batch"], 3, args["size"], args["size"]))
y = torch.randint(0, 10, (args["batch"],))
model(x)
opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
def step():
    t = time.perf_counter()
    opt.zero_grad(set_to_none=True)
    torch.nn.functional.cross_entropy(model(x), y).backward()
    opt.step()
    return time.perf_counter() - t
for _ in range(args["warmup"]):
    step()
times = [step() for _ in range(args["steps"])]
print(json.dumps({"images_per_s": args["batch"] / statistics.median(times),
                  "threads": torch.get_num_threads()}))
"""


def measure(name: str, args: argparse.Namespace) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in CLEARED}
    env.update(SETTINGS[name])
    spec = {
        "ours": name == "ours",
        "arch": args.arch,
        "width": args.width,
        "size": args.size,
        "batch": args.batch,
        "warmup": args.warmup,
        "steps": args.steps,
    }
    out = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(spec)],
        env=env,
        capture_output=True,
        text=True,
    )
    if out.returncode:
        raise SystemExit(f"the {name!r} arm failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def start_competitors(n: int) -> list[subprocess.Popen]:
    loop = "import time\nend = time.time() + 3600\nwhile time.time() < end: pass"
    return [subprocess.Popen([sys.executable, "-c", loop]) for _ in range(n)]


def race(condition: str, competitors: int, args: argparse.Namespace) -> dict[str, list[float]]:
    names = [n for n in SETTINGS if n in args.arms]
    speeds: dict[str, list[float]] = {n: [] for n in names}
    procs = start_competitors(competitors)
    try:
        # the competitors run a while first, as other work does when a study starts
        time.sleep(args.settle if competitors else 0)
        for r in range(args.rounds):
            for name in names[r % len(names) :] + names[: r % len(names)]:
                got = measure(name, args)
                speeds[name].append(got["images_per_s"])
                print(
                    f"  {condition:8s} round {r + 1}: {name:14s} {got['images_per_s']:8.1f} "
                    f"images/s ({got['threads']} thread(s))",
                    flush=True,
                )
    finally:
        for p in procs:
            p.kill()
            p.wait()
    return speeds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="resnet_tiny")
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--busy", type=int, nargs="*", default=[1, 2], help="competitor counts")
    ap.add_argument("--settle", type=float, default=2.0, help="seconds competitors run first")
    ap.add_argument("--arms", nargs="*", default=list(SETTINGS), help="which settings to race")
    args = ap.parse_args()
    print(
        f"{args.arch} width {args.width}, {args.size} px, batch {args.batch}; "
        f"{os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.2f} at the start",
        flush=True,
    )
    table = {"idle": race("idle", 0, args)}
    for n in args.busy:
        table[f"busy-{n}"] = race(f"busy-{n}", n, args)
    best_idle = max(statistics.median(v) for v in table["idle"].values())
    print(f"\nmedian images/s over {args.rounds} rounds; ratio to torch's default, to best idle")
    arms = [n for n in SETTINGS if n in args.arms]
    print(f"{'condition':10s} " + " ".join(f"{n:>24s}" for n in arms))
    for cond, speeds in table.items():
        base = statistics.median(speeds["torch default"])
        cells = []
        for n in arms:
            m = statistics.median(speeds[n])
            cells.append(f"{m:8.1f} {m / base:5.2f}x {m / best_idle:5.0%}")
        print(f"{cond:10s} " + " ".join(f"{c:>24s}" for c in cells))


if __name__ == "__main__":
    main()
