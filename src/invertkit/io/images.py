"""Image files <-> tensors.

All conversions between image files (any size, mode or common format) and the tensors invertkit
works with (float ``N x C x H x W`` in [-1, 1]) happen here and nowhere else.

Reading policy (documented in the README):

- only regular files are opened: a FIFO, device or socket named like an image (which a reader would
  block on forever, or read without end), a dangling symbolic link or a symbolic-link loop is refused
  with one line naming it, before anything is opened (the file is opened non-blocking and checked
  again, so a file swapped in between is refused too);
- the EXIF orientation is applied (a phone photograph stored sideways is read upright);
- deep images are scaled by their bit depth, never stretched by their own minimum and maximum (a white
  16-bit image stays white): 16-bit modes by 65535; 32-bit integer images by the bit depth a TIFF
  declares, else as 16-bit (values 0..65535; Pillow already scales a PGM's declared maxval to that),
  and one holding values beyond 0..65535 without a declared depth is refused; negative values of
  signed images count as 0; float images (mode F) are taken as values in [0, 1] (clipped), and one
  holding NaN or infinite pixels is refused with one line;
- the image is converted to the generator's channel count (RGBA is composited on white, palette and
  CMYK images become RGB, RGB becomes greyscale by ITU-R 601-2 luma for 1-channel generators),
  centre-cropped to a square, then resized with Lanczos filtering to the generator's resolution.

Tensors handed to the API must be float ``N x C x H x W`` in [-1, 1] (:func:`check_images`).
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torch import Tensor

from ..errors import ImageError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm", ".pbm", ".pnm")


def to_mode(img: Image.Image, channels: int, name: str = "image") -> Image.Image:
    """Convert a PIL image to ``L`` (channels=1) or ``RGB`` (channels=3); alpha is composited on white,
    deep (16-bit, 32-bit, float) greyscale is scaled by :func:`deep_to_uint8`. ``name`` is what errors call it."""
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, rgba)
    if img.mode.startswith(("I", "F")):
        img = Image.fromarray(deep_to_uint8(img, name), mode="L")
    if channels == 1:
        return img.convert("L")
    if channels == 3:
        return img.convert("RGB")
    raise ImageError(f"cannot convert images to {channels} channels; only 1 (greyscale) and 3 (RGB) are supported")


def _declared_depth(img: Image.Image) -> tuple[int, bool] | None:
    """(bits per sample, signed) as a TIFF declares them; None when the file declares none."""
    tags = getattr(img, "tag_v2", None)
    if tags is None:
        return None
    bits, fmt = tags.get(258), tags.get(339)  # BitsPerSample, SampleFormat (1 unsigned, 2 signed, 3 float)
    bits = bits[0] if isinstance(bits, tuple) else bits
    fmt = fmt[0] if isinstance(fmt, tuple) else fmt
    if not isinstance(bits, int) or not 1 <= bits <= 32:
        return None
    return bits, fmt == 2


def deep_to_uint8(img: Image.Image, name: str = "image") -> np.ndarray:
    """A deep greyscale image (``I;16*``, ``I``, ``F``) as ``H x W`` uint8, scaled by its bit depth.

    16-bit modes: value / 65535. ``I`` (32-bit integer): by the depth a TIFF declares (``2**bits - 1``,
    ``2**(bits-1) - 1`` when signed), else as 16-bit when all values lie in 0..65535 (PNG, PGM: Pillow
    scales a PGM's maxval to 65535); other values without a declared depth are refused. Negative
    values count as 0. ``F``: values in [0, 1], clipped; NaN or infinite pixels are refused.

    Raises:
        ImageError: non-finite float pixels, or 32-bit values of unknown range; one line naming ``name``.
    """
    arr = np.asarray(img)
    if img.mode == "F" or arr.dtype.kind == "f":
        bad = int(arr.size - np.count_nonzero(np.isfinite(arr)))
        if bad:
            raise ImageError(f"{name}: holds {bad:,} non-finite pixel(s) (NaN or infinity) in a float image; "
                             "fix or remove the file")
        unit = np.clip(arr.astype(np.float64), 0.0, 1.0)
    elif img.mode.startswith("I;16"):
        unit = np.clip(arr.astype(np.float64), 0.0, None) / 65535.0
    else:
        depth = _declared_depth(img)
        if depth is not None:
            bits, signed = depth
            top = float(2 ** (bits - 1) - 1 if signed else 2**bits - 1)
        else:
            lo, hi = (int(arr.min()), int(arr.max())) if arr.size else (0, 0)
            if lo < 0 or hi > 65535:
                raise ImageError(f"{name}: a 32-bit integer image with values {lo}..{hi} and no declared bit depth; "
                                 "save it as 8- or 16-bit (or a TIFF, which declares its depth)")
            top = 65535.0
        unit = np.clip(arr.astype(np.float64) / top, 0.0, 1.0)
    return (unit * 255.0).round().astype(np.uint8)


def center_crop_resize(img: Image.Image, size: int) -> Image.Image:
    """Centre-crop to the largest square, then Lanczos-resize to ``size`` x ``size``."""
    w, h = img.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    img = img.crop((left, top, left + side, top + side))
    if side != size:
        img = img.resize((size, size), Image.Resampling.LANCZOS)
    return img


def pil_to_tensor(img: Image.Image) -> Tensor:
    """PIL ``L``/``RGB`` image -> float tensor ``1 x C x H x W`` in [-1, 1]."""
    arr = np.asarray(img, dtype=np.float32)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).unsqueeze(0) / 127.5 - 1.0


# How far beyond [0, 1] a float image array may reach (rounding) before array_to_tensor refuses it.
RANGE_TOLERANCE = 1e-3


def array_to_tensor(arr: np.ndarray, size: int, channels: int) -> Tensor:
    """A uint8 (or [0,1] float) ``H x W`` / ``H x W x C`` array -> ``1 x C x size x size`` in [-1, 1].

    Raises:
        ImageError: a float array with non-finite values or values beyond [0, 1] (e.g. 0..255 floats),
            or another dtype; the message says how to convert it.
    """
    a = np.asarray(arr)
    if a.dtype != np.uint8:
        if a.dtype.kind != "f":
            raise ImageError(f"an image array must be uint8 (0..255) or float in [0, 1]; got {a.dtype}: "
                             "convert it with arr.astype(np.uint8) if it holds 0..255")
        if a.size and not np.isfinite(a).all():
            raise ImageError(f"an image array holds {int(a.size - np.count_nonzero(np.isfinite(a))):,} non-finite value(s)")
        lo, hi = (float(a.min()), float(a.max())) if a.size else (0.0, 0.0)
        if lo < -RANGE_TOLERANCE or hi > 1.0 + RANGE_TOLERANCE:
            raise ImageError(f"a float image array must hold values in [0, 1]; got values in [{lo:g}, {hi:g}]"
                             + (": use arr / 255 (or arr.astype(np.uint8))" if hi > 1.5 else ""))
        a = (np.clip(a.astype(np.float64), 0.0, 1.0) * 255.0).round().astype(np.uint8)
    return pil_to_tensor(center_crop_resize(to_mode(Image.fromarray(a), channels), size))


def check_images(images: Tensor, what: str = "images") -> None:
    """Refuse an images tensor of another convention than float in [-1, 1], with the fix in the message.

    Refused: integer or bool tensors (uint8 0..255 above all), NaN or infinite values, and tensors with
    no negative value whose maximum exceeds 2 (the 0..255 or 0..65535 conventions as floats: such an
    image in [-1, 1] would be black). Accepted as they are: other values beyond [-1, 1] (a generator's
    own output, which known-latent recovery compares against, or simulated noise) and [0, 1] images
    (legal values, if probably a mistake: they look washed out; use ``x * 2 - 1``).

    Raises:
        ImageError: one line naming ``what``, what was found and how to convert it.
    """
    if not isinstance(images, Tensor):
        raise ImageError(f"{what} must be a torch tensor (float, N x C x H x W in [-1, 1]); got {type(images).__name__}")
    if not images.dtype.is_floating_point:
        hint = "x.float() / 127.5 - 1" if images.dtype == torch.uint8 else "x.float(), scaled to [-1, 1]"
        raise ImageError(f"{what} must be float in [-1, 1]; got {str(images.dtype).replace('torch.', '')}: use {hint}")
    if images.numel() == 0:
        return
    x = images.detach()
    finite = torch.isfinite(x)
    if not bool(finite.all()):
        bad = int((~finite).sum())
        rows = (~finite.reshape(x.shape[0], -1).all(dim=1)).nonzero().flatten().tolist() if x.dim() >= 1 else []
        where = f" in {what}[{rows[0]}]" + (f" and {len(rows) - 1} more image(s)" if len(rows) > 1 else "") if rows else ""
        raise ImageError(f"{what} must be float in [-1, 1]; got {bad:,} non-finite value(s) (NaN or infinity){where}")
    lo, hi = float(x.min()), float(x.max())
    if lo >= 0.0 and hi > 2.0:
        top = 65535 if hi > 255.5 else 255
        raise ImageError(f"{what} must be float in [-1, 1]; got values in [0, {top}]: use x / {top / 2:g} - 1")


# Largest image (width x height) decoded by default: Pillow's own warning threshold (about 89 megapixels,
# a 9459 x 9459 photograph); a file declaring more is refused before any pixel is decoded
# (a decompression bomb: a few KB of PNG can declare 50000 x 50000 pixels, 7.5 GB decoded).
MAX_PIXELS = 89_478_485


def read_image(path: str | os.PathLike[str], size: int, channels: int, *, max_pixels: int = MAX_PIXELS) -> Tensor:
    """Read one image file as ``1 x channels x size x size`` in [-1, 1].

    Raises:
        ImageError: missing file, not an image, truncated, otherwise unreadable, or declaring more
            than ``max_pixels`` pixels; the message names the file.
    """
    path = Path(path)
    return decode_image(path, size, channels, name=str(path), max_pixels=max_pixels)


def not_a_regular_file(path: str | os.PathLike[str]) -> str | None:
    """Why ``path`` is no image file to open (None: a regular file, or a link to one), without opening it:
    missing, a dangling symbolic link, a symbolic-link loop, a folder, a FIFO, a device, a socket."""
    try:
        st = os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "a symbolic-link loop (not followed)"
        if os.path.islink(path):
            try:
                target = os.readlink(path)
            except OSError:
                target = "?"
            return f"a dangling symbolic link (to {target})"
        if exc.errno == errno.ENOENT:
            return "no such image file"
        return f"cannot be read ({exc.strerror})"
    mode = st.st_mode
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "a folder, not an image file"
    kind = ("a named pipe (FIFO)" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode)
            else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "not a regular file")
    return f"{kind}, not an image file; not opened"


def open_regular(path: str | os.PathLike[str], name: str):
    """Open ``path`` for reading if it is a regular file (a binary file object); else one ImageError line.

    Checked before opening (a FIFO or device is never opened) and again on the open file (opened
    non-blocking, so a FIFO swapped in between cannot block; refused by its ``fstat``)."""
    why = not_a_regular_file(path)
    if why is not None:
        raise ImageError(f"{name}: {why}")
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise ImageError(f"{name}: cannot open ({exc.strerror})") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ImageError(f"{name}: not a regular file (it changed while being opened); not read")
    except BaseException:
        os.close(fd)
        raise
    return os.fdopen(fd, "rb")


def _upright(img: Image.Image) -> Image.Image:
    """``img`` turned as its EXIF orientation says (unchanged without one, or when the EXIF block is damaged)."""
    try:
        orientation = img.getexif().get(0x0112, 1)
    except (OSError, ValueError, SyntaxError, TypeError, KeyError, IndexError):
        return img  # an unreadable EXIF block: the pixels as stored
    if orientation in (None, 1):
        return img
    try:
        return ImageOps.exif_transpose(img)
    except (OSError, ValueError, SyntaxError, TypeError, KeyError, IndexError):
        return img


def decode_image(source: str | os.PathLike[str] | bytes, size: int, channels: int, *, name: str,
                 max_pixels: int = MAX_PIXELS) -> Tensor:
    """Decode an image file or its bytes as ``1 x channels x size x size`` in [-1, 1].

    The declared size is checked against ``max_pixels`` from the header, before decoding; only the
    first frame of animated or multi-page files is used. ``name`` is what error messages call it.

    Raises:
        ImageError: one line naming ``name`` and the cause.
    """
    import io

    if isinstance(source, (bytes, bytearray)):
        with io.BytesIO(bytes(source)) as stream:
            return _decode(stream, size, channels, name, max_pixels)
    with open_regular(source, name) as stream:
        return _decode(stream, size, channels, name, max_pixels)


@contextlib.contextmanager
def _pillow_pixel_limit(max_pixels: int) -> Iterator[None]:
    """Let Pillow's own bomb check (at twice ``Image.MAX_IMAGE_PIXELS``) admit what ``max_pixels`` allows,
    for this decode only: the process-wide value is restored after, so one call's limit never leaks."""
    before = Image.MAX_IMAGE_PIXELS
    if before is None or max_pixels <= before:
        yield
        return
    Image.MAX_IMAGE_PIXELS = max_pixels
    try:
        yield
    finally:
        Image.MAX_IMAGE_PIXELS = before


def read_photo(path: str | os.PathLike[str], channels: int, *, max_pixels: int = MAX_PIXELS) -> Tensor:
    """Read one image file whole (no crop, no resize) as ``1 x channels x H x W`` in [-1, 1]: what face
    alignment crops from. Same checks and limits as :func:`read_image`.

    Raises:
        ImageError: as :func:`read_image`; the message names the file.
    """
    path = Path(path)
    with open_regular(path, str(path)) as stream:
        return pil_to_tensor(_decode_pil(stream, channels, str(path), max_pixels))


def _decode(stream, size: int, channels: int, name: str, max_pixels: int) -> Tensor:
    return pil_to_tensor(center_crop_resize(_decode_pil(stream, channels, name, max_pixels), size))


def _decode_pil(stream, channels: int, name: str, max_pixels: int) -> Image.Image:
    try:
        with _pillow_pixel_limit(max_pixels), Image.open(stream) as img:
            w, h = img.size
            if w * h > max_pixels:
                raise ImageError(f"{name}: declares {w} x {h} pixels, over the limit of {max_pixels:,} "
                                 "(raise it with --max-pixels if the image is genuine)")
            if w < 1 or h < 1:
                raise ImageError(f"{name}: declares an empty image ({w} x {h})")
            img.load()  # decode now so truncation is caught here
            img = to_mode(_upright(img), channels, name)
    except ImageError:
        raise
    except Image.DecompressionBombError as exc:  # Pillow's own check (twice its threshold) fired before ours could
        import re

        declared = re.search(r"\((\d+) pixels\)", str(exc))
        count = f"{int(declared.group(1)):,} pixels" if declared else "too many pixels"
        raise ImageError(f"{name}: declares {count}, over the limit of {max_pixels:,} (a decompression bomb, or raise "
                         "--max-pixels if the image is genuine)") from None
    except UnidentifiedImageError:
        raise ImageError(f"{name}: not an image file (PNG, JPEG, PGM, ... expected); skip or replace it") from None
    except (OSError, ValueError, SyntaxError, EOFError, MemoryError) as exc:
        raise ImageError(f"{name}: cannot decode image ({str(exc)[:160]}); the file may be truncated or corrupt") from None
    return img


@dataclass
class ImageBatch:
    """Images read from files: the ones that worked, and one-line errors for the ones that did not."""

    images: Tensor  # N x C x H x W in [-1, 1]
    names: list[str]
    failures: dict[str, str]  # file name -> error message


def read_images(paths: Iterable[str | os.PathLike[str]], size: int, channels: int) -> ImageBatch:
    """Read many images; unreadable ones are recorded in ``failures`` instead of aborting the batch.

    Names are the files' base names, or, for files sharing a base name, the end of their paths that
    tells them apart (:func:`~invertkit.io.filenames.distinct_names`: ``a/x.png``, ``b/x.png``)."""
    from .filenames import distinct_names

    paths = list(paths)
    tensors, names, failures = [], [], {}
    for p, name in zip(paths, distinct_names(paths)):
        try:
            tensors.append(read_image(p, size, channels))
            names.append(name)
        except ImageError as exc:
            failures[str(p)] = str(exc)
    images = torch.cat(tensors) if tensors else torch.zeros(0, channels, size, size)
    return ImageBatch(images, names, failures)


def list_images(folder: str | os.PathLike[str]) -> list[Path]:
    """Entries of ``folder`` (not recursive) whose suffix is an image suffix, sorted by name.

    Everything so named except folders is listed, regular file or not: a dangling link, a link loop or
    a FIFO named ``x.png`` is refused by name when read (:func:`open_regular`), never silently dropped."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ImageError(f"{folder}: not a folder of images")
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.is_dir())


def to_uint8(images: Tensor) -> np.ndarray:
    """``N x C x H x W`` in [-1, 1] -> uint8 ``N x H x W x C`` (clamped, rounded: what users see)."""
    x = ((images.detach().float().cpu().clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).numpy()


def tensor_to_pil(image: Tensor) -> Image.Image:
    """One image ``C x H x W`` (or ``1 x C x H x W``) in [-1, 1] -> PIL image."""
    if image.dim() == 3:
        image = image.unsqueeze(0)
    arr = to_uint8(image)[0]
    return Image.fromarray(arr[:, :, 0], mode="L") if arr.shape[2] == 1 else Image.fromarray(arr, mode="RGB")


def save_image(image: Tensor, path: str | os.PathLike[str]) -> Path:
    """Write one image in [-1, 1] to ``path`` (format from the suffix); returns the path.

    Atomic (:func:`~invertkit.io.atomic.write_atomic`): a full disk or a kill never leaves a truncated
    image under the final name; a full disk raises one :class:`~invertkit.io.atomic.StorageError` line."""
    from .atomic import write_atomic

    pil = tensor_to_pil(image)
    fmt = Image.registered_extensions().get(Path(path).suffix.lower())  # the temporary name must not decide the format
    return write_atomic(path, lambda tmp: pil.save(tmp, format=fmt))


def make_grid(rows: Sequence[Tensor], *, scale: int = 1, pad: int = 2) -> Image.Image:
    """Tile images into a grid: ``rows[i]`` is ``N x C x H x W`` (same N, H, W), one grid row per tensor.

    ``scale`` enlarges each image by an integer factor (nearest neighbour, so pixels stay honest).
    """
    n, c, h, w = rows[0].shape
    hs, ws = h * scale, w * scale
    grid = Image.new("RGB", (n * (ws + pad) + pad, len(rows) * (hs + pad) + pad), (255, 255, 255))
    for r, batch in enumerate(rows):
        for i in range(batch.shape[0]):
            tile = tensor_to_pil(batch[i]).convert("RGB")
            if scale != 1:
                tile = tile.resize((ws, hs), Image.Resampling.NEAREST)
            grid.paste(tile, (pad + i * (ws + pad), pad + r * (hs + pad)))
    return grid


def slug(text: str, default: str = "image") -> str:
    """A file-name-safe form of a name (``"b16.conv0 c12"`` -> ``"b16.conv0_c12"``; ``default`` if nothing is left)."""
    import re

    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._-") or default
