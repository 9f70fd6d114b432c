"""Segment new tiles with a trained checkpoint.

    python predict.py runs/points200-seed0/model.pt tile.png more_tiles/ --out predictions/

For every input image (files, or the images inside folders) it writes <stem>_classes.png (one
class index per pixel) and <stem>_preview.png (the class colours: the legend's from classes.txt
when it gives them), both at the input's own size: whole tiles are covered by overlapping
windows (evaluation.predict_tile), never resized. A GeoTIFF input is read and segmented block by
block, so a scene larger than memory fits, and also gives <stem>_classes.tif: the class map as a
raster with the input's CRS and transform (and the legend as its colour table), to open over the
input in a GIS. Under torchrun (`torchrun --nproc_per_node N predict.py ...`) each of the N
processes segments every N-th input, so a folder of scenes takes 1/N of the time on N GPUs.
With --min-confidence P a pixel whose top class is less probable than P is
written 255 (unknown, black in the preview): the network's confident pixels, which train.py
--extra-targets can train a new model on (self-training, docs/recipe.md). A run trained with
--forest-weight W keeps its clicks' features in forest.npz beside model.pt: the pixel forest is
fitted on them again (a minute or two) and fused into every map, as the run was scored; with
--tile-prior S each map is weighted by its own class shares, as a run whose val chose S scored.
The class names, band count and normalisation come from the checkpoint. All inputs are checked
before the first file is written, and every file is written atomically.
"""

import time
from pathlib import Path

import torch

from lib import distributed
from lib.annotations import colour_rgb, colourise
from lib.checkpoint import load_checkpoint
from lib.cli import OneLineParser, atomic, check_output_folder, guard, need
from lib.device import pick_device, pick_precision
from lib.evaluation import predict_tile, tile_prior
from lib.forest import Fusion
from lib.rasters import IMAGE_SUFFIXES, is_tiff, read_image
from lib.settings import add_options, check_tta_zoom_out


def expand(inputs):
    files = []
    for name in inputs:
        path = Path(name)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise ValueError(f"{path}: folder holds no images ({', '.join(IMAGE_SUFFIXES)})")
            files += found
        elif path.is_file():
            files.append(path)
        else:
            raise ValueError(f"input not found: {path}")
    return files


def command_line():
    """predict.py's flags."""
    parser = OneLineParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", help="RUN/model.pt, or an .onnx file of export.py onnx")
    parser.add_argument("inputs", nargs="+", help="image files or folders of images")
    parser.add_argument("--out", required=True, help="folder for the predicted PNGs (and GeoTIFFs)")
    parser.add_argument(
        "--tta",
        action="store_true",
        help="average the 8 flips and quarter turns of each window "
        "(8x the time; what a train.py --data run scores with)",
    )
    parser.add_argument(
        "--tta-zoom-out",
        type=int,
        default=1,
        help="with --tta, also see each image shrunk K times (K x K pixels averaged) and average "
        "the logits, as train.py --tta-zoom-out scores (1 + 1/K^2 the time)",
    )
    parser.add_argument(
        "--tile-prior",
        type=float,
        default=0.0,
        help="weight each image's map (a GeoTIFF's: each block's) by its own class shares to this "
        "power, as train.py --tile-prior scores; the strength a run's val chose is its "
        "metrics.json's tile_prior_chosen (0: off)",
    )
    parser.add_argument(
        "--polygons",
        action="store_true",
        help="for GeoTIFF inputs also write <stem>_polygons.gpkg: "
        "the class map as polygons with a class name, in the scene's CRS (docs/gis.md)",
    )
    parser.add_argument(
        "--min-area",
        type=float,
        default=0.0,
        help="with --polygons: merge patches smaller than "
        "this (map units², e.g. m²) into their neighbours first",
    )
    parser.add_argument(
        "--min-confidence",
        type=float,
        help="write 255 (unknown) where the top class's "
        "probability is below this, e.g. 0.9: confident pixels only, as targets for self-training "
        "(train.py --extra-targets)",
    )
    add_options(parser, names=("device", "precision"))
    return parser


