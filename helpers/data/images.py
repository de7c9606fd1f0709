"""Load any photo a user has into an RGB `uint8` array, fast, or say clearly why it cannot be read.

One function, `load_image`, does for a single file what a photo album needs:

1. **Bomb guard.** The header is read first; a picture with more than `max_pixels` pixels (default:
   Pillow's own error threshold, `2 * PIL.Image.MAX_IMAGE_PIXELS`, about 179 megapixels) is refused
   with `ImageLoadError(reason="too large ...")` *before* anything is decoded. Pillow's
   `DecompressionBombWarning` is silenced for Pillow's module only, because this check replaces it
   (otherwise every big photo prints a warning with its own text, so Python repeats it).
2. **Draft decoding.** For a JPEG and a requested `size`, `img.draft("RGB", (size, size))` asks
   libjpeg to decode at 1/2, 1/4 or 1/8 scale (DCT scaling) while both sides stay >= `size`: a
   12-megapixel camera photo is decoded as a 500 x 375 image when a 224-pixel input is needed,
   about 10x faster and 60x less memory than a full decode.
3. **EXIF orientation** (`PIL.ImageOps.exif_transpose`): a portrait photo taken with the camera
   turned comes out upright (height and width swapped as the viewer shows it).
4. **Every mode to RGB.** `RGBA`, `LA`, `PA`, `P` with transparency: composited on white (what a
   viewer shows on a white page; a black background would turn transparent logos black).
   16-bit (`I;16*`): scaled by 255/65535. 32-bit `I` and float `F`: scaled from their range (see
   `_to_8_bit`). `1`, `L`, `P`, `CMYK`, `YCbCr`, `LAB`, `HSV`: Pillow's conversion.
5. **One resize policy.** With `size`, the *whole* photo is resized to `size x size` (aspect ratio
   not kept) with Pillow's antialiased bilinear filter. This is how keras.applications backbones and
   the TensorFlow captioning tutorial feed images (`tf.image.resize(image, (299, 299))`): nothing of
   the photo is cut away, so an object near the border can still become a tag; a centre crop would
   drop it. Training and inference both use this policy, so the model sees the same distortion.

Failures are `ImageLoadError(path, reason)` with a reason a person can act on (empty file,
truncated, not an image, unsupported format, too large, not found, permission denied); Pillow's
exceptions never leak. `load_images` decodes many files in a thread pool (Pillow releases the GIL
while decoding) and yields results in input order, so a model can run while the next batch decodes.
"""

from __future__ import annotations

import collections
import concurrent.futures
import os
import warnings
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

# File extensions treated as pictures when scanning a folder (compared lower-cased).
IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".gif", ".bmp", ".tif", ".tiff", ".webp", ".avif",
     ".heic", ".heif", ".ppm", ".pgm", ".pbm", ".tga", ".ico"}
)

# Our size check below replaces Pillow's warning (which would repeat once per distinct photo size).
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning, module=r"PIL\.Image")

# Resampling filter of the one resize policy: Pillow's bilinear filter widens its support when it
# shrinks, so it averages every source pixel (antialiased, like an area filter), unlike a plain
# bilinear interpolation that would alias on a 10x reduction.
RESAMPLE = Image.Resampling.BILINEAR

# Signatures of formats Pillow cannot open here, to give a useful reason instead of "not an image".
_UNSUPPORTED_SIGNATURES = (
    (4, (b"ftypheic", b"ftypheix", b"ftyphevc", b"ftypmif1", b"ftypmsf1", b"ftypheim"),
     "HEIF/HEIC (iPhone) photo: Pillow cannot read it without the pillow-heif plug-in; "
     "export it as JPEG or `pip install pillow-heif`"),
    (0, (b"II*\x00\x10\x00\x00\x00CR",), "Canon CR2 raw photo: export it as JPEG first"),
    (0, (b"FUJIFILMCCD-RAW",), "Fujifilm RAF raw photo: export it as JPEG first"),
    (0, (b"%PDF",), "PDF document, not a picture"),
    (0, (b"\x00\x00\x00\x0cjP  ",), "JPEG 2000 file: Pillow was built without OpenJPEG here"),
)


class ImageLoadError(Exception):
    """A picture that cannot be loaded, with the file and a reason a person can act on.

    Attributes:
        path: the file (`pathlib.Path`).
        reason: short human-readable reason, e.g. "empty file (0 bytes)",
            "truncated or corrupt image data (image file is truncated ...)".
    """

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"cannot load {self.path}: {reason}")

    def __reduce__(self):  # picklable (multiprocessing, caching)
        return (type(self), (self.path, self.reason))


