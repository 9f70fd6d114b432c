"""What a run trains and scores on: the synthetic scenes, or your own folder of tiles, masks and
clicks.

    DIR/classes.txt                 one class per line, line order = class index: `Building`, or
                                    with its mask colour `Building #3C1098`; `ignore #9B9B9B`
                                    lines name colours that mean "unknown"
    DIR/{train,val,test}/images/    <stem>.png | .tif | .tiff | .jpg | .npy  (npy: C,H,W, or H,W)
    DIR/{train,val,test}/masks/     <stem>.png | .npy   class indices (255 = unknown), or the
                                    classes' colours (RGB, RGBA
                                    or palette PNG) when
                                    classes.txt has them
    DIR/train/points/               <stem>.csv  optional clicks: header x,y,class (name or index);
                                    suggest.py adds rows x,y, with the class left for you to fill in

A training tile with a points CSV learns from those clicks only (it needs no mask); any other
training tile gets clicks sampled once from its mask, as for the synthetic scenes. val and test
need masks, since they are scored; val may be left out. With GIS point layers (train.py
--points-file, GeoTIFF tiles) the layers' points are the training tiles' clicks, and the
reference points of val/test tiles that have no mask (docs/gis.md). Tiles may have any size and any
number
of bands (all tiles the same count). Tiles are kept as stored (uint8 stays uint8, .npy files are
memory-mapped) and clicks as coordinate lists, so memory follows the size of the data; each band
is standardised with the mean and std of the training tiles, which the checkpoint keeps.
`python export.py tiles DIR` writes the synthetic scenes in this format. (Longer than the other
chapters because the folder format is one contract: the legend, the images, the masks in three
codings and the clicks, from CSVs or GIS point layers (vector.py), are checked against each other,
each bad input with its own one-line error.)
"""

import csv
import os
import re
import shutil
from pathlib import Path
from typing import NamedTuple

import numpy as np

from clicks import (
    Clicks,
    band_statistics,
    click_rng,
    count_labels,
    sample_points,
    sample_split_points,
)
from data import CLASSES, COLOURS, IGNORE, make_split
from lib.cli import atomic, need, one_line

TIFF_SUFFIXES = (".tif", ".tiff")  # read by rasterio (lib/geotiff.py); PNG and JPEG by Pillow
IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".npy")
MASK_SUFFIXES = (".png", ".npy", ".tif", ".tiff")
PALETTE = list(COLOURS) + [
    "#9467bd",
    "#ff7f0e",
    "#17becf",
    "#e377c2",
    "#bcbd22",
    "#8c564b",
    "#000000",
]
HEX_COLOUR = re.compile(r"#[0-9a-fA-F]{6}")


class Legend(NamedTuple):
    """classes.txt: class names in index order, and how the masks code them. codes[k] is class k's
    colour ('#RRGGBB') or mask value (an integer); codes is None when masks hold the class indices
    themselves. `ignored` lists the codes that mean "unknown"."""

    names: tuple
    codes: list = None
    ignored: list = ()

    @property
    def colours(self):
        return self.codes if self.codes and isinstance(self.codes[0], str) else None


def read_legend(root):
    """Parse classes.txt: one class per line, optionally ending in its mask colour (#RRGGBB) or
    value (an integer; names may contain spaces), and `ignore <code>` lines."""
    path = Path(root) / "classes.txt"
    if not path.is_file():
        raise ValueError(
            f"{path}: missing (one class name per line, optionally followed by its mask colour "
            f"#RRGGBB or value)"
        )
    names, codes, ignored = [], [], []
    for number, line in enumerate(read_text(path).splitlines(), 1):
        if not line.strip():
            continue
        last = line.split()[-1]  # a code only after a name: "10" alone is a name
        code = (
            None
            if len(line.split()) == 1
            else last.upper()
            if HEX_COLOUR.fullmatch(last)
            else int(last)
            if re.fullmatch(r"-?\d+", last)
            else None
        )
        name = line.strip() if code is None else line.strip()[: -len(last)].strip()
        if name.lower() == "ignore":
            if code is None:
                raise ValueError(
                    f"{path}:{number}: an ignore line needs the colour or value it stands for, "
                    f"e.g. 'ignore #9B9B9B' or 'ignore 0'"
                )
            ignored.append(code)
        else:
            names.append(name)
            codes.append(code)
    if len(names) < 2:
        raise ValueError(f"{path}: needs at least two class names, found {names}")
    if len(set(names)) < len(names):
        raise ValueError(f"{path}: class names must differ, got {names}")
    kinds = {type(c) for c in codes + ignored}
    if len(kinds) > 1:
        bare = [n for n, c in zip(names, codes) if c is None]
        raise ValueError(
            f"{path}: give every class a mask colour (or every class a value) or none; "
            + (f"{bare} have none" if bare else f"colours and values are mixed: {codes + ignored}")
        )
    coded = codes[0] is not None  # then every class has a code, of one kind
    if coded and len(set(codes + ignored)) < len(codes + ignored):
        raise ValueError(
            f"{path}: each colour or value may stand for one class only, got {codes + ignored}"
        )
    return Legend(tuple(names), codes if coded else None, ignored)


