"""Segment new tiles with a trained checkpoint.

    python predict.py runs/points200-seed0/model.pt tile.png more_tiles/ --out predictions/

For every input image (files, or the images inside folders) it writes <stem>_classes.png (one
class index per pixel) and <stem>_preview.png (the class colours: the legend's from classes.txt
when it gives them), both at the input's own size: whole tiles are covered by overlapping
windows (train.predict_tile), never resized. The class
names, band count and normalisation come from the checkpoint. All inputs are checked before the
first file is written, and every file is written atomically.
"""
import time
from pathlib import Path

import torch
from PIL import Image

from tiles import IMAGE_SUFFIXES, OneLineParser, colourise, read_image
from device import pick_device, pick_precision
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
    parser.add_argument("--out", required=True, help="folder for the predicted PNGs")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"],
                        help="auto: bf16 where the device computes it natively, else fp32")
    args = parser.parse_args(argv)
    try:
        model, checkpoint = load_checkpoint(args.checkpoint)
        files = expand(args.inputs)
        for path in files:                                # check everything before writing anything
            bands = read_image(path).shape[0]
            if bands != checkpoint["bands"]:
                raise ValueError(f"{path}: has {bands} bands, the checkpoint was trained on {checkpoint['bands']}")
        device = pick_device(args.device)
        precision, why = pick_precision(args.precision, device)
    except ValueError as error:
        parser.error(str(error))
    model.to(device, memory_format=torch.channels_last)
    print(f"{len(files)} image(s); device {device}; precision {precision} ({why})", flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for i, path in enumerate(files, 1):
        start = time.time()
        image = read_image(path)
        class_map = predict_tile(model, image, checkpoint["image_size"], precision=precision).argmax(0)
        class_map = class_map.numpy().astype("uint8")
        for picture, suffix in ((class_map, "classes"), (colourise(class_map, checkpoint.get("colours")), "preview")):
            save_atomic(lambda f: Image.fromarray(picture).save(f, format="PNG"), out / f"{path.stem}_{suffix}.png")
        print(f"[{i}/{len(files)}] {path} -> {out / path.stem}_classes.png, _preview.png "
              f"({image.shape[2]}x{image.shape[1]}, {time.time() - start:.1f}s)", flush=True)


if __name__ == "__main__":
    main()
