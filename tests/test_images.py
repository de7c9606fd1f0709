"""Tests for helpers/data/images.py on real COCO photos and a bad-input corpus generated here.

`write_photo_corpus(folder, photo)` is also used by tests/test_album.py: it turns one real photo
into every kind of file a user's album may hold (good ones in odd formats, and broken ones).
"""

from __future__ import annotations

import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers.data import images
from helpers.data.images import ImageLoadError, load_image, load_images

# name -> expected reason fragment, for the broken files written by `write_photo_corpus`.
BAD_FILES = {
    "truncated.jpg": "truncated",
    "empty.jpg": "empty file",
    "notes.jpg": "not an image",
    "huge.png": "too large",
    "iphone.heic": "unsupported format",
}


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def write_huge_png(path: Path, width: int = 40_000, height: int = 40_000) -> None:
    """A 1.6-gigapixel PNG header with a tiny (unfinished) pixel stream: a decompression bomb
    whose header alone says it is too large. Written by hand in a few bytes."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    body = zlib.compress(b"\x00" * 1000)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header)
                     + _png_chunk(b"IDAT", body) + _png_chunk(b"IEND", b""))


def write_photo_corpus(folder: Path, photo: Path) -> dict[str, Path]:
    """Write good pictures in many modes/names and broken files, all made from one real `photo`.

    Returns:
        name -> path. Good names: "plain.jpg", "Orchidée.jpg", "La gare de l'Est.jpg",
        "UPPER.JPG", "cmyk.jpg", "gray.png", "alpha.png", "sixteen.png", "palette.gif",
        "rotated.jpg" (EXIF orientation 6). Bad names: the keys of `BAD_FILES`.
    """
    folder.mkdir(parents=True, exist_ok=True)
    source = Image.open(photo).convert("RGB")
    source.thumbnail((320, 320))
    data = photo.read_bytes()
    paths = {}

    def put(name, save):
        paths[name] = folder / name
        save(paths[name])

    put("plain.jpg", lambda p: source.save(p, quality=90))
    put("Orchidée.jpg", lambda p: source.save(p, quality=90))
    put("La gare de l'Est.jpg", lambda p: source.save(p, quality=90))
    put("UPPER.JPG", lambda p: source.save(p, "JPEG", quality=90))
    put("cmyk.jpg", lambda p: source.convert("CMYK").save(p, quality=90))
    put("gray.png", lambda p: source.convert("L").save(p))
    alpha = source.convert("RGBA")
    alpha.putalpha(Image.linear_gradient("L").resize(source.size))
    put("alpha.png", lambda p: alpha.save(p))
    sixteen = Image.fromarray((np.asarray(source.convert("L"), np.uint16) * 257))
    put("sixteen.png", lambda p: sixteen.save(p))
    put("palette.gif", lambda p: source.convert("P", palette=Image.Palette.ADAPTIVE).save(
        p, transparency=0))
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to view
    put("rotated.jpg", lambda p: source.save(p, quality=90, exif=exif.tobytes()))
    # Broken files.
    put("truncated.jpg", lambda p: p.write_bytes(data[: len(data) // 3]))
    put("empty.jpg", lambda p: p.write_bytes(b""))
    put("notes.jpg", lambda p: p.write_text("this is a text file, not a photo\n"))
    put("huge.png", write_huge_png)
    put("iphone.heic", lambda p: p.write_bytes(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00"
                                                + b"\x00" * 64))
    return paths


@pytest.fixture(scope="module")
def coco_photos(shared_data) -> list[Path]:
    return sorted((shared_data / "coco-mini-2017" / "val2017").glob("*.jpg"))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, coco_photos) -> dict[str, Path]:
    return write_photo_corpus(tmp_path_factory.mktemp("corpus"), coco_photos[0])


def test_real_photo_full_and_resized(coco_photos):
    photo = coco_photos[0]
    width, height = Image.open(photo).size
    full = load_image(photo)
    assert full.dtype == np.uint8 and full.shape == (height, width, 3)
    small = load_image(photo, size=224)
    assert small.shape == (224, 224, 3) and small.dtype == np.uint8
    # The resize policy squashes the whole photo: same as resizing the full decode.
    reference = np.asarray(Image.fromarray(full).resize((224, 224), images.RESAMPLE), np.int16)
    assert np.abs(small.astype(np.int16) - reference).mean() < 2.0


def test_draft_decoding_of_a_camera_size_jpeg(tmp_path, coco_photos):
    """A 12-megapixel JPEG decoded in draft mode matches the full decode, resized, closely."""
    big = tmp_path / "camera.jpg"
    Image.open(coco_photos[1]).convert("RGB").resize((4000, 3000), Image.Resampling.BICUBIC).save(
        big, quality=92)
    with Image.open(big) as image:
        image.draft("RGB", (224, 224))
        assert image.size == (500, 375)  # decoded at 1/8 scale, both sides still >= 224
    start = time.perf_counter()
    small = load_image(big, size=224)
    draft_seconds = time.perf_counter() - start
    start = time.perf_counter()
    full = load_image(big)
    full_seconds = time.perf_counter() - start
    assert full.shape == (3000, 4000, 3)
    reference = np.asarray(Image.fromarray(full).resize((224, 224), images.RESAMPLE), np.int16)
    assert np.abs(small.astype(np.int16) - reference).mean() < 3.0
    assert draft_seconds < full_seconds


@pytest.mark.parametrize("name", ["plain.jpg", "Orchidée.jpg", "La gare de l'Est.jpg",
                                  "UPPER.JPG", "cmyk.jpg", "gray.png", "alpha.png",
                                  "sixteen.png", "palette.gif"])
def test_good_files_load_as_rgb(corpus, name):
    pixels = load_image(corpus[name], size=64)
    assert pixels.shape == (64, 64, 3) and pixels.dtype == np.uint8
    assert 10 < pixels.mean() < 245  # a real photo, not a blank


def test_modes_are_converted_faithfully(corpus):
    plain = load_image(corpus["plain.jpg"]).astype(np.int16)
    gray = load_image(corpus["gray.png"])
    assert (gray[..., 0] == gray[..., 1]).all() and (gray[..., 1] == gray[..., 2]).all()
    # 16-bit values v*257 come back as v (up to the JPEG-free round trip: exact).
    sixteen = load_image(corpus["sixteen.png"])
    assert np.array_equal(sixteen, gray)
    # CMYK: Pillow's conversion round trip stays close to the RGB photo.
    cmyk = load_image(corpus["cmyk.jpg"]).astype(np.int16)
    assert np.abs(cmyk - plain).mean() < 12
    # Alpha: left column is transparent (alpha 0 at the top of a vertical gradient -> white).
    alpha = load_image(corpus["alpha.png"])
    assert (alpha[0] == 255).all()
    assert np.abs(alpha[-1].astype(np.int16) - plain[-1]).mean() < 12  # bottom nearly opaque


def test_exif_orientation_is_applied(corpus):
    plain = load_image(corpus["plain.jpg"])
    rotated = load_image(corpus["rotated.jpg"])
    assert rotated.shape == (plain.shape[1], plain.shape[0], 3)  # height and width swapped
    # Orientation 6 = view rotated 90 degrees clockwise: the stored top row becomes the right column.
    assert np.abs(rotated[:, -1].astype(np.int16) - plain[0].astype(np.int16)).mean() < 12


def test_special_modes(tmp_path):
    one = tmp_path / "one.png"
    Image.new("1", (8, 4), 1).save(one)
    assert (load_image(one) == 255).all()
    floats = tmp_path / "floats.tif"
    Image.fromarray(np.full((4, 8), 0.5, np.float32), mode="F").save(floats)
    assert (load_image(floats) == 128).all()
    ints = tmp_path / "ints.tif"
    Image.fromarray(np.full((4, 8), 65535, np.int32), mode="I").save(ints)
    assert (load_image(ints) == 255).all()
    la = tmp_path / "la.png"
    Image.new("LA", (4, 4), (0, 0)).save(la)  # black but fully transparent -> white
    assert (load_image(la) == 255).all()


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_bad_files_raise_image_load_error_with_reason(corpus, name):
    start = time.perf_counter()
    with pytest.raises(ImageLoadError) as caught:
        load_image(corpus[name], size=224)
    assert BAD_FILES[name] in caught.value.reason
    assert caught.value.path == corpus[name]
    assert corpus[name].name in str(caught.value)
    assert time.perf_counter() - start < 1.0  # the bomb is refused from its header


def test_missing_file_and_pixel_limit(tmp_path, corpus):
    with pytest.raises(ImageLoadError, match="file not found"):
        load_image(tmp_path / "nope.jpg")
    with pytest.raises(ImageLoadError, match="too large"):
        load_image(corpus["plain.jpg"], max_pixels=1000)
    with pytest.raises(ValueError, match="positive"):
        load_image(corpus["plain.jpg"], size=0)


def test_load_images_in_order_with_errors(corpus):
    names = ["plain.jpg", "empty.jpg", "gray.png", "truncated.jpg", "rotated.jpg", "notes.jpg"] * 3
    paths = [corpus[name] for name in names]
    threaded = list(load_images(paths, size=32, workers=3, prefetch=2))
    serial = list(load_images(paths, size=32, workers=0))
    assert [index for index, _ in threaded] == list(range(len(paths)))
    for (_, a), (_, b), name in zip(threaded, serial, names):
        if name in BAD_FILES:
            assert isinstance(a, ImageLoadError) and a.reason == b.reason
        else:
            assert np.array_equal(a, b)


def test_thumbnail_keeps_aspect(corpus):
    thumb = images.load_thumbnail(corpus["plain.jpg"], max_side=100)
    plain = load_image(corpus["plain.jpg"])
    assert max(thumb.shape[:2]) == 100
    assert abs(thumb.shape[1] / thumb.shape[0] - plain.shape[1] / plain.shape[0]) < 0.05


def test_is_image_file():
    assert images.is_image_file("a/B.JPG") and images.is_image_file("Orchidée.jpeg")
    assert not images.is_image_file("album.ini") and not images.is_image_file(".hidden.jpg")


def test_center_crop_box():
    assert images.center_crop_box(640, 480) == (110, 30, 530, 450)
    assert images.center_crop_box(480, 640) == (30, 110, 450, 530)
    assert images.center_crop_box(333, 500) == (21, 105, 312, 396)  # side 291
    assert images.center_crop_box(1, 1) == (0, 0, 1, 1)
    with pytest.raises(ValueError, match="width"):
        images.center_crop_box(0, 10)
