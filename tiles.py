"""Your own imagery: read a folder of tiles, masks and clicks into what train.py trains on.

    DIR/classes.txt                 one class name per line; line order = class index
    DIR/{train,val,test}/images/    <stem>.png | .tif | .tiff | .jpg | .npy  (npy: C,H,W or H,W,C)
    DIR/{train,val,test}/masks/     <stem>.png | .npy   dense class indices; 255 = unknown
    DIR/train/points/               <stem>.csv  optional clicks: header x,y,class (name or index)

A training tile with a points CSV learns from those clicks only (it needs no mask); any other
training tile gets clicks sampled once from its mask, as for the synthetic scenes. val and test
need masks, since they are scored; val may be left out. Tiles may have any size and any number
of bands (all tiles the same count). Pixel values are used as stored; each band is standardised
with the mean and std of the training tiles, which the checkpoint keeps for prediction.
`python data.py export DIR` writes the synthetic splits in this format.
"""
import csv
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from data import CLASSES, IGNORE, band_statistics, every_pixel, make_split, sample_points

IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".npy")
MASK_SUFFIXES = (".png", ".npy")
PALETTE = ["#d62728", "#2ca02c", "#1f77b4", "#c8a064", "#7f7f7f", "#9467bd",
           "#ff7f0e", "#17becf", "#e377c2", "#bcbd22", "#8c564b", "#000000"]


def read_image(path):
    """(bands, H, W) float32, values as stored."""
    path = Path(path)
    try:
        if path.suffix.lower() == ".npy":
            array = np.load(path)
        else:
            with Image.open(path) as image:
                array = np.asarray(image.convert("RGB") if image.mode == "P" else image)
    except Exception as error:
        raise ValueError(f"{path}: cannot read image ({type(error).__name__}: {error})") from None
    if array.ndim == 2:
        array = array[None]
    elif array.ndim == 3 and array.shape[-1] < array.shape[0]:     # H, W, C: the band axis is the short one
        array = array.transpose(2, 0, 1)
    if array.ndim != 3 or not np.issubdtype(array.dtype, np.number):
        raise ValueError(f"{path}: expected an image of shape (C, H, W) or (H, W, C), got {array.shape} {array.dtype}")
    return np.ascontiguousarray(array, dtype=np.float32)


def read_mask(path, num_classes, shape):
    """(H, W) uint8 class indices; 255 = unknown."""
    try:
        mask = np.load(path) if path.suffix.lower() == ".npy" else np.asarray(Image.open(path))
    except Exception as error:
        raise ValueError(f"{path}: cannot read mask ({type(error).__name__}: {error})") from None
    if mask.shape != shape:
        raise ValueError(f"{path}: mask is {mask.shape}, its image is {shape}; they must match pixel for pixel")
    bad = np.setdiff1d(np.unique(mask), list(range(num_classes)) + [IGNORE])
    if len(bad):
        raise ValueError(f"{path}: mask values {bad[:5].tolist()} are not class indices 0..{num_classes - 1} or 255")
    return mask.astype(np.uint8)


def read_clicks(path, shape, classes):
    """point_labels (H, W) int64 from a CSV with header x,y,class (class = name or index)."""
    point_labels = np.full(shape, -1, dtype=np.int64)
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows or [c.strip().lower() for c in rows[0]] != ["x", "y", "class"]:
        raise ValueError(f"{path}: the first line must be the header x,y,class")
    for number, row in enumerate(rows[1:], 2):
        if not row:
            continue
        try:
            x, y, name = int(row[0]), int(row[1]), row[2].strip()
        except (ValueError, IndexError):
            raise ValueError(f"{path}:{number}: expected x,y,class with integer pixel coordinates, got {row}") from None
        if not (0 <= x < shape[1] and 0 <= y < shape[0]):
            raise ValueError(f"{path}:{number}: click ({x}, {y}) is outside the {shape[1]}x{shape[0]} image")
        index = classes.index(name) if name in classes else int(name) if name.isdigit() else -1
        if not 0 <= index < len(classes):
            raise ValueError(f"{path}:{number}: unknown class {name!r}; classes.txt has {list(classes)} (or 0..{len(classes) - 1})")
        point_labels[y, x] = index
    return point_labels


def stems(folder, suffixes):
    return {p.stem: p for p in sorted(folder.iterdir()) if p.suffix.lower() in suffixes} if folder.is_dir() else {}


