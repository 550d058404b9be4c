"""Each image decodes to the RGB picture it shows, and bad images are tracked by index."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import write_image
from ssl_robustness.data.listing.labelled import LabelledSet
from ssl_robustness.data.sources.folder import load_folder
from ssl_robustness.data.store.images import BadImage, build_image_cache, decode_image
from ssl_robustness.errors import UserError

WHITE = [255, 255, 255]


def _save(img: Image.Image, path: Path, **kw) -> Path:
    img.save(path, **kw)
    return path


def test_16bit_grey_png_is_scaled_not_clipped_to_white(tmp_path):
    arr = np.array([[0, 257 * 100], [40000, 65535]], dtype=np.uint16).repeat(4, 0).repeat(4, 1)
    path = _save(Image.fromarray(arr), tmp_path / "deep.png")
    assert Image.open(path).mode == "I;16"
    out = decode_image(path, 8)
    # round(v / 257): 0, 100, 156, 255 in the four quadrants, the same in every channel
    assert out[1, 1].tolist() == [0, 0, 0]
    assert out[1, 6].tolist() == [100, 100, 100]
    assert out[6, 1].tolist() == [156, 156, 156]
    assert out[6, 6].tolist() == WHITE


def test_32bit_int_grey_is_read_as_16bit_range(tmp_path):
    img = Image.fromarray(np.full((8, 8), 257 * 30, dtype=np.int32), "I")
    path = _save(img, tmp_path / "deep.tif")
    assert (decode_image(path, 8) == 30).all()


def test_exif_orientation_is_applied_before_resizing(tmp_path):
    # stored 16 wide x 8 high: left half red, right half blue; orientation 6 = rotate 90 CW
    arr = np.zeros((8, 16, 3), np.uint8)
    arr[:, :8] = [255, 0, 0]
    arr[:, 8:] = [0, 0, 255]
    exif = Image.Exif()
    exif[0x0112] = 6
    path = _save(Image.fromarray(arr), tmp_path / "rot.png", exif=exif)
    out = decode_image(path, 8).astype(int)
    # shown 8 wide x 16 high, red on top: the centre crop is red above, blue below
    assert out[:4].reshape(-1, 3).tolist() == [[255, 0, 0]] * 32
    assert out[4:].reshape(-1, 3).tolist() == [[0, 0, 255]] * 32


def test_exif_orientation_of_a_jpeg(tmp_path):
    arr = np.zeros((16, 16, 3), np.uint8)
    arr[:8] = [255, 0, 0]  # top red, bottom blue; orientation 3 = rotate 180
    arr[8:] = [0, 0, 255]
    exif = Image.Exif()
    exif[0x0112] = 3
    path = _save(Image.fromarray(arr), tmp_path / "rot.jpg", exif=exif, quality=95)
    out = decode_image(path, 16).astype(int)
    assert np.abs(out[2, 8] - [0, 0, 255]).max() < 30  # now blue on top
    assert np.abs(out[13, 8] - [255, 0, 0]).max() < 30


def test_cmyk_converts_to_the_rgb_it_shows(tmp_path):
    img = Image.new("CMYK", (8, 8), (100, 50, 0, 60))
    img.paste((255, 0, 0, 0), (0, 0, 4, 8))  # pure cyan on the left
    path = _save(img, tmp_path / "cmyk.tif")
    out = decode_image(path, 8)
    assert out[3, 1].tolist() == [0, 255, 255]
    # (255 - c) * (255 - k) / 255 per channel: 118.5, 156.8, 195
    assert out[3, 6].tolist() == [119, 157, 195]


def test_palette_with_transparency_is_composited_on_white(tmp_path):
    img = Image.new("P", (8, 8), 0)
    img.putpalette([10, 20, 30, 200, 100, 50, 0, 0, 0] + [0] * 759)
    img.paste(1, (4, 0, 8, 8))
    img.paste(2, (0, 4, 4, 8))
    # index 0 fully transparent, 1 opaque, 2 half transparent (alpha 102 = 40%)
    path = _save(img, tmp_path / "pal.png", transparency=bytes([0, 255, 102]))
    out = decode_image(path, 8)
    assert out[1, 1].tolist() == WHITE
    assert out[1, 6].tolist() == [200, 100, 50]
    assert out[6, 1].tolist() == [153, 153, 153]  # 0 * 0.4 + 255 * 0.6


def test_gif_with_transparent_index(tmp_path):
    img = Image.new("P", (8, 8), 1)
    img.putpalette([10, 20, 30, 200, 100, 50] + [0] * 762)
    img.paste(0, (0, 0, 4, 8))
    path = _save(img, tmp_path / "pal.gif", transparency=0)
    out = decode_image(path, 8)
    assert out[3, 1].tolist() == WHITE and out[3, 6].tolist() == [200, 100, 50]


@pytest.mark.parametrize("mode, colour", [("L", 0), ("RGB", (0, 0, 0))])
def test_png_transparency_chunk_without_alpha_band(tmp_path, mode, colour):
    img = Image.new(mode, (8, 8), colour)
    img.paste(90 if mode == "L" else (90, 60, 30), (4, 0, 8, 8))
    path = _save(img, tmp_path / "trns.png", transparency=colour)
    out = decode_image(path, 8)
    assert out[3, 1].tolist() == WHITE  # the transparent colour shows the background
    assert out[3, 6].tolist() == ([90] * 3 if mode == "L" else [90, 60, 30])


def test_one_bit_image(tmp_path):
    img = Image.new("1", (8, 8), 0)
    img.paste(1, (4, 0, 8, 8))
    out = decode_image(_save(img, tmp_path / "bits.png"), 8)
    assert out[3, 1].tolist() == [0, 0, 0] and out[3, 6].tolist() == WHITE


def test_la_and_rgba_composite_on_white(tmp_path):
    la = Image.new("LA", (8, 8), (100, 128))
    out = decode_image(_save(la, tmp_path / "la.png"), 8)
    expected = round(100 * 128 / 255 + 255 * (1 - 128 / 255))  # 177
    assert np.abs(out.astype(int) - expected).max() <= 1
    rgba = Image.new("RGBA", (8, 8), (10, 20, 30, 255))
    rgba.paste((200, 0, 0, 0), (0, 0, 4, 8))
    out = decode_image(_save(rgba, tmp_path / "rgba.png"), 8)
    assert out[3, 1].tolist() == WHITE and out[3, 6].tolist() == [10, 20, 30]


def test_bad_images_are_records_with_their_index_even_with_colon_space_paths(tmp_path):
    root = tmp_path / "data"
    for c in ("ant", "bee: wild"):
        for i in range(3):
            write_image(root / c / f"{i}.png", i)
    (root / "bee: wild" / "1.png").write_bytes(b"not a png: at all")
    lset = load_folder(root)
    broken = lset.items.index("bee: wild/1.png")
    arr, bad = build_image_cache(lset, np.arange(len(lset)), 8, tmp_path / "c.npy", skip_bad=True)
    assert len(bad) == 1 and isinstance(bad[0], BadImage)
    assert bad[0].index == broken
    assert bad[0].message.startswith(f"{root / 'bee: wild' / '1.png'}: UnidentifiedImageError")
    assert (arr[broken] == 0).all() and arr[broken - 1].any()
    # read back from the cache record, the same records
    assert build_image_cache(lset, np.arange(len(lset)), 8, tmp_path / "c.npy", skip_bad=True)[
        1
    ] == [BadImage(broken, bad[0].message)]


def test_bad_index_is_the_labelled_set_index_for_a_subset_of_indices(tmp_path):
    root = tmp_path / "data"
    for i in range(4):
        write_image(root / "a" / f"{i}.png", i)
    (root / "a" / "3.png").write_bytes(b"junk")
    lset = load_folder(root)
    _, bad = build_image_cache(lset, np.array([1, 3]), 8, tmp_path / "c.npy", skip_bad=True)
    assert [b.index for b in bad] == [3]


def test_missing_file_is_named_and_never_called_unreadable(tmp_path):
    root = tmp_path / "data"
    write_image(root / "a" / "0.png", 0)
    lset = LabelledSet(["a/0.png", "a/gone.png"], np.array([0, 0]), ["a"], root)
    for skip in (False, True):
        with pytest.raises(UserError) as info:
            build_image_cache(lset, np.arange(2), 8, tmp_path / "c.npy", skip_bad=skip)
        text = str(info.value)
        assert "1 image file(s) do not exist" in text and str(root / "a" / "gone.png") in text
        assert "unreadable" not in text and "skip_bad_images" not in text
    assert not (tmp_path / "c.npy").exists()


def test_prepare_drops_exactly_the_bad_images_by_index(tmp_path):
    from ssl_robustness.config import DataConfig
    from ssl_robustness.data.prepare import prepare_data

    root = tmp_path / "data"
    for c in ("ant", "bee: wild"):
        for i in range(12):
            write_image(root / c / f"{i:02d}.png", i)
    (root / "bee: wild" / "03.png").write_bytes(b"junk")
    cfg = DataConfig(
        source="folder",
        root=root,
        image_size=8,
        skip_bad_images=True,
        split={"val_per_class": 1, "test_per_class": 1},
        imbalance={"profile": "exp", "ratio": 0.5},
    )
    data = prepare_data(cfg, tmp_path / "study")
    assert len(data.items) == 23 and "bee: wild/03.png" not in data.items
    assert len(data.store.images) == 23 and all(data.store.images[i].any() for i in range(23))
    assert len(data.bad_images) == 1 and "03.png" in data.bad_images[0]
