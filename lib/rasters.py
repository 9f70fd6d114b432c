"""Reading a tile's image and mask: PNG and JPEG through Pillow, TIFF and GeoTIFF through rasterio
(lib/geotiff.py), .npy through numpy; each package imported only when a file needs it. A mask
comes back as class indices (255 = unknown) whichever way it codes them: indices, the legend's
colours or its values (lib/annotations.py reads the legend).
"""

from pathlib import Path

import numpy as np

from data import IGNORE
from lib.cli import need, one_line

TIFF_SUFFIXES = (".tif", ".tiff")  # read by rasterio (lib/geotiff.py); PNG and JPEG by Pillow
IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".npy")
MASK_SUFFIXES = (".png", ".npy", ".tif", ".tiff")


def read_image(path):
    """(bands, H, W) in the stored dtype: a view of the decoded pixels, never a float copy; a
    .npy file is memory-mapped, so only the crops that are read come into memory. Which axis holds
    the bands comes from the format, never from the shape (a 64 x 3 strip is 64 x 3): a TIFF
    (rasterio) and a .npy file are (bands, H, W) or (H, W), a PNG or JPEG (Pillow) is (H, W) or
    (H, W, bands)."""
    path = Path(path)
    reader = image_reader(path)
    try:
        if path.suffix.lower() == ".npy":
            array = np.load(path, mmap_mode="r")
        elif is_tiff(path):
            array = reader.read(path)
        else:
            with reader.open(path) as image:
                array = np.asarray(image.convert("RGB") if image.mode == "P" else image)
                array = array.transpose(2, 0, 1) if array.ndim == 3 else array
    except Exception as error:
        raise ValueError(f"{path}: cannot read image ({one_line(error)})") from None
    array = array[None] if array.ndim == 2 else array
    if array.ndim != 3 or not np.issubdtype(array.dtype, np.number):
        raise ValueError(
            f"{path}: expected an image of shape (bands, H, W) or (H, W), got {array.shape} "
            f"{array.dtype}"
        )
    return array


def is_tiff(path):
    """A file named .tif/.tiff is opened as a TIFF or not at all (lib/geotiff.py says why)."""
    return Path(path).suffix.lower() in TIFF_SUFFIXES


def image_reader(path):
    """The module that reads an image file: lib.geotiff (rasterio) for a TIFF, Pillow for PNG and
    JPEG, numpy (None) for .npy; a reader's package that is not installed costs one line."""
    suffix = Path(path).suffix.lower()
    if suffix == ".npy":
        return None
    if is_tiff(path):
        return need("lib.geotiff", f"reading {Path(path).name} (a GeoTIFF)")
    return need("PIL.Image", f"reading {Path(path).name} (a {suffix[1:].upper()} file)")


def read_mask(path, legend, shape):
    """(H, W) uint8 class indices, 255 = unknown: from an index mask, or through the legend from
    a colour mask (RGB, RGBA or palette) or a value-coded one."""
    reader = image_reader(path)
    try:
        if path.suffix.lower() == ".npy":
            mask = np.load(path)
        elif is_tiff(path):
            mask = reader.read(path)
            mask = mask[0] if len(mask) == 1 else mask.transpose(1, 2, 0)
        else:
            with reader.open(path) as image:
                colour = legend.colours and image.mode in ("P", "RGB", "RGBA", "LA", "PA")
                mask = np.asarray(image.convert("RGB") if colour else image)
    except Exception as error:
        raise ValueError(f"{path}: cannot read mask ({one_line(error)})") from None
    if mask.shape[:2] != tuple(shape):
        raise ValueError(
            f"{path}: mask is {mask.shape[:2]}, its image is {tuple(shape)}; they must match pixel "
            f"for pixel"
        )
    if mask.ndim == 3:
        if not legend.colours:
            raise ValueError(
                f"{path}: a colour mask, but classes.txt gives no colours; write each class's mask "
                f"colour after its name, e.g. 'Building #3C1098'"
            )
        rgb = mask[..., :3].astype(np.int64)
        return codes_to_classes(path, rgb[..., 0] << 16 | rgb[..., 1] << 8 | rgb[..., 2], legend)
    if legend.colours:  # one band where the legend gives colours: greys, or not the legend's masks
        try:
            return codes_to_classes(path, mask.astype(np.int64) * 0x010101, legend)
        except ValueError:
            values = np.unique(mask)
            raise ValueError(
                f"{path}: a single-band mask (values {values[:5].tolist()}"
                f"{', ...' if len(values) > 5 else ''}), but classes.txt gives each class a "
                f"colour: the masks do not match the legend (class-index masks: drop the colours "
                f"from classes.txt)"
            ) from None
    if legend.codes:
        return codes_to_classes(path, mask.astype(np.int64), legend)
    bad = np.setdiff1d(np.unique(mask), list(range(len(legend.names))) + [IGNORE])
    if len(bad):
        raise ValueError(
            f"{path}: mask values {bad[:5].tolist()} are not class indices "
            f"0..{len(legend.names) - 1} or 255"
            + (
                " (a value-coded mask? end each line of classes.txt with its value)"
                if legend.codes is None
                else ""
            )
        )
    return mask.astype(np.uint8)


def codes_to_classes(path, pixels, legend):
    """Mask codes (colours packed as 0xRRGGBB, or values) -> class indices, 255 where the code is
    an `ignore` one. A code that classes.txt does not list stops the run: it would otherwise be
    silently mislabeled."""
    number = lambda code: int(code[1:], 16) if isinstance(code, str) else code
    table = sorted(
        [(number(c), k) for k, c in enumerate(legend.codes)]
        + [(number(c), IGNORE) for c in legend.ignored]
    )
    known, values = np.array([c for c, _ in table]), np.array([v for _, v in table], np.uint8)
    at = np.searchsorted(known, pixels).clip(max=len(known) - 1)
    listed = known[at] == pixels
    if not listed.all():
        unknown, counts = np.unique(pixels[~listed], return_counts=True)
        first = np.argsort(-counts, kind="stable")[:5]
        kind, show = ("colour", lambda c: f"#{c:06X}") if legend.colours else ("value", str)
        named = ", ".join(f"{show(unknown[i])} ({counts[i]} px)" for i in first)
        example = "#RRGGBB" if legend.colours else "VALUE"
        raise ValueError(
            f"{path}: {len(unknown)} {kind}(s) not in classes.txt: "
            f"{named}{', ...' if len(unknown) > 5 else ''}; add each as a class or an 'ignore "
            f"{example}' line"
            + (" (a mask saved as JPEG shows many: use PNG)" if legend.colours else "")
        )
    return values[at]
