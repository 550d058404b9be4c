"""Make a folder of images shaped like what users bring from nature (issue 31's proof).

Per class (scikit-learn's bundled digits as the "animals", so no download): many short video
tracks and a few long ones, each track the frames of one sighting (one base image, moved by a
pixel or two, re-exposed, with sensor noise); some animals sighted twice (two tracks of one
base image: near-duplicates across tracks); class sizes long-tailed. Two layouts:

- `carved/<class>/track<id>_frame<k>.png`: no official split; the tool carves val and test.
- `official/train/<class>/...` and `official/test/<class>/...`: an official test split of its
  own tracks, with training-side copies of some test images (one exact, one shifted by a pixel
  per class), as published datasets have them.

`OUT_DIR/animals.csv` records which animal every file shows (the truth a near-duplicate finder
is scored against: `score_duplicates.py`).

    python examples/natural_demo/make_data.py OUT_DIR
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.datasets import load_digits

SIDE = 24  # pixels of a saved frame
CLASSES = 10
LONG_TRACKS = 3  # per class, 12-20 frames each
SHORT_TRACKS = [40, 32, 25, 20, 16, 13, 11, 10, 9, 8]  # per class: the long tail, 1-4 frames each
RESIGHTED = 0.1  # share of short tracks that re-sight an animal already seen in another track
TEST_TRACKS = 6  # official layout: test tracks per class, 1 frame each


def _frame(base: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One frame of a track: the base image shifted by up to 1 px, re-exposed, noisy."""
    dy, dx = rng.integers(-1, 2, 2)
    moved = np.roll(np.roll(base, dy, axis=0), dx, axis=1)
    gain, offset = rng.uniform(0.9, 1.1), rng.uniform(-8, 8)
    noisy = moved * gain + offset + rng.normal(0, 3, moved.shape)
    return np.clip(noisy, 0, 255).astype(np.uint8)


def _bases() -> dict[int, list[np.ndarray]]:
    """Per digit class, its images upscaled to SIDE px grey-on-colour (one animal each)."""
    digits = load_digits()
    out: dict[int, list[np.ndarray]] = {c: [] for c in range(CLASSES)}
    for img, y in zip(digits.images, digits.target, strict=True):
        grey = Image.fromarray((img * 255 / 16).astype(np.uint8)).resize((SIDE, SIDE))
        g = np.asarray(grey, dtype=np.float64)
        colour = np.stack([g, 0.6 * g + 40, 255 - 0.5 * g], axis=-1)  # not plain grey
        out[int(y)].append(colour)
    return out


def _write(path: Path, pixels: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)


def _tracks(
    c: int, bases: list[np.ndarray], rng: np.random.Generator
) -> list[tuple[int, list[np.ndarray]]]:
    """Class c's tracks, each (its animal's index in `bases`, its frames): LONG_TRACKS long,
    SHORT_TRACKS[c] short, some re-sightings."""
    order = rng.permutation(len(bases))
    n_short = SHORT_TRACKS[c]
    lengths = [int(rng.integers(12, 21)) for _ in range(LONG_TRACKS)]
    lengths += [int(rng.integers(1, 5)) for _ in range(n_short)]
    tracks, used = [], 0
    for t, length in enumerate(lengths):
        if t >= LONG_TRACKS and used > 0 and rng.random() < RESIGHTED:
            animal = int(order[int(rng.integers(0, used))])  # seen before, another track
        else:
            animal, used = int(order[used]), used + 1
        tracks.append((animal, [_frame(bases[animal], rng) for _ in range(length)]))
    return tracks


def make(out: Path, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    bases = _bases()
    track_id = 0
    shows: list[tuple[str, int, int]] = []  # file (as class/track...), class, animal
    for c in range(CLASSES):
        name = f"class_{c}"
        tracks = _tracks(c, bases[c][:-TEST_TRACKS], rng)
        for animal, frames in tracks:
            for k, px in enumerate(frames):
                _write(out / "carved" / name / f"track{track_id:04d}_frame{k:02d}.png", px)
                _write(out / "official/train" / name / f"track{track_id:04d}_frame{k:02d}.png", px)
                shows.append((f"{name}/track{track_id:04d}_frame{k:02d}.png", c, animal))
            track_id += 1
        first_test = len(bases[c]) - TEST_TRACKS
        for t, base in enumerate(bases[c][-TEST_TRACKS:]):  # official test: unseen animals
            px = _frame(base, rng)
            _write(out / "official/test" / name / f"track{track_id:04d}_frame00.png", px)
            shows.append((f"{name}/track{track_id:04d}_frame00.png", c, first_test + t))
            if t == 0:  # an exact training-side copy of a test image
                _write(out / "official/train" / name / f"track{track_id:04d}_copy.png", px)
                shows.append((f"{name}/track{track_id:04d}_copy.png", c, first_test + t))
            if t == 1:  # a copy shifted by a pixel and re-exposed
                shifted = np.clip(np.roll(px.astype(int), 1, axis=1) + 3, 0, 255)
                _write(
                    out / "official/train" / name / f"track{track_id:04d}_shift.png",
                    shifted.astype(np.uint8),
                )
                shows.append((f"{name}/track{track_id:04d}_shift.png", c, first_test + t))
            track_id += 1
    lines = ["file,class,animal", *(f"{f},{c},{a}" for f, c, a in shows)]
    (out / "animals.csv").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    make(Path(sys.argv[1]))
