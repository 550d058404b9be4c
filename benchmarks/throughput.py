"""Where the training time goes, against baselines measured in the same run.

    python benchmarks/throughput.py [--width 16] [--size 32] [--batch 256]
    python benchmarks/throughput.py --vs-plain [--data ../shared/data/cifar10_subset.npz]
    python benchmarks/throughput.py --malloc [--batch 128]

1. Augmentation: our batched per-sample pipeline vs a per-image torchvision.transforms.v2
   loop with the same operations (the seed project's approach).
2. Memory format: a training step's forward+backward in channels_last vs contiguous.
3. Each method's full training step (two views, heads, loss, optimizer) in images/s.

`--vs-plain` instead races our SimCLR step (`train_one_epoch` over the decode-once cache,
batched augmentation) against a plain loop (torchvision `ImageFolder` of JPEG files, PIL
two-view transforms, `DataLoader` with 2 workers, the same model, loss and optimizer) in
alternating short rounds (A B A B ...), and prints pairs/s and the median ratio: on a CPU
shared with other work, the load changes between rounds but hits both arms alike. Each arm
runs in a process of its own; `--plain-malloc kept` gives the plain loop our host malloc
setting (`engine/host_memory.py`). `--malloc` races our model's bare step (one fixed batch)
with that setting against glibc's defaults, and prints each arm's page faults per step.
"""

from __future__ import annotations

import argparse
import hashlib
import multiprocessing as mp
import os
import resource
import statistics
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, RandomSampler
from torchvision import transforms as T
from torchvision.datasets import ImageFolder
from torchvision.models.resnet import BasicBlock
from torchvision.transforms import v2

from ssl_robustness.config import (
    BackboneConfig,
    BYOLConfig,
    MocoV2Config,
    OptimizerConfig,
    SimCLRConfig,
    SimSiamConfig,
    SupervisedConfig,
    TrainConfig,
)
from ssl_robustness.engine.batches import ArrayBatches
from ssl_robustness.engine.device import make_scaler, prepare_model, to_memory_format
from ssl_robustness.engine.host_memory import ENV as HOST_MALLOC_ENV
from ssl_robustness.engine.host_memory import keep_freed_memory, keeps_freed_memory
from ssl_robustness.engine.loop import TrainState, fit, train_one_epoch
from ssl_robustness.engine.optim import build_optimizer, warmup_cosine
from ssl_robustness.methods import build_method
from ssl_robustness.methods.augment import augment
from ssl_robustness.methods.mocov2 import MOCOV2_VIEW
from ssl_robustness.methods.simclr import nt_xent
from ssl_robustness.models.backbones import ResNet, build_backbone

DEFAULT_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "cifar10_subset.npz"


def load_images(path: Path, n: int, size: int) -> np.ndarray:
    """`n` training images of the npz at `path` (random pixels where there is none)."""
    if path.exists():
        with np.load(path) as d:
            return np.ascontiguousarray(d["train_images"][:n])
    print(f"{path} not found: random pixels instead")
    return np.random.default_rng(0).integers(0, 255, (n, size, size, 3), dtype=np.uint8)


def write_jpeg_folder(images: np.ndarray, root: Path) -> None:
    """An ImageFolder tree of JPEG files, 10 classes, as a downloaded dataset would be."""
    for i, img in enumerate(images):
        folder = root / f"class{i % 10}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(folder / f"{i:05d}.jpg", quality=95)


class TwoViews:
    """The plain loop's two-view transform: SimCLR's augmentations on PIL images."""

    def __init__(self, size: int) -> None:
        self.t = T.Compose(
            [
                T.RandomResizedCrop(size, scale=(0.08, 1.0)),
                T.RandomHorizontalFlip(),
                T.RandomApply([T.ColorJitter(0.8, 0.8, 0.8, 0.2)], p=0.8),
                T.RandomGrayscale(0.2),
                T.ToTensor(),
                T.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
            ]
        )

    def __call__(self, img):  # noqa: ANN001, ANN204
        return self.t(img), self.t(img)


def simclr_method(arch: str, width: int, size: int) -> torch.nn.Module:
    torch.manual_seed(0)
    labels = np.arange(10)
    return build_method(
        SimCLRConfig(),
        build_backbone(BackboneConfig(name=arch, width=width), size),
        num_classes=10,
        class_counts=np.bincount(labels),
        train_size=len(labels),
    )


