"""Write files for other tools: the synthetic scenes (a tile folder, a big GeoTIFF scene, GIS point
layers), or a trained model as ONNX for QGIS's Deepness plugin and predict.py.

    python export.py tiles DIR                         200/60/60 PNG tiles + masks, seed 0
    python export.py tiles DIR --format tif --bands 4  GeoTIFFs, RGB + near infrared, on a map
    python export.py scene FILE.tif --size 10000       one 10,000² uint16 GeoTIFF, block by block
    python export.py layers DIR --points-per-class 10 --reference-points 50
                                                       point layers on its tiles (docs/gis.md)
    python export.py onnx RUN/model.pt model.onnx      a trained model for QGIS's Deepness plugin
                                                       and for predict.py (docs/gis.md)

A folder written by `tiles` is in the format train.py --data reads (docs/own-data.md) and trains to
exactly the built-in numbers: the same 8-bit pixels, the same clicks from the same seed. Its
GeoTIFFs are placed side by side in UTM zone 32N at 10 m per pixel, as Sentinel-2's visible and
near-infrared bands. A `scene` tests predict.py at scale. `layers` plays a GIS user over such a
folder: DIR/clicks.gpkg, K random clicks per class on each training tile, and DIR/reference.gpkg,
N random reference points on each test tile, both in lon/lat, each point's class from the masks.
`onnx` writes a checkpoint as an ONNX file with Deepness's metadata (lib/onnx_model.py).
"""

import itertools
import tempfile
from pathlib import Path

import numpy as np

from clicks import sample_points
from data import CLASSES, split_scene
from lib import annotations, rasters
from lib.cli import OneLineParser, atomic, check_output_folder, guard, need

EXAMPLE_CRS = "EPSG:32632"  # UTM zone 32N ...
EXAMPLE_PIXEL = 10.0  # ... at 10 m per pixel


def example_transform(split_index, scene_index, size):
    """A made-up place on the map for scene `scene_index` of a split: side by side in a row, one
    row per split."""
    return need("rasterio.transform", "GeoTIFF tiles").from_origin(
        500_000 + scene_index * size * EXAMPLE_PIXEL,
        5_000_000 - split_index * size * EXAMPLE_PIXEL,
        EXAMPLE_PIXEL,
        EXAMPLE_PIXEL,
    )


def export_tiles(root, seed=0, sizes=(200, 60, 60), image_size=128, format="png", bands=3):
    """Write the synthetic splits as a tile folder, as PNGs or as GeoTIFFs (bands=4 adds near
    infrared); built aside and renamed, so never half-written."""
    root = Path(root)
    if seed < 0 or min(sizes) < 0 or image_size < 1:
        raise ValueError(
            f"seed and split sizes must be >= 0 and the image size >= 1, got seed {seed}, sizes "
            f"{tuple(sizes)}, image size {image_size}"
        )
    if format not in ("png", "tif") or bands not in (3, 4) or (format, bands) == ("png", 4):
        raise ValueError(
            f"export writes --format png (3 bands) or tif (3 or 4 bands), got {format} with "
            f"{bands} bands"
        )
    if root.exists() and any(root.iterdir()):
        raise ValueError(f"{root}: exists and is not empty; export into a new folder")
    if format == "tif":
        geotiff = need("lib.geotiff", "writing GeoTIFF tiles")
    else:
        Image = need("PIL.Image", "writing PNG tiles")
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".export-", dir=root.parent))
    (staging / "classes.txt").write_text("\n".join(CLASSES) + "\n")
    for s, (split, size) in enumerate(zip(("train", "val", "test"), sizes)):
        for folder in ("images", "masks"):
            (staging / split / folder).mkdir(parents=True)
        for i in range(size):  # one scene at a time: big scenes fit in memory
            image, mask = split_scene(split, i, seed, image_size, bands)
            name = f"scene_{i:04d}.{format}"
            if format == "tif":
                place = EXAMPLE_CRS, example_transform(s, i, image_size)
                geotiff.write(staging / split / "images" / name, image, *place)
                geotiff.write(staging / split / "masks" / name, mask[None], *place)
            else:
                Image.fromarray(image.transpose(1, 2, 0)).save(staging / split / "images" / name)
                Image.fromarray(mask).save(staging / split / "masks" / name)
    if root.exists():
        root.rmdir()
    staging.rename(root)
    print(
        f"wrote {sum(sizes)} synthetic tiles ({image_size}x{image_size}, {bands} bands, {format}, "
        f"seed {seed}) to {root}"
    )


def export_scene(path, size, bands=4, seed=0, block=1000):
    """A size x size synthetic scene as a uint16 GeoTIFF, made and written block by block, so it
    can be far larger than memory: each block x block piece is one synthetic scene of the test
    split (values as the generator makes them, 0-255, in a 16-bit raster)."""

    def blocks():
        for k, (row, col) in enumerate(itertools.product(range(0, size, block), repeat=2)):
            image, _ = split_scene("test", k, seed, block, bands)
            yield (
                row,
                col,
                image[:, : min(block, size - row), : min(block, size - col)].astype(np.uint16),
            )

    geotiff = need("lib.geotiff", "writing a GeoTIFF scene")
    place = EXAMPLE_CRS, example_transform(0, 0, 0)
    geotiff.write_blocks(path, size, size, bands, "uint16", *place, blocks())