def main(argv=None):
    parser = command_line()
    args = parser.parse_args(argv)
    try:  # every input checked before the first file is written
        check_flags(args)
        model, checkpoint = open_model(args.checkpoint)
        fusion = Fusion.beside(args.checkpoint)  # a --forest-weight run's forest, fitted again
        files = check_inputs(expand(args.inputs), checkpoint, args.polygons)
        device, precision, why = where_to_run(model, args)
    except (ValueError, OSError) as error:
        parser.error(str(error))
    model.to(device, memory_format=torch.channels_last)
    rank, world = distributed.rank_and_world()
    files = distributed.share(files)  # under torchrun each process segments its share of the inputs
    print(
        (f"process {rank} of {world}: " if world > 1 else "")
        + f"{len(files)} image(s); device {device}; precision {precision} ({why})",
        flush=True,
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if fusion:
        print(f"the pixel forest fused in (weight {fusion.weight}, {len(fusion.classes)} clicks)")
    predict = class_mapper(model, checkpoint["image_size"], precision, args, fusion)
    try:  # a file that fails mid-way (a damaged block, a full disk): one line naming it
        for i, path in enumerate(files, 1):
            segment(path, predict, out, checkpoint, args, f"[{i}/{len(files)}]")
    except (ValueError, OSError) as error:
        parser.error(str(error))


def check_flags(args):
    if args.min_area < 0 or (args.min_area and not args.polygons):
        raise ValueError(f"--min-area must be >= 0 and goes with --polygons, got {args.min_area}")
    if args.min_confidence is not None and not 0 < args.min_confidence < 1:
        raise ValueError(f"--min-confidence must be between 0 and 1, got {args.min_confidence}")
    check_tta_zoom_out(args.tta_zoom_out, args.tta)
    if args.tile_prior < 0:
        raise ValueError(f"--tile-prior must be >= 0, got {args.tile_prior}")
    check_output_folder(args.out)


def open_model(path):
    """(model, checkpoint dict) of a RUN/model.pt, or of an .onnx file of export.py onnx."""
    if Path(path).suffix.lower() == ".onnx":
        onnx_model = need("lib.onnx_model", "running an .onnx model")
        model = onnx_model.OnnxNet(path, threads=torch.get_num_threads())
        return model, model.checkpoint()
    return load_checkpoint(path)


def check_inputs(files, checkpoint, polygons):
    """The input files, each with the checkpoint's band count (and a GeoTIFF with --polygons), and
    the packages their outputs need, before anything is written."""
    need("PIL.Image", "writing the predicted PNGs")
    if any(is_tiff(path) for path in files):
        geotiff = need("lib.geotiff", "segmenting GeoTIFF inputs")
    if polygons:
        need("lib.vector_out", "writing polygons (--polygons)")
    for path in files:
        if polygons and not is_tiff(path):
            raise ValueError(
                f"{path}: --polygons needs GeoTIFF inputs, whose pixels have map coordinates"
            )
        bands = geotiff.band_count(path) if is_tiff(path) else read_image(path).shape[0]
        if bands != checkpoint["bands"]:
            raise ValueError(
                f"{path}: has {bands} bands, the checkpoint was trained on {checkpoint['bands']}"
            )
    return files


def where_to_run(model, args):
    """(device, precision, why): under torchrun this process's GPU; an .onnx model on the CPU."""
    device = distributed.local_device(pick_device(args.device))
    precision, why = pick_precision(args.precision, device)
    if hasattr(model, "session"):  # an .onnx model: onnxruntime on the CPU runs it as is
        if args.precision == "bf16" or args.device not in ("auto", "cpu"):
            raise ValueError(
                f"{args.checkpoint}: an .onnx model runs on the CPU (onnxruntime) in the "
                f"precision it was exported in, got --precision {args.precision} --device "
                f"{args.device}"
            )
        return torch.device("cpu"), "fp32", "onnxruntime: fp32 or int8 graph"
    return device, precision, why


def class_mapper(model, window, precision, args, fusion=None):
    """pixels (bands, H, W) -> the class map (H, W) uint8, 255 where --min-confidence is not met;
    with a run's forest (fusion), from the fused probabilities."""

    def predict(pixels):
        logits = predict_tile(
            model, pixels, window, precision=precision, tta=args.tta, zoom_out=args.tta_zoom_out
        )
        if fusion:
            logits = fusion(pixels, logits)
        logits = tile_prior(logits, args.tile_prior)
        if args.min_confidence is None:
            return logits.argmax(0).numpy().astype("uint8")
        # probabilities only where they are asked for
        confidence, classes = logits.softmax(0).max(0)
        classes[confidence < args.min_confidence] = 255
        return classes.numpy().astype("uint8")

    return predict


def segment(path, predict, out, checkpoint, args, counter):
    """One input's outputs: the class map and its preview (PNG); for a GeoTIFF, segmented block by
    block, the class raster on the input's grid and, with --polygons, its polygons."""
    start, written = time.time(), [f"{path.stem}_classes.png", f"{path.stem}_preview.png"]
    colours = checkpoint.get("colours")
    if is_tiff(path):
        geotiff = need("lib.geotiff", "segmenting GeoTIFF inputs")
        written.append(f"{path.stem}_classes.tif")
        window = checkpoint["image_size"]
        blocks = announce(geotiff.predict_scene(path, predict, window), f"{counter} {path}")
        with atomic(out / written[-1]) as tmp:
            class_map = geotiff.write_classes(
                tmp, path, blocks, colours and [colour_rgb(c) for c in colours]
            )
        if args.polygons:  # polygons a GIS opens, read block by block from the class raster
            vector_out = need("lib.vector_out", "writing polygons (--polygons)")
            written.append(f"{path.stem}_polygons.gpkg")
            with atomic(out / written[-1]) as tmp:
                vector_out.write_polygons(
                    tmp, out / written[-2], checkpoint["classes"], args.min_area
                )
    else:
        class_map = predict(read_image(path))
    Image = need("PIL.Image", "writing the predicted PNGs")
    for picture, name in ((class_map, written[0]), (colourise(class_map, colours), written[1])):
        with atomic(out / name) as tmp:
            Image.fromarray(picture).save(tmp, format="PNG")
    print(
        f"{counter} {path} -> {', '.join(str(out / n) for n in written)} "
        f"({class_map.shape[1]}x{class_map.shape[0]}, {time.time() - start:.1f}s)",
        flush=True,
    )


def announce(blocks, name):
    """Pass blocks through, with a progress line per block: a big scene takes minutes."""
    for row, col, classes in blocks:
        print(f"  {name}: block at row {row}, column {col} done", flush=True)
        yield row, col, classes


if __name__ == "__main__":
    guard(main)
