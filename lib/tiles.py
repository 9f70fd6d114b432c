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
number of bands (all tiles the same count). Tiles are kept as stored (uint8 stays uint8, .npy
files are memory-mapped) and clicks as coordinate lists, so memory follows the size of the data;
each band is standardised with the mean and std of the training tiles, which the checkpoint keeps.
`python export.py tiles DIR` writes the synthetic scenes in this format.

The pieces: lib/annotations.py reads classes.txt and the clicks CSVs, lib/rasters.py the images
and masks (in any of their three codings), lib/vector.py GIS point layers; this module checks them
against each other, a split at a time, each bad input with its own one-line error.
"""

from pathlib import Path

from clicks import click_rng, count_labels, sample_points, sample_split_points
from data import CLASSES, make_split
from lib.annotations import Legend, read_clicks, read_legend
from lib.cli import need
from lib.rasters import IMAGE_SUFFIXES, MASK_SUFFIXES, is_tiff, read_image, read_mask
from unet import band_statistics


def read_targets(folder, data):
    """Extra targets for the training tiles (train.py --extra-targets): <stem>_classes.png in
    `folder` for every training tile, as baseline.py --predict-train and predict.py write them:
    (H, W) uint8 class indices, 255 where there is no target."""
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
    if layer:
        layer = read_layers(layer, legend)
    placed = dict(train=0, val=0, test=0, left_out=0)
    rng = click_rng(seed)  # as clicks.sample_split_points
    for split in ("train", "val", "test"):
        if split == "val" and not (root / "val").exists():
            data["val"] = ([], [])
            continue
        paths, images, masks, clicks = read_split(root, split, legend, layer)
        data["stems"][split] = [path.stem for path in paths]
        if layer:  # the layer's points on each tile: clicks, or reference points
            placed_here, labels = place_points(layer, root / split, paths, images, masks)
            placed["left_out"] += placed_here.pop("left_out")
            placed[split] += placed_here[split]
            if split == "train":
                data[split] = (images, labels)
                continue
            data["scored_on"][split] = placed_here["scored_on"]
            masks = labels
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
        check_placed(layer, placed, root)
    band_counts = {i.shape[0] for split in ("train", "val", "test") for i in data[split][0]}
    if len(band_counts) > 1:
        raise ValueError(
            f"{root}: all tiles need the same number of bands, found {sorted(band_counts)}"
        )
    data["mean"], data["std"] = band_statistics(data["train"][0])
    data["bands"] = band_counts.pop()
    return data


def read_layers(layer, legend):
    """(path or paths, class field) -> (their names, [(crs, points, path) per layer])."""
    files = [layer[0]] if isinstance(layer[0], (str, Path)) else list(layer[0])
    vector = need("lib.vector", "reading GIS point layers (--points-file)")
    layers = [vector.read_layer(file, layer[1], legend.names, legend.codes) for file in files]
    return ", ".join(map(str, files)), layers


def place_points(layer, folder, paths, images, masks):
    """The layer's points on a split's tiles: ({split: how many placed, 'left_out': on nodata or
    unknown pixels, and for val/test 'scored_on'}, the training tiles' clicks or the val/test
    tiles' masks, a tile without one taking its reference points)."""
    vector = need("lib.vector", "reading GIS point layers (--points-file)")
    split = folder.name
    located = [vector.layer_clicks(layer[1], *tile) for tile in zip(paths, images, masks)]
    placed = dict(left_out=sum(left_out for _, left_out in located))
    if split == "train":
        placed[split] = sum(c.rows.size for c, _ in located)
        return placed, [c for c, _ in located]
    placed[split] = sum(c.rows.size for (c, _), m in zip(located, masks) if m is None)
    if all(m is None for m in masks) and not placed[split]:
        raise ValueError(
            f"{folder}: its tiles have no masks and no point of {layer[0]} falls on them: nothing "
            f"to score them on"
        )
    if all(m is not None for m in masks):
        placed["scored_on"] = "masks"
    elif all(m is None for m in masks):
        placed["scored_on"] = "reference points"
    else:
        placed["scored_on"] = "masks and reference points"
    masks = [
        m if m is not None else vector.reference_mask(c, i.shape[-2:])
        for (c, _), m, i in zip(located, masks, images)
    ]
    return placed, masks


def check_placed(layer, placed, root):
    """Refuse a layer none of whose points fall on a tile, or on a training tile; else say where
    they fell."""
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