def read_text(path):
    """A text file a person wrote (classes.txt, a clicks CSV): UTF-8 with or without the BOM a
    spreadsheet's "CSV UTF-8" starts with, or UTF-16 with its BOM. Anything else is one line
    naming the file and the line where decoding failed."""
    raw = Path(path).read_bytes()
    encoding = "utf-16" if raw.startswith((b"\xff\xfe", b"\xfe\xff")) else "utf-8-sig"
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise ValueError(
            f"{path}:{line}: not {encoding.replace('-sig', '')} text (byte "
            f"{raw[error.start]:#04x}); save it as UTF-8"
        ) from None


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


def read_clicks(path, shape, classes):
    """Clicks from a CSV with header x,y,class (class = name or index)."""
    rows = list(csv.reader(read_text(path).splitlines()))
    if not rows or [c.strip().lower() for c in rows[0]] != ["x", "y", "class"]:
        raise ValueError(f"{path}: the first line must be the header x,y,class")
    ys, xs, labels = [], [], []
    for number, row in enumerate(rows[1:], 2):
        if not row:
            continue
        try:
            x, y, name = int(row[0]), int(row[1]), row[2].strip()
        except (ValueError, IndexError):
            raise ValueError(
                f"{path}:{number}: expected x,y,class with integer pixel coordinates, got {row}"
            ) from None
        if not (0 <= x < shape[1] and 0 <= y < shape[0]):
            raise ValueError(
                f"{path}:{number}: click ({x}, {y}) is outside the {shape[1]}x{shape[0]} image"
            )
        if not name:
            raise ValueError(
                f"{path}:{number}: the click at ({x}, {y}) has no class yet; label it with a class "
                f"of classes.txt or delete the row"
            )
        index = classes.index(name) if name in classes else int(name) if name.isdigit() else -1
        if not 0 <= index < len(classes):
            raise ValueError(
                f"{path}:{number}: unknown class {name!r}; classes.txt has {list(classes)} (or "
                f"0..{len(classes) - 1})"
            )
        ys.append(y), xs.append(x), labels.append(index)
    return Clicks(np.array(ys, np.int64), np.array(xs, np.int64), np.array(labels, np.int64))


def write_clicks(path, clicks, classes, proposals=()):
    """A clicks CSV (x,y,class, the class by name), atomically; then each proposed (y, x) as a row
    x,y, with the class left empty, for the person to fill in (suggest.py)."""
    with atomic(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["x", "y", "class"])
        writer.writerows(
            [x, y, classes[k]]
            for y, x, k in zip(clicks.rows.tolist(), clicks.cols.tolist(), clicks.classes.tolist())
        )
        writer.writerows([x, y, ""] for y, x in proposals)


def keep_clicks(folder, data):
    """A tile folder run's training clicks, one <stem>.csv per clicked tile in `folder`: what the
    run learned from, which suggest.py proposes new clicks around."""
    folder = Path(folder)
    tmp = folder.with_name(f".{folder.name}.tmp{os.getpid()}")  # whole, or not there
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for stem, labels in zip(data["stems"]["train"], data["train"][1]):
        if isinstance(labels, Clicks):
            write_clicks(tmp / f"{stem}.csv", labels, data["classes"])
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)