def default_max_pixels() -> int | None:
    """Pixel limit used when `max_pixels` is not given: Pillow's error threshold
    (`2 * Image.MAX_IMAGE_PIXELS`, 178,956,970 by default; None if the user disabled it)."""
    return None if Image.MAX_IMAGE_PIXELS is None else 2 * Image.MAX_IMAGE_PIXELS


def _sniff_unsupported(path: Path) -> str | None:
    """Reason for a known non-Pillow format (HEIC, raw, PDF...), from the first bytes; else None."""
    try:
        with open(path, "rb") as file:
            head = file.read(32)
    except OSError:
        return None
    for offset, signatures, reason in _UNSUPPORTED_SIGNATURES:
        if any(head[offset:offset + len(sig)] == sig for sig in signatures):
            return reason
    return None


def _open(path: Path, max_pixels: int | None) -> Image.Image:
    """Open (header only) with every failure turned into `ImageLoadError`."""
    try:
        size_bytes = path.stat().st_size
    except FileNotFoundError:
        raise ImageLoadError(path, "file not found") from None
    except OSError as error:
        raise ImageLoadError(path, f"cannot read the file ({error.strerror or error})") from None
    if path.is_dir():
        raise ImageLoadError(path, "is a folder, not a picture")
    if size_bytes == 0:
        raise ImageLoadError(path, "empty file (0 bytes)")
    try:
        image = Image.open(path)
    except Image.DecompressionBombError:
        raise ImageLoadError(
            path, f"too large: more than {default_max_pixels():,} pixels (Pillow's "
                  "decompression-bomb limit; raise PIL.Image.MAX_IMAGE_PIXELS if you trust it)"
        ) from None
    except UnidentifiedImageError:
        reason = _sniff_unsupported(path)
        raise ImageLoadError(
            path, f"unsupported format: {reason}" if reason else
            f"not an image Pillow can read ({size_bytes:,} bytes of unknown format)"
        ) from None
    except PermissionError:
        raise ImageLoadError(path, "permission denied: cannot read the file") from None
    except (OSError, ValueError, SyntaxError) as error:  # malformed headers
        raise ImageLoadError(path, f"corrupt image header ({error})") from None
    width, height = image.size
    if max_pixels is not None and width * height > max_pixels:
        image.close()
        raise ImageLoadError(
            path, f"too large: {width} x {height} = {width * height:,} pixels, limit "
                  f"{max_pixels:,} (a decompression bomb guard; pass a larger max_pixels "
                  "if you trust the file)"
        )
    if width == 0 or height == 0:
        image.close()
        raise ImageLoadError(path, f"empty picture ({width} x {height} pixels)")
    return image


def _to_8_bit(image: Image.Image) -> Image.Image:
    """Scale a 16-bit, 32-bit integer or float single-channel image to mode "L".

    `I;16*` holds 0..65535: multiplied by 255/65535. `I` and `F` have no fixed range: values
    already in 0..255 are kept, 0..65535 is scaled like 16-bit, a float image in 0..1 is multiplied
    by 255, anything else is stretched from its minimum to its maximum.
    """
    values = np.asarray(image)
    if image.mode.startswith("I;16"):
        scaled = values.astype(np.float32) * (255.0 / 65535.0)
    else:
        values = values.astype(np.float64)
        finite = values[np.isfinite(values)]
        low, high = (finite.min(), finite.max()) if finite.size else (0.0, 0.0)
        if image.mode == "F" and low >= 0.0 and high <= 1.0:
            scaled = values * 255.0
        elif low >= 0.0 and high <= 255.0:
            scaled = values
        elif low >= 0.0 and high <= 65535.0:
            scaled = values * (255.0 / 65535.0)
        else:
            scaled = (values - low) * (255.0 / max(high - low, 1e-12))
        scaled = np.nan_to_num(scaled, nan=0.0, posinf=255.0, neginf=0.0)
    return Image.fromarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8), mode="L")


