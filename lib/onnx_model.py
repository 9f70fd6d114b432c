"""A trained checkpoint as an ONNX file that the QGIS plugin Deepness runs, and that predict.py runs
through onnxruntime (docs/gis.md).

Deepness feeds a model float32 windows [N, bands, S, S] of 8-bit pixels divided by 255 and wants
class probabilities [N, classes, S, S] back, so the graph written here is

    probabilities = softmax(UNet(255 * x))

where the UNet's first step standardises with the training tiles' per-band mean/std (buffers of
the checkpoint): the plugin needs no statistics of its own. Its settings travel as the model's
metadata, JSON-encoded as Deepness's "add metadata to model" page lists them: model_type,
class_names, resolution (cm per pixel), tiles_size (and tile_size, the key Deepness's code reads),
tiles_overlap (percent), seg_thresh, seg_small_segment. Imported only by `export.py onnx` and by
predict.py for a .onnx model: onnx and onnxruntime are needed for those alone.
"""

import json
import warnings
from pathlib import Path

import numpy as np
import torch

from lib.checkpoint import load_checkpoint
from lib.cli import atomic, need, one_line
from lib.rasters import IMAGE_SUFFIXES, read_image
from unet import DIVISOR

OPSET = 17  # run by every onnxruntime since 1.11 and by the one Deepness ships
# the newest ONNX IR that Deepness's onnxruntime (1.12.1 to 1.17, its requirements) reads: a file of
# IR 10 is refused there (Deepness issue #223)
DEEPNESS_IR = 9
OVERLAP = 50  # percent: the half-window stride of predict.py (evaluation.predict_tile)


