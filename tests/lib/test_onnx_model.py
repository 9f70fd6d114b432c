"""export.py onnx and predict.py on an .onnx model (lib/onnx_model.py): the metadata Deepness
reads, the classes predict.py gives, and one-line errors."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

import export
import predict
from lib.checkpoint import save_checkpoint
from lib.tiles import load_data
from unet import UNet

pytestmark = pytest.mark.slow  # the whole file: see pyproject.toml's markers

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")


def checkpoint(path, bands=3, classes=("a", "b", "c", "d"), pixel_size_m=0.5):
    """A random network with sharp logits (few pixels near a tie) and 8-bit statistics."""
    torch.manual_seed(0)
    model = UNet(
        len(classes), weights=None, in_channels=bands, mean=[120.0] * bands, std=[50.0] * bands
    )
    with torch.no_grad():
        model.head.weight.mul_(20)
    save_checkpoint(
        path,
        model,
        classes,
        ["#ff0000", "#00ff00", "#0000ff", "#ffff00"][: len(classes)],
        bands,
        64,
        pixel_size_m,
    )
    return path


def run(main, argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    return exit_info.value.code, capsys.readouterr().err


def test_export_writes_deepness_metadata_and_predict_gives_the_torch_classes(tmp_path, capsys):
    model_pt = checkpoint(tmp_path / "model.pt")
    export.main(["onnx", str(model_pt), str(tmp_path / "model.onnx")])
    graph = onnx.load(str(tmp_path / "model.onnx"))
    meta = {p.key: json.loads(p.value) for p in graph.metadata_props}
    assert meta["model_type"] == "Segmentor" and meta["resolution"] == 50.0
    assert meta["class_names"] == {"0": "a", "1": "b", "2": "c", "3": "d"}
    assert meta["tiles_size"] == meta["tile_size"] == 64 and meta["tiles_overlap"] == 50
    assert meta["seg_thresh"] == 0.0 and meta["seg_small_segment"] == 0
    session = ort.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
    (image,), (out,) = session.get_inputs(), session.get_outputs()
    assert image.shape == ["batch", 3, 64, 64] and out.shape == ["batch", 4, 64, 64]
    window = np.random.default_rng(0).integers(0, 256, (2, 3, 64, 64)).astype(np.float32)
    (probabilities,) = session.run(None, {image.name: window / 255})
    assert np.allclose(probabilities.sum(1), 1, atol=1e-4)  # softmax inside the graph

    # a tile bigger than the window (overlapping windows), not a multiple of 32
    rng = np.random.default_rng(1)
    tile = (rng.integers(0, 256, (3, 1, 1)) + rng.integers(-40, 40, (3, 100, 150))).clip(0, 255)
    Image.fromarray(tile.astype(np.uint8).transpose(1, 2, 0)).save(tmp_path / "tile.png")
    for name, model in (("torch", model_pt), ("onnx", tmp_path / "model.onnx")):
        predict.main(
            [
                str(model),
                str(tmp_path / "tile.png"),
                "--out",
                str(tmp_path / name),
                "--precision",
                "fp32",
            ]
        )
    torch_classes, onnx_classes = (
        np.array(Image.open(tmp_path / name / "tile_classes.png")) for name in ("torch", "onnx")
    )
    assert len(np.unique(torch_classes)) >= 2  # a test that can fail
    assert (torch_classes != onnx_classes).mean() < 0.002
    previews = [np.array(Image.open(tmp_path / n / "tile_preview.png")) for n in ("torch", "onnx")]
    assert (previews[0] == previews[1]).all(-1).mean() > 0.998  # the legend's colours travel too


@pytest.mark.parametrize("bands", [1, 4])
def test_checkpoints_of_other_band_counts_export(tmp_path, bands):
    export.main(
        [
            "onnx",
            str(checkpoint(tmp_path / "m.pt", bands)),
            str(tmp_path / "m.onnx"),
            "--tile-size",
            "96",
        ]
    )
    (image,) = ort.InferenceSession(
        str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"]
    ).get_inputs()
    assert image.shape == ["batch", bands, 96, 96]


def test_bad_exports_are_one_line(tmp_path, capsys):
    model_pt = checkpoint(tmp_path / "model.pt")
    no_place = checkpoint(tmp_path / "plain.pt", pixel_size_m=None)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    (tmp_path / "a_file").write_text("")
    for argv, message in (
        (
            ["onnx", str(tmp_path / "junk.pt"), str(tmp_path / "x.onnx")],
            "not a train.py checkpoint",
        ),
        (["onnx", str(model_pt), str(tmp_path / "a_file" / "x.onnx")], "a_file"),
        (["onnx", str(no_place), str(tmp_path / "x.onnx")], "give it with --resolution"),
        (
            ["onnx", str(model_pt), str(tmp_path / "x.onnx"), "--tile-size", "100"],
            "multiple of 32, got 100",
        ),
        (["onnx", str(model_pt)], "the .onnx file to write"),
    ):
        code, err = run(export.main, argv, capsys)
        assert code == 2 and len(err.strip().splitlines()) == 1 and message in err, err
    assert not (tmp_path / "x.onnx").exists()
    export.main(["onnx", str(no_place), str(tmp_path / "x.onnx"), "--resolution", "30"])
    assert (
        json.loads(
            {p.key: p.value for p in onnx.load(str(tmp_path / "x.onnx")).metadata_props}[
                "resolution"
            ]
        )
        == 30
    )
    (tmp_path / "bad.onnx").write_bytes(b"not onnx")
    code, err = run(
        predict.main,
        [str(tmp_path / "bad.onnx"), str(tmp_path / "a_file"), "--out", str(tmp_path / "p")],
        capsys,
    )
    assert code == 2 and "bad.onnx: not an ONNX model onnxruntime runs" in err, err


def test_geotiff_training_tiles_give_the_checkpoint_their_pixel_size(tmp_path):
    export.export_tiles(tmp_path / "tifs", sizes=(1, 1, 1), image_size=32, format="tif")
    assert load_data({"points_per_image": 5}, folder=tmp_path / "tifs")["pixel_size_m"] == 10.0
    export.export_tiles(tmp_path / "pngs", sizes=(1, 1, 1), image_size=32)
    assert "pixel_size_m" not in load_data({"points_per_image": 5}, folder=tmp_path / "pngs")


def test_a_folder_run_exports_int8_calibrated_on_its_training_tiles(tmp_path, capsys):
    export.export_tiles(tmp_path / "tiles", sizes=(2, 1, 1), image_size=64)
    (tmp_path / "run").mkdir()
    model_pt = checkpoint(tmp_path / "run" / "model.pt")
    (tmp_path / "run" / "metrics.json").write_text(
        json.dumps({"config": {"data": str(tmp_path / "tiles")}})
    )
    quantised = lambda path: any(
        node.op_type == "QuantizeLinear" for node in onnx.load(str(path)).graph.node
    )
    export.main(["onnx", str(model_pt), str(tmp_path / "int8.onnx")])
    assert "int8, calibrated on the 2 images of" in capsys.readouterr().out
    export.main(["onnx", str(model_pt), str(tmp_path / "fp32.onnx"), "--fp32"])
    assert quantised(tmp_path / "int8.onnx") and not quantised(tmp_path / "fp32.onnx")
    meta = {p.key: p.value for p in onnx.load(str(tmp_path / "int8.onnx")).metadata_props}
    assert json.loads(meta["model_type"]) == "Segmentor" and json.loads(meta["tiles_size"]) == 64
    code, err = run(export.main, ["onnx", str(model_pt), "x.onnx", "--fp32", "--int8", "d"], capsys)
    assert code == 2 and "not both" in err


def deepness_reads(path):
    """The metadata as Deepness 0.6.5 reads it (processing/models/model_base.py): each value
    json.loads'ed; class names sorted by their integer keys, which must run 0, 1, 2, ...; the
    resolution a float in cm per pixel."""
    meta = {p.key: json.loads(p.value) for p in onnx.load(str(path)).metadata_props}
    names = sorted(meta["class_names"].items(), key=lambda kv: int(kv[0]))
    assert [int(k) for k, _ in names] == list(range(len(names)))  # else Deepness refuses it
    return meta, [name for _, name in names], float(meta["resolution"])


@pytest.mark.parametrize("fp32", [True, False])
def test_the_file_is_one_deepness_loads(tmp_path, fp32):
    """IR <= 9 and opset <= 20: what the onnxruntime Deepness ships reads (a newer torch exporter
    must not silently write a file it refuses); the class names match the output channels."""
    export.export_tiles(tmp_path / "tiles", sizes=(2, 1, 1), image_size=64)
    model_pt = checkpoint(tmp_path / "model.pt")
    flags = ["--fp32"] if fp32 else ["--int8", str(tmp_path / "tiles" / "train" / "images")]
    export.main(["onnx", str(model_pt), str(tmp_path / "model.onnx"), *flags])
    graph = onnx.load(str(tmp_path / "model.onnx"))
    assert graph.ir_version <= 9
    assert all(o.version <= 20 for o in graph.opset_import if o.domain in ("", "ai.onnx"))
    meta, names, resolution = deepness_reads(tmp_path / "model.onnx")
    session = ort.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
    assert names == ["a", "b", "c", "d"] and session.get_outputs()[0].shape[1] == len(names)
    assert resolution == 50.0  # cm: the checkpoint's 0.5 m pixels
    assert meta["model_type"] == "Segmentor" and int(meta["tile_size"]) == 64


def test_deepness_preprocessing_gives_predict_pys_classes(tmp_path):
    """A window as Deepness feeds it — an NHWC uint8 tile, scaled to [0, 1] float32, turned to
    NCHW — through the file, then the argmax over channels (threshold 0, as the metadata asks),
    against predict.py's class map of the same tile from model.pt. One window: no seams."""
    model_pt = checkpoint(tmp_path / "model.pt")
    export.main(["onnx", str(model_pt), str(tmp_path / "model.onnx"), "--fp32"])
    rng = np.random.default_rng(2)
    tile = (rng.integers(0, 256, (1, 1, 3)) + rng.integers(-40, 40, (64, 64, 3))).clip(0, 255)
    tile = tile.astype(np.uint8)
    Image.fromarray(tile).save(tmp_path / "tile.png")
    session = ort.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
    window = np.transpose(np.float32(tile[None] * (1.0 / 255.0)), (0, 3, 1, 2))
    (probabilities,) = session.run(None, {session.get_inputs()[0].name: window})
    deepness = probabilities.argmax(1)[0]
    tile_png, out = str(tmp_path / "tile.png"), str(tmp_path / "p")
    predict.main([str(model_pt), tile_png, "--out", out, "--precision", "fp32"])
    torch_classes = np.array(Image.open(tmp_path / "p" / "tile_classes.png"))
    assert len(np.unique(torch_classes)) >= 2  # a test that can fail
    assert (deepness != torch_classes).mean() < 0.002


def test_export_takes_options_anywhere_and_refuses_a_zero_tile(tmp_path, capsys):
    model_pt = checkpoint(tmp_path / "model.pt")
    out = tmp_path / "new" / "folder" / "model.onnx"  # folders that do not exist yet are made
    export.main(["onnx", str(model_pt), "--resolution", "100", str(out), "--fp32"])
    assert deepness_reads(out)[2] == 100.0
    code, err = run(
        export.main, ["onnx", str(model_pt), str(tmp_path / "z.onnx"), "--tile-size", "0"], capsys
    )
    assert code == 2 and "--tile-size must be a multiple of 32, got 0" in err
    assert not (tmp_path / "z.onnx").exists()