def read_targets(folder, data):
    """Extra targets for the training tiles (train.py --extra-targets): <stem>_classes.png in
    `folder` for every training tile, as baseline.py --predict-train and predict.py write them:
    (H, W) uint8 class indices, 255 where there is no target."""
    if not data.get("stems"):
        raise ValueError(
            "--extra-targets needs a tile folder (--data DIR): its maps are found by tile name"
        )
    folder, legend = Path(folder), Legend(tuple(data["classes"]))
    if not folder.is_dir():
        raise ValueError(f"--extra-targets {folder}: not a folder")
    targets = []
    for stem, image in zip(data["stems"]["train"], data["train"][0]):
        path = folder / f"{stem}_classes.png"
        if not path.is_file():
            raise ValueError(
                f"{path}: missing; --extra-targets needs a class map for every training tile"
            )
        targets.append(read_mask(path, legend, image.shape[-2:]))
    return targets


def stems(folder, suffixes):
    return (
        {p.stem: p for p in sorted(folder.iterdir()) if p.suffix.lower() in suffixes}
        if folder.is_dir()
        else {}
    )


def read_split(root, split, legend, layer=None):
    """image paths, images, masks (None where a tile has no mask: a training tile with clicks, or
    any tile when a point layer gives its clicks or reference points), click files."""
    out = ([], [], [], [])
    for tile in iter_split(root, split, legend, layer):
        for column, value in zip(out, tile):
            column.append(value)
    return out


def iter_split(root, split, legend, layer=None):
    """read_split's tiles one at a time, (path, image, mask, click file): a pass over a split that
    needs one tile at a time holds only that one in memory."""
    images = stems(root / split / "images", IMAGE_SUFFIXES)
    if not images:
        raise ValueError(
            f"{root / split / 'images'}: missing or holds no images ({', '.join(IMAGE_SUFFIXES)})"
        )
    masks, clicks = (
        stems(root / split / "masks", MASK_SUFFIXES),
        stems(root / split / "points", (".csv",)),
    )
    for stem, path in images.items():
        image = read_image(path)
        if stem not in masks and not (split == "train" and stem in clicks) and not layer:
            needs = (
                "a mask (masks/<stem>.png or .npy) or clicks (points/<stem>.csv)"
                if split == "train"
                else "a mask (masks/<stem>.png or .npy): val and test tiles are scored"
            )
            raise ValueError(f"{path}: no mask; a {split} image needs {needs}")
        mask = read_mask(masks[stem], legend, image.shape[1:]) if stem in masks else None
        yield path, image, mask, clicks.get(stem)


def load_data(how, seed=0, folder=None, image_size=128, sizes=(200, 60, 60), layer=None):
    """What a run trains and scores on: {'train': (images, point_labels), 'val'|'test': (images,
    dense_masks), 'classes', 'bands', 'mean', 'std', 'scored_on' (per scored split: masks or
    reference points)}, from the synthetic scenes (`sizes` scenes of
    image_size^2 per split) or from a folder of tiles. how: "dense" (a training tile's labels are
    its dense mask), sample_points arguments (its clicks, drawn once from the mask with `seed`), or
    None (a folder whose training tiles all bring clicks). train.py and baseline.py both call this,
    so the same flags and seed give them the same clicks. layer=(path, class field): the clicks and
    reference points come from a GIS point layer (vector.py)."""
    if folder:
        return load_folder(folder, seed, how, layer)
    if layer:
        raise ValueError(
            "--points-file needs a folder of GeoTIFF tiles (--data DIR): its points are placed by "
            "map coordinates"
        )
    data = dict(classes=CLASSES, bands=3, scored_on=dict(val="masks", test="masks"))
    for split, size in zip(("train", "val", "test"), sizes):
        images, dense_masks = make_split(split, size, seed, image_size)
        if split == "train":
            data[split] = (
                images,
                list(dense_masks)
                if how == "dense"
                else sample_split_points(dense_masks, seed, **how),
            )
        else:
            data[split] = (images, dense_masks)
    data["mean"], data["std"] = band_statistics(data["train"][0])  # as for a tile folder
    return data