class Deepness(torch.nn.Module):
    """The checkpoint's network as Deepness calls it: x in [0, 1] back to the stored pixel values,
    then probabilities."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(x * 255).softmax(1)


def export(checkpoint_path, out, tile_size=None, overlap=OVERLAP, resolution_cm=None, int8=None):
    """Write `out` from a train.py checkpoint; a dict of the metadata written. int8: a list of
    images (bands, H, W) to calibrate an int8 quantisation of the graph on (quantise)."""
    onnx = need("onnx", "exporting to ONNX")
    model, checkpoint = load_checkpoint(checkpoint_path)
    tile_size = checkpoint["image_size"] if tile_size is None else tile_size
    if tile_size < DIVISOR or tile_size % DIVISOR:
        raise ValueError(f"--tile-size must be a multiple of {DIVISOR}, got {tile_size}")
    if not 0 <= overlap < 100:
        raise ValueError(f"--overlap is a percentage from 0 to 99, got {overlap}")
    if resolution_cm is None and checkpoint.get("pixel_size_m"):
        resolution_cm = 100 * checkpoint["pixel_size_m"]
    if resolution_cm is None or resolution_cm <= 0:
        raise ValueError(
            f"{checkpoint_path}: its training tiles were not GeoTIFFs in metres, so their pixel "
            f"size is unknown: give it with --resolution CM (centimetres per pixel, > 0)"
            + (f", got {resolution_cm}" if resolution_cm is not None else "")
        )
    metadata = dict(
        model_type="Segmentor",
        class_names={i: name for i, name in enumerate(checkpoint["classes"])},
        resolution=round(resolution_cm, 4),
        tiles_size=tile_size,
        tile_size=tile_size,
        tiles_overlap=overlap,
        seg_thresh=0.0,  # every pixel keeps its likeliest class, as predict.py writes it
        seg_small_segment=0,  # no clean-up the torch path does not do
        bands=checkpoint["bands"],
    )
    if checkpoint.get("colours"):  # the legend's colours, for predict.py's previews
        metadata["class_colours"] = checkpoint["colours"]
    window = torch.zeros(1, checkpoint["bands"], tile_size, tile_size)
    Path(out).parent.mkdir(parents=True, exist_ok=True)  # checked by export.py: it can be made
    with atomic(out) as tmp, warnings.catch_warnings():
        # the TorchScript exporter: deprecated in favour of torch.export's, which needs a further
        # package (onnxscript) and gives the same graph for this network
        warnings.simplefilter("ignore")
        torch.onnx.export(
            Deepness(model),
            (window,),
            str(tmp),
            input_names=["image"],
            output_names=["probabilities"],
            dynamic_axes={"image": {0: "batch"}, "probabilities": {0: "batch"}},
            opset_version=OPSET,
            dynamo=False,
        )
        graph = onnx.load(str(tmp))
        # a newer exporter may stamp a newer IR than Deepness's onnxruntime reads; opset 17 needs
        # none of what IR 10 added
        graph.ir_version = min(graph.ir_version, DEEPNESS_IR)
        for key, value in metadata.items():
            entry = graph.metadata_props.add()
            entry.key, entry.value = key, json.dumps(value)
        onnx.save(graph, str(tmp))
        if int8:
            quantise(tmp, int8, tile_size)
    return metadata


CALIBRATION_WINDOWS = 32  # windows of the given images that set the int8 activation ranges


def quantise(path, images, window):
    """Rewrite the fp32 graph in `path` as int8 (onnxruntime's static quantisation: weights per
    output channel, activations by ranges seen on windows of `images`), metadata kept."""
    onnx = need("onnx", "exporting to ONNX")
    quantization = need("onnxruntime.quantization", "an int8 ONNX model")
    rng = np.random.default_rng(0)
    windows = []
    for image in images:
        h, w = image.shape[-2:]
        if h < window or w < window:
            continue
        for _ in range(max(1, CALIBRATION_WINDOWS // len(images))):
            y, x = rng.integers(0, h - window + 1), rng.integers(0, w - window + 1)
            windows.append(np.asarray(image[:, y : y + window, x : x + window], np.float32) / 255)
    if not windows:
        raise ValueError(f"--int8: no calibration image is at least {window}x{window}")

    class Windows(quantization.CalibrationDataReader):
        def __init__(self):
            self.batches = iter({"image": w[None]} for w in windows)

        def get_next(self):
            return next(self.batches, None)

    metadata = list(onnx.load(str(path)).metadata_props)
    fp32 = path.with_name(path.name + ".fp32")
    path.rename(fp32)
    try:
        quantization.quantize_static(
            str(fp32),
            str(path),
            Windows(),
            quant_format=quantization.QuantFormat.QDQ,
            per_channel=True,
            weight_type=quantization.QuantType.QInt8,
            activation_type=quantization.QuantType.QUInt8,
        )
    finally:
        fp32.unlink(missing_ok=True)
    graph = onnx.load(str(path))
    graph.ir_version = min(graph.ir_version, DEEPNESS_IR)
    del graph.metadata_props[:]
    graph.metadata_props.extend(metadata)
    onnx.save(graph, str(path))


def export_command(checkpoint_path, out, tile_size, overlap, resolution_cm, int8, fp32):
    """export.py onnx: int8 where calibration images are at hand (--int8 IMAGES, or the training
    tiles of the run beside the checkpoint), fp32 with --fp32 or without them; what it wrote."""
    if int8 and fp32:
        raise ValueError("give --int8 IMAGES or --fp32, not both")
    found = int8
    metrics = Path(checkpoint_path).with_name("metrics.json")
    if not int8 and not fp32 and metrics.is_file():  # a --data run: its training tiles
        data = json.loads(metrics.read_text()).get("config", {}).get("data")
        found = data and Path(data) / "train" / "images"
    images = [p for p in sorted(Path(found or "").glob("*")) if p.suffix.lower() in IMAGE_SUFFIXES]
    if int8 and not images:
        raise ValueError(f"--int8: {int8} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    calibration = [read_image(p) for p in images]
    meta = export(checkpoint_path, out, tile_size, overlap, resolution_cm, calibration)
    kind = (
        f"int8, calibrated on the {len(images)} images of {found} (--fp32: the exact fp32 graph)"
        if images
        else "fp32"
        if fp32
        else "fp32 (int8 is faster on a CPU; it needs calibration images: --int8 IMAGES)"
    )
    return (
        f"wrote {out}: {meta['bands']} bands in (8-bit values / 255), "
        f"{len(meta['class_names'])} class probabilities out, {meta['tiles_size']}² windows, "
        f"{meta['tiles_overlap']}% overlap, {meta['resolution']} cm per pixel; {kind}"
    )


class OnnxNet(torch.nn.Module):
    """An exported .onnx file as a network evaluation.predict_tile can run: windows of stored
    pixel values in, log-probabilities out. Averaged over overlapping windows, log-probabilities
    pick the class that averaged logits pick (they differ by one number per pixel and window), so
    predict.py gives the torch path's classes from it."""

    def __init__(self, path, threads=None):
        super().__init__()
        ort = need("onnxruntime", "running an .onnx model")
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(
                str(path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as error:
            raise ValueError(
                f"{path}: not an ONNX model onnxruntime runs ({one_line(error)})"
            ) from None
        meta = self.session.get_modelmeta().custom_metadata_map
        (image,) = self.session.get_inputs()
        try:
            names = json.loads(meta["class_names"])
            self.classes = [names[str(i)] for i in range(len(names))]
            self.window = int(json.loads(meta["tiles_size"]))
        except (KeyError, ValueError) as error:
            raise ValueError(
                f"{path}: not written by export.py onnx (its metadata lacks {one_line(error)})"
            ) from None
        self.input, self.bands = image.name, image.shape[1]
        self.colours = json.loads(meta.get("class_colours", "null"))

    def checkpoint(self):
        """What predict.py reads from a checkpoint dict."""
        return dict(
            classes=self.classes, bands=self.bands, image_size=self.window, colours=self.colours
        )

    def forward(self, x):
        scaled = (x.float() / 255).numpy()
        (probabilities,) = self.session.run(None, {self.input: np.ascontiguousarray(scaled)})
        # probabilities underflow to 0 far from the argmax; the floor keeps the log finite
        return torch.from_numpy(probabilities).clamp_min_(1e-30).log_()