def read_split(root, split, classes):
    """image paths, images, masks (None where a training tile has clicks and no mask), click files."""
    images = stems(root / split / "images", IMAGE_SUFFIXES)
    if not images:
        raise ValueError(f"{root / split / 'images'}: missing or holds no images ({', '.join(IMAGE_SUFFIXES)})")
    masks, clicks = stems(root / split / "masks", MASK_SUFFIXES), stems(root / split / "points", (".csv",))
    out = ([], [], [], [])
    for stem, path in images.items():
        image = read_image(path)
        if stem not in masks and not (split == "train" and stem in clicks):
            needs = "a mask (masks/<stem>.png or .npy) or clicks (points/<stem>.csv)" if split == "train" else \
                    "a mask (masks/<stem>.png or .npy): val and test tiles are scored"
            raise ValueError(f"{path}: no mask; a {split} image needs {needs}")
        mask = read_mask(masks[stem], len(classes), image.shape[1:]) if stem in masks else None
        out[0].append(path), out[1].append(image), out[2].append(mask), out[3].append(clicks.get(stem))
    return out


def load_folder(root, seed, how):
    """The `data` dict train.py expects, from a folder of tiles (format in the module docstring).
    how: for training tiles without a clicks file, "dense" (their full mask) or sample_points
    arguments (clicks sampled from the mask); None means every training tile must bring clicks."""
    root = Path(root)
    if not (root / "classes.txt").is_file():
        raise ValueError(f"{root / 'classes.txt'}: missing (one class name per line)")
    classes = tuple(line.strip() for line in (root / "classes.txt").read_text().splitlines() if line.strip())
    if len(classes) < 2:
        raise ValueError(f"{root / 'classes.txt'}: needs at least two class names, found {list(classes)}")
    data = dict(classes=classes)
    rng = np.random.default_rng([seed, 1000])                  # as data.sample_split_points
    for split in ("train", "val", "test"):
        if split == "val" and not (root / "val").exists():
            data["val"] = ([], None, [])
            continue
        paths, images, masks, clicks = read_split(root, split, classes)
        point_labels = None
        if split == "train":
            point_labels = [training_labels(*tile, classes, how, rng) for tile in zip(paths, images, masks, clicks)]
            masks = [np.full(i.shape[1:], IGNORE, np.uint8) if m is None else m for i, m in zip(images, masks)]
        data[split] = (images, point_labels, masks)
    band_counts = {i.shape[0] for split in ("train", "val", "test") for i in data[split][0]}
    if len(band_counts) > 1:
        raise ValueError(f"{root}: all tiles need the same number of bands, found {sorted(band_counts)}")
    data["mean"], data["std"] = band_statistics(data["train"][0])
    data["bands"] = band_counts.pop()
    return data


def training_labels(path, image, mask, click_file, classes, how, rng):
    if click_file:
        return read_clicks(click_file, image.shape[1:], classes)
    if how is None:
        raise ValueError(f"{path}: no points/{path.stem}.csv; give --points N or --points-per-class K "
                         f"to sample its clicks from its mask, or --dense")
    if how == "dense":
        return every_pixel(mask)
    return sample_points(mask, rng, **how)


def colourise(class_map):
    rgb = np.array([[int(c[i:i + 2], 16) for i in (1, 3, 5)] for c in PALETTE], dtype=np.uint8)
    return rgb[class_map % len(PALETTE)]


def export(root, seed=0, sizes=(200, 60, 60), image_size=128):
    """Write the synthetic splits as a tile folder; built aside and renamed, so never half-written."""
    root = Path(root)
    if seed < 0 or min(sizes) < 0 or image_size < 1:
        raise ValueError(f"seed and split sizes must be >= 0 and the image size >= 1, got seed {seed}, "
                         f"sizes {tuple(sizes)}, image size {image_size}")
    if root.exists() and any(root.iterdir()):
        raise ValueError(f"{root}: exists and is not empty; export into a new folder")
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".export-", dir=root.parent))
    (staging / "classes.txt").write_text("\n".join(CLASSES) + "\n")
    for split, size in zip(("train", "val", "test"), sizes):
        images, masks = make_split(split, size, seed, image_size)
        for folder in ("images", "masks"):
            (staging / split / folder).mkdir(parents=True)
        for i, (image, mask) in enumerate(zip(images, masks)):
            Image.fromarray(image.transpose(1, 2, 0)).save(staging / split / "images" / f"scene_{i:04d}.png")
            Image.fromarray(mask).save(staging / split / "masks" / f"scene_{i:04d}.png")
    if root.exists():
        root.rmdir()
    staging.rename(root)
    print(f"wrote {sum(sizes)} synthetic tiles ({image_size}x{image_size}, seed {seed}) to {root}")


def export_main(argv=None):
    from train import OneLineParser          # train.py imports this module; import it only here
    parser = OneLineParser(prog="data.py", description="python data.py export DIR: the synthetic splits as a tile folder")
    parser.add_argument("command", choices=["export"])
    parser.add_argument("folder")
    parser.add_argument("--seed", type=int, default=0)
    for split, size in (("train", 200), ("val", 60), ("test", 60)):
        parser.add_argument(f"--{split}-size", type=int, default=size)
    parser.add_argument("--image-size", type=int, default=128)
    args = parser.parse_args(argv)
    try:
        export(args.folder, args.seed, (args.train_size, args.val_size, args.test_size), args.image_size)
    except ValueError as error:
        parser.error(str(error))
