"""Segment new tiles with a trained checkpoint.

    python predict.py runs/points200-seed0/model.pt tile.png more_tiles/ --out predictions/

For every input image (files, or the images inside folders) it writes <stem>_classes.png (one
class index per pixel) and <stem>_preview.png (the class colours: the legend's from classes.txt
when it gives them), both at the input's own size: whole tiles are covered by overlapping
windows (train.predict_tile), never resized. A GeoTIFF input is read and segmented block by
block, so a scene larger than memory fits, and also gives <stem>_classes.tif: the class map as a
raster with the input's CRS and transform (and the legend as its colour table), to open over the
input in a GIS. The class names, band count and normalisation come from the checkpoint. All
inputs are checked before the first file is written, and every file is written atomically.
"""
import os
import time
from pathlib import Path

import torch
from PIL import Image

import geotiff
from device import pick_device, pick_precision
from tiles import IMAGE_SUFFIXES, OneLineParser, colourise, read_image
from train import predict_tile, save_atomic
from unet import UNet


def load_checkpoint(path):
    """The model a train.py checkpoint describes, and the checkpoint dict."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"checkpoint not found: {path}")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        state, classes, bands = checkpoint["state_dict"], checkpoint["classes"], checkpoint["bands"]
    except Exception as error:
        raise ValueError(f"{path}: not a train.py checkpoint ({type(error).__name__}: {error})") from None
    if state["head.weight"].shape[0] != len(classes) or state["stem.0.weight"].shape[1] != bands:
        raise ValueError(f"{path}: its weights are for {state['head.weight'].shape[0]} classes and "
                         f"{state['stem.0.weight'].shape[1]} bands, but it declares {len(classes)} classes "
                         f"and {bands} bands")
    model = UNet(len(classes), weights=None, in_channels=bands, mean=[0.0] * bands, std=[1.0] * bands)
    model.load_state_dict(state)                  # brings the training data's mean/std with it
    return model.eval(), checkpoint


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


def main(argv=None):
    parser = OneLineParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint")
    parser.add_argument("inputs", nargs="+", help="image files or folders of images")
    parser.add_argument("--out", required=True, help="folder for the predicted PNGs (and GeoTIFFs)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"],
                        help="auto: bf16 where the device computes it natively, else fp32")
    args = parser.parse_args(argv)
    try:
        model, checkpoint = load_checkpoint(args.checkpoint)
        files = expand(args.inputs)
        for path in files:                                # check everything before writing anything
            bands = geotiff.band_count(path) if geotiff.is_geotiff(path) else read_image(path).shape[0]
            if bands != checkpoint["bands"]:
                raise ValueError(f"{path}: has {bands} bands, the checkpoint was trained on {checkpoint['bands']}")
        device = pick_device(args.device)
        precision, why = pick_precision(args.precision, device)
    except (ValueError, OSError) as error:
        parser.error(str(error))
    model.to(device, memory_format=torch.channels_last)
    print(f"{len(files)} image(s); device {device}; precision {precision} ({why})", flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    window, colours = checkpoint["image_size"], checkpoint.get("colours")
    predict = lambda pixels: predict_tile(model, pixels, window, precision=precision).argmax(0).numpy().astype("uint8")
    for i, path in enumerate(files, 1):
        start, written = time.time(), [f"{path.stem}_classes.png", f"{path.stem}_preview.png"]
        if geotiff.is_geotiff(path):       # block by block, and a class raster that keeps its place on the map
            written.append(f"{path.stem}_classes.tif")
            blocks = announce(geotiff.predict_scene(path, predict, window), f"[{i}/{len(files)}] {path}")
            tmp = out / f".{written[-1]}.tmp{os.getpid()}"
            class_map = geotiff.write_classes(tmp, path, blocks, colours)
            os.replace(tmp, out / written[-1])
        else:
            class_map = predict(read_image(path))
        for picture, name in ((class_map, written[0]), (colourise(class_map, colours), written[1])):
            save_atomic(lambda f: Image.fromarray(picture).save(f, format="PNG"), out / name)
        print(f"[{i}/{len(files)}] {path} -> {', '.join(str(out / n) for n in written)} "
              f"({class_map.shape[1]}x{class_map.shape[0]}, {time.time() - start:.1f}s)", flush=True)


def announce(blocks, name):
    """Pass blocks through, with a progress line per block: a big scene takes minutes."""
    for row, col, classes in blocks:
        print(f"  {name}: block at row {row}, column {col} done", flush=True)
        yield row, col, classes


if __name__ == "__main__":
    main()