def bench_state(model: torch.nn.Module, device: torch.device, cfg: TrainConfig) -> TrainState:
    """What `fit` builds around a prepared model (optimizer, scheduler, scaler, batch order and
    a CPU augmentation generator, as `augment` draws on CPU), to time `train_one_epoch` alone:
    no checkpoint, no warm-up, a cosine too long to move the lr. gpu_step.py uses it too."""
    opt = build_optimizer(model.param_groups(), cfg.optimizer, cfg.optimizer.lr)
    return TrainState(
        model,
        opt,
        warmup_cosine(opt, 0, 10**6),
        make_scaler(device),
        np.random.default_rng(0),
        torch.Generator().manual_seed(0),
    )


class OursArm:
    """Our step: `train_one_epoch` over `steps` batches of the decoded uint8 cache."""

    def __init__(self, images: np.ndarray, args: argparse.Namespace, cfg: TrainConfig) -> None:
        cpu = torch.device("cpu")
        model = prepare_model(simclr_method(args.arch, args.width, args.size), cpu)
        self.state = bench_state(model, cpu, cfg)
        self.images, self.cfg, self.args, self.epoch = images, cfg, args, 0
        self.labels = np.arange(len(images)) % 10

    def round(self, steps: int) -> float:
        b = self.args.batch
        idx = np.random.default_rng(self.epoch).permutation(len(self.images))[: steps * b]
        batches = ArrayBatches(self.images, self.labels, idx, b, torch.device("cpu"))
        t0 = time.perf_counter()
        train_one_epoch(self.state, self.state.model, batches, self.cfg, 0, None, "ours")
        self.epoch += 1
        return time.perf_counter() - t0


def simclr_step(model: torch.nn.Module, opt: torch.optim.Optimizer, views: torch.Tensor) -> None:
    """One SimCLR step written out by hand (both views stacked in `views`), as a plain loop
    would: the plain and the bare arm's step."""
    model.train()
    z1, z2 = model.projector(model.backbone(views)).chunk(2)  # type: ignore[operator]
    loss = nt_xent(z1, z2, model.temperature)  # type: ignore[arg-type]
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


class PlainArm:
    """The plain loop: ImageFolder of JPEGs, PIL two views in DataLoader workers, the same
    model (default contiguous layout), loss and optimizer; workers persist across rounds."""

    def __init__(self, root: Path, args: argparse.Namespace, cfg: TrainConfig) -> None:
        self.model = simclr_method(args.arch, args.width, args.size)
        self.opt = build_optimizer(self.model.param_groups(), cfg.optimizer, cfg.optimizer.lr)
        data = ImageFolder(str(root), transform=TwoViews(args.size))
        n = (args.rounds + 1) * args.steps * args.batch
        sampler = RandomSampler(data, num_samples=n, generator=torch.Generator().manual_seed(0))
        loader = DataLoader(
            data,
            batch_size=args.batch,
            sampler=sampler,
            num_workers=args.workers,
            drop_last=True,
            persistent_workers=args.workers > 0,
        )
        self.it = iter(loader)

    def round(self, steps: int) -> float:
        t0 = time.perf_counter()
        for _ in range(steps):
            (v1, v2), _labels = next(self.it)
            simclr_step(self.model, self.opt, torch.cat([v1, v2]))
        return time.perf_counter() - t0


def cpu_seconds() -> float:
    """CPU time of this process and its live children (the plain loop's workers): less
    sensitive than wall time to other work on a shared machine. NaN without psutil."""
    try:
        import psutil
    except ImportError:
        return float("nan")
    me = psutil.Process()
    procs = [me, *me.children(recursive=True)]
    total = 0.0
    for proc in procs:
        try:
            t = proc.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += t.user + t.system
    return total


class BareArm:
    """Our SimCLR model's forward+backward+step on one fixed batch: no data, no loop, to
    weigh the host malloc setting alone (`--malloc`)."""

    def __init__(self, args: argparse.Namespace, cfg: TrainConfig) -> None:
        cpu = torch.device("cpu")
        self.model = prepare_model(simclr_method(args.arch, args.width, args.size), cpu)
        self.opt = build_optimizer(self.model.param_groups(), cfg.optimizer, cfg.optimizer.lr)
        x = torch.randn(2 * args.batch, 3, args.size, args.size, generator=torch.Generator())
        self.x = to_memory_format(x)

    def round(self, steps: int) -> float:
        t0 = time.perf_counter()
        for _ in range(steps):
            simclr_step(self.model, self.opt, self.x)
        return time.perf_counter() - t0


Arm = OursArm | PlainArm | BareArm


def timed_round(arm: Arm, steps: int) -> tuple[float, float, float]:
    """(wall seconds, CPU seconds, minor page faults of the training process per step)."""
    cpu0, faults0 = cpu_seconds(), resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    wall = arm.round(steps)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults0
    return wall, cpu_seconds() - cpu0, faults / steps