def _to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode -> "RGB"; transparency composited on white."""
    mode = image.mode
    if mode == "RGB":
        return image
    if mode == "P" and "transparency" in image.info:
        image, mode = image.convert("RGBA"), "RGBA"
    if mode in ("LA", "La", "PA", "RGBa"):
        image, mode = image.convert("RGBA"), "RGBA"
    if mode == "RGBA":
        background = Image.new("RGB", image.size, (255, 255, 255))
        background.paste(image, mask=image.getchannel("A"))
        return background
    if mode.startswith("I") or mode == "F":
        return _to_8_bit(image).convert("RGB")
    return image.convert("RGB")  # 1, L, P, CMYK, YCbCr, LAB, HSV


def center_crop_box(width: int, height: int, size: int = 224, crop_padding: int = 32
                    ) -> tuple[int, int, int, int]:
    """The evaluation centre crop of Google's EfficientNet / Inception code, as a Pillow box.

    A square of side `c = int(size / (size + crop_padding) * min(width, height))` (0.875 of the
    short side for 224 and 32, truncated; at least 1 pixel), `top = (height - c + 1) // 2`,
    `left = (width - c + 1) // 2`. A 640 x 480 photo gives (110, 30, 530, 450).

    Args:
        width, height: picture size in pixels (upright, as displayed).
        size: side the crop will be resized to; crop_padding: the margin rule above.

    Returns:
        `(left, top, right, bottom)` in pixels, right/bottom exclusive.

    Raises:
        ValueError: a size that is not a positive integer.
    """
    for name, value in (("width", width), ("height", height)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value <= 0:
            raise ValueError(f"{name} must be a positive number of pixels, got {value!r}")
    side = max(1, int(size) * min(width, height) // (int(size) + int(crop_padding)))
    top = (int(height) - side + 1) // 2
    left = (int(width) - side + 1) // 2
    return left, top, left + side, top + side


CROPS = (None, "center")


def load_image(
    path: str | os.PathLike,
    size: int | None = None,
    max_pixels: int | None = -1,
    crop: str | None = None,
) -> np.ndarray:
    """Load a picture as RGB pixels, upright, optionally resized for a model.

    Args:
        path: picture file (any format Pillow reads: JPEG, PNG, GIF, BMP, TIFF, WebP, AVIF...).
            For an animated file, the first frame.
        size: when given, the whole photo is resized to `size x size` pixels (aspect ratio not
            kept, antialiased bilinear; see the module docstring for why), and a JPEG is decoded
            at reduced scale (draft mode). None: full resolution.
        max_pixels: refuse pictures with more pixels than this (decompression-bomb guard);
            -1 (default): `default_max_pixels()`; None: no limit of ours (Pillow's still applies).
        crop: with `size`: None resizes the whole photo; "center" takes the evaluation centre
            crop of ImageNet classifiers (`center_crop_box`: 0.875 of the short side at 224 px)
            and resizes it with Pillow's bicubic filter, as Google's EfficientNet code does. The
            JPEG is still decoded at reduced scale, just large enough for the crop.

    Returns:
        `uint8 [height, width, 3]` RGB array (`[size, size, 3]` when `size` is given), upright
        according to the EXIF orientation tag.

    Raises:
        ImageLoadError: the file is missing, empty, truncated, not an image, in an unsupported
            format, or too large; `.reason` says which.
        ValueError: `size` is not a positive integer, or an unknown `crop`.
    """
    path = Path(path)
    if size is not None and (not isinstance(size, (int, np.integer)) or size <= 0):
        raise ValueError(f"size must be a positive number of pixels or None, got {size!r}")
    if crop not in CROPS:
        raise ValueError(f"crop must be one of {CROPS}, got {crop!r}")
    if max_pixels == -1:
        max_pixels = default_max_pixels()
    image = _open(path, max_pixels)
    try:
        with image:
            if size is not None and image.format == "JPEG":
                # DCT scaling, both sides kept >= the side needed (the crop's: size / 0.875)
                needed = int(size) if crop is None else -(-int(size) * (int(size) + 32) // int(size))
                image.draft("RGB", (needed, needed))
            try:
                image.load()
            except (OSError, ValueError, SyntaxError, EOFError) as error:
                raise ImageLoadError(path, f"truncated or corrupt image data ({error})") from None
            except Image.DecompressionBombError as error:
                raise ImageLoadError(path, f"too large ({error})") from None
            try:
                upright = ImageOps.exif_transpose(image)
            except Exception as error:  # noqa: BLE001 - malformed EXIF must not lose the photo
                warnings.warn(f"{path}: EXIF orientation unreadable ({error}); kept as stored",
                              stacklevel=2)
                upright = image
            try:
                rgb = _to_rgb(upright)
                if size is not None and crop == "center":
                    box = center_crop_box(*rgb.size, size=int(size))
                    rgb = rgb.crop(box).resize((int(size), int(size)), Image.Resampling.BICUBIC)
                elif size is not None and rgb.size != (size, size):
                    rgb = rgb.resize((int(size), int(size)), RESAMPLE)
            except (OSError, ValueError) as error:  # a mode Pillow cannot convert
                raise ImageLoadError(
                    path, f"unsupported format: cannot convert {image.format} mode "
                          f"{upright.mode!r} to RGB ({error})") from None
            return np.asarray(rgb, dtype=np.uint8)
    except MemoryError:
        raise ImageLoadError(path, "too large: not enough memory to decode it") from None


def load_thumbnail(path: str | os.PathLike, max_side: int = 160) -> np.ndarray:
    """A display thumbnail (aspect ratio kept, longest side `max_side`), for previews only.

    Uses draft decoding for JPEGs like `load_image`. Returns `uint8 [h, w, 3]`.

    Raises:
        ImageLoadError: as `load_image`.
    """
    path = Path(path)
    image = _open(path, default_max_pixels())
    with image:
        if image.format == "JPEG":
            image.draft("RGB", (max_side, max_side))
        try:
            image.load()
        except (OSError, ValueError, SyntaxError, EOFError) as error:
            raise ImageLoadError(path, f"truncated or corrupt image data ({error})") from None
        rgb = _to_rgb(ImageOps.exif_transpose(image))
        rgb.thumbnail((max_side, max_side), RESAMPLE)
        return np.asarray(rgb, dtype=np.uint8)


def default_workers() -> int:
    """Decoding threads used by `load_images` when not told: the CPU count, at most 8."""
    return max(1, min(8, os.cpu_count() or 1))


def load_images(
    paths: Iterable[str | os.PathLike],
    size: int | None = None,
    workers: int | None = None,
    prefetch: int | None = None,
    max_pixels: int | None = -1,
    crop: str | None = None,
    loader: Callable[[Path], object] | None = None,
) -> Iterator[tuple[int, np.ndarray | ImageLoadError]]:
    """Decode pictures in a thread pool, yielding `(index, pixels or ImageLoadError)` in order.

    Pillow releases the GIL while it decodes, so `workers` threads decode in parallel while the
    caller (e.g. a model) works on what was already yielded. At most `prefetch` pictures are
    decoded ahead, so memory stays bounded for any number of files.

    Args:
        paths: picture files (any iterable; consumed lazily).
        size, crop: as `load_image`.
        workers: decoding threads (default `default_workers()`); 0 decodes in the calling thread.
        prefetch: pictures decoded ahead of the consumer (default `4 * workers`, at least 1).
        max_pixels: as `load_image`.
        loader: how one picture is decoded, `path -> pixels` raising `ImageLoadError` (default:
            `load_image` with `size`, `max_pixels` and `crop`); e.g. one decode that feeds two
            networks. What it returns is yielded as it is.

    Yields:
        `(index, array)` with `uint8 [H, W, 3]` pixels, or `(index, ImageLoadError)` for a file
        that cannot be loaded (never raised: one bad photo must not stop an album).
    """
    workers = default_workers() if workers is None else int(workers)

    def load(path):
        try:
            if loader is not None:
                return loader(Path(path))
            return load_image(path, size=size, max_pixels=max_pixels, crop=crop)
        except ImageLoadError as error:
            return error

    if workers <= 0:
        for index, path in enumerate(paths):
            yield index, load(path)
        return
    prefetch = max(1, prefetch if prefetch is not None else 4 * workers)
    pending: collections.deque = collections.deque()
    with concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="load_images") as pool:
        try:
            for index, path in enumerate(paths):
                pending.append((index, pool.submit(load, path)))
                if len(pending) >= prefetch:
                    done_index, future = pending.popleft()
                    yield done_index, future.result()
            while pending:
                done_index, future = pending.popleft()
                yield done_index, future.result()
        finally:  # consumer stopped early: do not decode the rest
            for _, future in pending:
                future.cancel()


def is_image_file(path: str | os.PathLike) -> bool:
    """True for a visible file whose extension (any case) is a picture extension."""
    path = Path(path)
    return not path.name.startswith(".") and path.suffix.lower() in IMAGE_EXTENSIONS