def export_layers(root, points_per_class, reference_points, seed=0):
    """DIR/clicks.gpkg and DIR/reference.gpkg over a folder of GeoTIFF tiles, from its masks."""
    root, rng = Path(root), np.random.default_rng([seed, 2000])
    legend = annotations.read_legend(root)
    geotiff, vector_out = (
        need(f"lib.{m}", "point layers over GeoTIFF tiles") for m in ("geotiff", "vector_out")
    )
    for split, name, how in (
        ("train", "clicks", dict(points_per_class=points_per_class)),
        ("test", "reference", dict(points_per_image=reference_points)),
    ):
        found = []
        for tile in sorted((root / split / "images").glob("*.tif")):
            mask = rasters.read_mask(
                root / split / "masks" / tile.name, legend, geotiff.read(tile, 1).shape
            )
            found.append((tile, sample_points(mask, rng, **how)))
        if not found:
            raise ValueError(
                f"{root / split / 'images'}: no GeoTIFF tiles (export them with --format tif)"
            )
        with atomic(root / f"{name}.gpkg") as tmp:
            vector_out.write_points(tmp, found, legend.names)
        print(
            f"wrote {sum(c.rows.size for _, c in found)} points on {len(found)} {split} tiles to "
            f"{root / name}.gpkg"
        )


def command_line():
    """export.py's four commands and their flags."""
    parser = OneLineParser(prog="export.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["tiles", "scene", "layers", "onnx"])
    parser.add_argument(
        "path",
        help="tiles: a new folder; scene: the GeoTIFF to write; layers: a GeoTIFF tile folder; "
        "onnx: the checkpoint (RUN/model.pt)",
    )
    parser.add_argument("onnx_file", nargs="?", help="onnx: the .onnx file to write")
    parser.add_argument(
        "--tile-size",
        type=int,
        help="onnx: the window Deepness cuts (default: the one the model was trained on)",
    )
    parser.add_argument(
        "--overlap", type=int, default=50, help="onnx: Deepness's window overlap, percent"
    )
    parser.add_argument(
        "--int8",
        metavar="IMAGES",
        help="onnx: int8, calibrated on the images of this folder (default: the run's training "
        "tiles, where it was trained on a folder)",
    )
    parser.add_argument("--fp32", action="store_true", help="onnx: the exact fp32 graph, not int8")
    parser.add_argument(
        "--resolution",
        type=float,
        help="onnx: cm per pixel of the imagery (default: the GeoTIFF training tiles')",
    )
    parser.add_argument(
        "--points-per-class",
        type=int,
        default=10,
        help="layers: clicks per class per training tile",
    )
    parser.add_argument(
        "--reference-points", type=int, default=50, help="layers: reference points per test tile"
    )
    parser.add_argument("--seed", type=int, default=0)
    for split, size in (("train", 200), ("val", 60), ("test", 60)):
        parser.add_argument(f"--{split}-size", type=int, default=size)
    parser.add_argument("--image-size", type=int, default=128, help="tiles: their size")
    parser.add_argument(
        "--format",
        default="png",
        choices=["png", "tif"],
        help="tif: GeoTIFFs, placed on a made-up map",
    )
    parser.add_argument(
        "--bands", type=int, default=3, choices=[3, 4], help="4: RGB + near infrared (tif only)"
    )
    parser.add_argument(
        "--size", type=int, default=10_000, help="scene: its width and height in pixels"
    )
    return parser


def main(argv=None):
    parser = command_line()
    # options may stand between the positionals: export.py onnx RUN/model.pt --resolution 50 OUT
    args = parser.parse_intermixed_args(argv)
    if (args.command == "onnx") != (args.onnx_file is not None):
        parser.error("export.py onnx takes a checkpoint and the .onnx file to write; nothing else")
    try:
        if args.command == "onnx":
            check_output_folder(Path(args.onnx_file).parent, "onnx_file")
            print(
                need("lib.onnx_model", "exporting to ONNX").export_command(
                    args.path,
                    args.onnx_file,
                    args.tile_size,
                    args.overlap,
                    args.resolution,
                    args.int8,
                    args.fp32,
                )
            )
            return
        check_output_folder(
            Path(args.path).parent if args.command == "scene" else args.path, "path"
        )
        if args.command == "layers":
            export_layers(args.path, args.points_per_class, args.reference_points, args.seed)
        elif args.command == "scene":
            if args.size < 1 or Path(args.path).exists():
                raise ValueError(
                    f"scene needs a new file and a size >= 1, got {args.path} and {args.size}"
                )
            export_scene(args.path, args.size, args.bands, args.seed)
            print(f"wrote a {args.size}x{args.size}, {args.bands}-band uint16 scene to {args.path}")
        else:
            export_tiles(
                args.path,
                args.seed,
                (args.train_size, args.val_size, args.test_size),
                args.image_size,
                args.format,
                args.bands,
            )
    except (ValueError, OSError) as error:
        parser.error(str(error))


if __name__ == "__main__":
    guard(main)