def weights_digest(model: torch.nn.Module) -> str:
    """sha256 of every parameter's bytes: two arms that did the same steps on the same batch
    show whether they computed the same bits."""
    h = hashlib.sha256()
    for p in model.parameters():
        h.update(p.detach().contiguous().numpy().tobytes())
    return h.hexdigest()


def arm_process(kind: str, conn: Connection, images: np.ndarray, args: argparse.Namespace) -> None:
    """One arm in a process of its own (malloc settings are per process): build it, warm it
    up (allocator, oneDNN kernels, worker start), then time one round per request. Replies
    "ready" with whether glibc's malloc keeps freed memory here, and at the end the weights'
    digest (bare arms only)."""
    cfg = TrainConfig(epochs=1, batch_size=args.batch, log_every=10**6)
    if kind.endswith("default"):  # glibc's malloc as it comes, whatever the parent's setting
        os.environ[HOST_MALLOC_ENV] = "default"
    else:
        os.environ.pop(HOST_MALLOC_ENV, None)
    if kind == "plain-kept":  # the plain loop never prepares a model: set it here
        keep_freed_memory()
    with tempfile.TemporaryDirectory() as tmp:
        arm: Arm
        if kind == "ours":
            arm = OursArm(images, args, cfg)
        elif kind.startswith("plain"):
            write_jpeg_folder(images, Path(tmp))
            arm = PlainArm(Path(tmp), args, cfg)
        else:
            arm = BareArm(args, cfg)
        arm.round(1)
        conn.send(("ready", keeps_freed_memory()))
        while (steps := conn.recv()) is not None:
            conn.send(timed_round(arm, steps))
        conn.send(weights_digest(arm.model) if isinstance(arm, BareArm) else None)


def receive(conn: Connection, proc: mp.Process) -> Any:
    """The arm's next reply; an error (not a hang) if its process died."""
    while not conn.poll(1.0):
        if not proc.is_alive():
            raise RuntimeError(f"an arm's process ended (exit code {proc.exitcode}); see above")
    return conn.recv()


def race(args: argparse.Namespace, arms: dict[str, str]) -> None:
    """Two arms (name -> kind) in alternating rounds after one warm-up round each: per round
    and median pairs/s, CPU seconds, page faults, and the first arm's speed-up."""
    n = (args.rounds + 1) * args.steps * args.batch
    images = load_images(args.data, n, args.size)
    args.size = images.shape[1]
    width = f" (width {args.width})" if args.arch == "resnet_tiny" else ""
    print(
        f"SimCLR, {args.arch}{width} at {args.size} px, batch {args.batch}: "
        f"{args.rounds} rounds of {args.steps} steps per arm, {torch.get_num_threads()} threads; "
        + ", ".join(f"{name} = {kind}" for name, kind in arms.items())
    )
    ctx = mp.get_context("spawn")
    conns: dict[str, tuple[Connection, Any]] = {}
    for name, kind in arms.items():
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=arm_process, args=(kind, child, images, args))
        proc.start()
        child.close()  # the arm holds the only other end: its death ends the pipe
        _, kept = receive(parent, proc)  # one arm warms up at a time
        print(f"{name}: glibc malloc {'keeps freed memory' if kept else 'as it comes'}")
        conns[name] = (parent, proc)
    rounds: dict[str, list[tuple[float, float, float]]] = {k: [] for k in conns}
    pairs = args.steps * args.batch
    a, b = conns
    for r in range(args.rounds):
        for name, (conn, proc) in conns.items():
            conn.send(args.steps)
            rounds[name].append(receive(conn, proc))
        (wa, ca, fa), (wb, cb, fb) = rounds[a][-1], rounds[b][-1]
        print(
            f"round {r + 1}: {a} {pairs / wa:6.1f} pairs/s, {b} {pairs / wb:6.1f} pairs/s -> "
            f"{wb / wa:.2f}x (CPU s: {a} {ca:.1f}, {b} {cb:.1f}; page faults/step of the "
            f"training process: {a} {fa:,.0f}, {b} {fb:,.0f})",
            flush=True,
        )
    digests = []
    for conn, proc in conns.values():
        conn.send(None)
        digests.append(receive(conn, proc))
        proc.join()
    if None not in digests:
        same = "identical" if digests[0] == digests[1] else "DIFFERENT"
        print(f"weights after the same {1 + args.rounds * args.steps} steps: {same} in both arms")
    wall = {k: [w for w, _, _ in v] for k, v in rounds.items()}
    ratios = [wb / wa for wa, wb in zip(wall[a], wall[b], strict=True)]
    cpu_ratios = [rb[1] / ra[1] for ra, rb in zip(rounds[a], rounds[b], strict=True)]
    med = {k: pairs / statistics.median(v) for k, v in wall.items()}
    print(
        f"median: {a} {med[a]:.1f} pairs/s, {b} {med[b]:.1f} pairs/s; "
        f"median per-round ratio {statistics.median(ratios):.2f}x wall, "
        f"{statistics.median(cpu_ratios):.2f}x CPU time"
    )
    best = {k: pairs / min(v) for k, v in wall.items()}
    print(
        f"best round (least disturbed, as timeit reports): {a} {best[a]:.1f} pairs/s, "
        f"{b} {best[b]:.1f} pairs/s -> {best[a] / best[b]:.2f}x"
    )