def load_folder(root, seed, how, layer=None):
    """load_data's dict from a folder of tiles (format in the module docstring).
    how: for training tiles without a clicks file, "dense" (their full mask) or sample_points
    arguments (clicks sampled from the mask); None means every training tile must bring clicks,
    or, with a point layer, get them from it (and val/test tiles without masks its reference
    points)."""
    root = Path(root)
    legend = read_legend(root)
    classes = legend.names
    data = dict(classes=classes, colours=legend.colours, stems={}, scored_on={})
    if layer:  # (path or paths, class field) -> (their names, [(crs, points, path) per layer])
        files = [layer[0]] if isinstance(layer[0], (str, Path)) else list(layer[0])
        vector = need("lib.vector", "reading GIS point layers (--points-file)")
        layer = (
            ", ".join(map(str, files)),
            [vector.read_layer(file, layer[1], classes, legend.codes) for file in files],
        )
    placed = dict(train=0, val=0, test=0, left_out=0)
    rng = click_rng(seed)  # as clicks.sample_split_points
    for split in ("train", "val", "test"):
        if split == "val" and not (root / "val").exists():
            data["val"] = ([], [])
            continue
        paths, images, masks, clicks = read_split(root, split, legend, layer)
        data["stems"][split] = [path.stem for path in paths]
        if layer:  # the layer's points on each tile: clicks, or reference points
            located = [vector.layer_clicks(layer[1], *tile) for tile in zip(paths, images, masks)]
            placed["left_out"] += sum(left_out for _, left_out in located)
            if split == "train":
                placed["train"] += sum(c.rows.size for c, _ in located)
                data[split] = (images, [c for c, _ in located])
                continue
            placed[split] += sum(c.rows.size for (c, _), m in zip(located, masks) if m is None)
            if all(m is None for m in masks) and not placed[split]:
                raise ValueError(
                    f"{root / split}: its tiles have no masks and no point of {layer[0]} falls on "
                    f"them: nothing to score them on"
                )
            data["scored_on"][split] = (
                "masks"
                if all(m is not None for m in masks)
                else "reference points"
                if all(m is None for m in masks)
                else "masks and reference points"
            )
            masks = [
                m if m is not None else vector.reference_mask(c, i.shape[-2:])
                for (c, _), m, i in zip(located, masks, images)
            ]
        if split == "train":
            if paths and is_tiff(paths[0]):  # the pixel size a GIS export records (lib/onnx_model)
                data["pixel_size_m"] = need("lib.geotiff", "GeoTIFF tiles").pixel_size_m(paths[0])
            point_labels = [
                training_labels(*tile, classes, how, rng)
                for tile in zip(paths, images, masks, clicks)
            ]
            if not sum(count_labels(labels) for labels in point_labels):
                raise ValueError(
                    f"{root / 'train'}: no training tile has any label (no clicks, and no mask "
                    f"pixel other than unknown); nothing to train on"
                )
            data[split] = (images, point_labels)
        else:
            data[split] = (images, masks)
            data["scored_on"].setdefault(split, "masks")
    if layer:
        if not placed["train"] + placed["val"] + placed["test"]:
            raise ValueError(
                f"{layer[0]}: no point falls inside any tile of {root} (the layers' CRS: "
                f"{', '.join(str(crs) for crs, *_ in layer[1])})"
            )
        if not placed["train"]:
            raise ValueError(
                f"{layer[0]}: no point falls on a training tile of {root}: nothing to train on"
            )
        print(
            f"point layer {layer[0]}: {placed['train']} clicks on the training tiles; "
            f"{placed['val']} and {placed['test']} reference points on val and test tiles without "
            f"masks; {placed['left_out']} points on nodata or unknown pixels left out",
            flush=True,
        )
    band_counts = {i.shape[0] for split in ("train", "val", "test") for i in data[split][0]}
    if len(band_counts) > 1:
        raise ValueError(
            f"{root}: all tiles need the same number of bands, found {sorted(band_counts)}"
        )
    data["mean"], data["std"] = band_statistics(data["train"][0])
    data["bands"] = band_counts.pop()
    return data


def training_labels(path, image, mask, click_file, classes, how, rng):
    if click_file:
        return read_clicks(click_file, image.shape[1:], classes)
    if how is None:
        raise ValueError(
            f"{path}: no points/{path.stem}.csv; give --points N or --points-per-class K to sample "
            f"its clicks from its mask, or --dense"
        )
    if how == "dense":
        return mask  # every known pixel is a label
    try:
        return sample_points(mask, rng, **how)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None


def colour_rgb(colour):
    """'#RRGGBB' -> (R, G, B)."""
    return tuple(int(colour[i : i + 2], 16) for i in (1, 3, 5))


def colourise(class_map, colours=None):
    """(H, W) class indices -> (H, W, 3) uint8 preview in the legend's colours, or PALETTE's;
    unknown (255) in black."""
    rgb = np.array([colour_rgb(c) for c in colours or PALETTE], dtype=np.uint8)
    return np.where((class_map == IGNORE)[..., None], np.uint8(0), rgb[class_map % len(rgb)])