def timed(fn, repeat: int = 3) -> float:
    fn()
    t0 = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - t0) / repeat


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--vs-plain", action="store_true", help="our step vs the plain loop only")
    ap.add_argument(
        "--malloc",
        action="store_true",
        help="our model's bare step with glibc's malloc kept (ours) vs its defaults only",
    )
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="npz with train_images")
    ap.add_argument("--arch", default="resnet18", help="--vs-plain backbone (resnet_tiny: --width)")
    ap.add_argument("--rounds", type=int, default=5, help="--vs-plain rounds per arm")
    ap.add_argument("--steps", type=int, default=2, help="--vs-plain steps per round")
    ap.add_argument("--workers", type=int, default=2, help="the plain loop's DataLoader workers")
    ap.add_argument(
        "--plain-malloc",
        choices=("default", "kept"),
        default="default",
        help="the plain loop's glibc malloc: its defaults, or ours (engine/host_memory.py)",
    )
    args = ap.parse_args()
    if args.vs_plain:
        race(args, {"ours": "ours", "plain": f"plain-{args.plain_malloc}"})
        return
    if args.malloc:
        race(args, {"kept": "bare-kept", "default": "bare-default"})
        return
    b, s = args.batch, args.size
    images = torch.randint(0, 255, (b, s, s, 3), dtype=torch.uint8)
    g = torch.Generator().manual_seed(0)

    loop = v2.Compose(
        [
            v2.RandomResizedCrop(s, scale=(0.2, 1.0), antialias=True),
            v2.RandomHorizontalFlip(),
            v2.RandomApply([v2.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8),
            v2.RandomGrayscale(0.2),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
        ]
    )
    chw = images.permute(0, 3, 1, 2)
    t_loop = timed(lambda: torch.stack([loop(img) for img in chw]))
    t_ours = timed(lambda: augment(images, MOCOV2_VIEW, g))
    print(
        f"augmentation, {b} images at {s} px: per-image v2 loop {b / t_loop:8.0f} img/s, "
        f"batched {b / t_ours:8.0f} img/s  -> {t_loop / t_ours:.1f}x"
    )

    def step(model, x):
        model(x).sum().backward()

    x = torch.randn(2 * b, 3, s, s)
    plain = ResNet(BasicBlock, [1, 1, 1, 1], args.width, small_stem=s <= 64)
    t_plain = timed(lambda: step(plain, x))
    cl = ResNet(BasicBlock, [1, 1, 1, 1], args.width, small_stem=s <= 64).to(
        memory_format=torch.channels_last
    )
    xcl = x.contiguous(memory_format=torch.channels_last)
    t_cl = timed(lambda: step(cl, xcl))
    print(
        f"forward+backward, {2 * b} images: contiguous {2 * b / t_plain:6.0f} img/s, "
        f"channels_last {2 * b / t_cl:6.0f} img/s  -> {t_plain / t_cl:.2f}x"
    )

    data = np.random.default_rng(0).integers(0, 255, (4 * b, s, s, 3), dtype=np.uint8)
    labels = np.arange(4 * b) % 10
    cpu = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    for cfg in (SupervisedConfig(), MocoV2Config(), SimSiamConfig(), SimCLRConfig(), BYOLConfig()):
        torch.manual_seed(0)
        method = build_method(
            cfg,
            ResNet(BasicBlock, [1, 1, 1, 1], args.width, s <= 64),
            num_classes=10,
            class_counts=np.bincount(labels),
            train_size=len(labels),
        )
        batches = ArrayBatches(data, labels, np.arange(len(labels)), b, cpu)
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            fit(
                method,
                batches,
                TrainConfig(
                    epochs=2, batch_size=b, checkpoint_every=100, optimizer=OptimizerConfig(lr=0.01)
                ),
                Path(tmp),
                seed=0,
            )
            dt = time.perf_counter() - t0
        print(
            f"{cfg.name:10s} training: {2 * len(labels) / dt:6.0f} images/s "
            f"(2 epochs of {len(labels)}, batch {b}, incl. checkpoint)"
        )


if __name__ == "__main__":
    main()
