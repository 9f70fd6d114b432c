"""tiles.py, predict.py and `train.py --data`: your own tiles in, trained model and PNGs out."""
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

import predict
import tiles
from data import make_split, sample_split_points
from train import load_data, train

FAST = dict(epochs=1, batch_size=2, image_size=64, weights="none")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("export") / "scenes"
    tiles.export(root, seed=0, sizes=(4, 2, 2), image_size=64)
    return root


def write_tile(folder, stem, image, mask=None, clicks=None):
    for sub in ("images", "masks", "points"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    np.save(folder / "images" / f"{stem}.npy", image)
    if mask is not None:
        Image.fromarray(mask.astype(np.uint8)).save(folder / "masks" / f"{stem}.png")
    if clicks is not None:
        (folder / "points" / f"{stem}.csv").write_text("x,y,class\n" + "".join(f"{x},{y},{c}\n" for x, y, c in clicks))


def own_folder(root, bands=3, shape=(50, 90), hwc=False, with_val=True):
    """Two classes, 'dark' left and 'bright' right; train tiles carry hand-written clicks only."""
    rng = np.random.default_rng(0)
    (root).mkdir(parents=True, exist_ok=True)
    (root / "classes.txt").write_text("dark\nbright\n")
    mask = np.zeros(shape, np.uint8)
    mask[:, shape[1] // 2:] = 1
    image = (mask[None] * 100 + rng.normal(50, 5, (bands,) + shape)).astype(np.float32)
    image = image.transpose(1, 2, 0) if hwc else image
    for i in range(2):
        write_tile(root / "train", f"t{i}", image, clicks=[(3, 4, "dark"), (80, 40, "bright"), (10, 30, 0), (70, 2, 1)])
    for split in (("val", "test") if with_val else ("test",)):
        write_tile(root / split, "a", image, mask=mask)
    return root


def test_export_reads_back_as_the_generator_made_it(exported):
    data = tiles.load_folder(exported, 0, dict(points_per_image=30))
    images, masks = make_split("train", 4, seed=0, image_size=64)
    assert data["classes"] == ("Urban", "Vegetation", "Water", "Bare Soil", "Road") and data["bands"] == 3
    assert np.array_equal(np.stack(data["train"][0]), images)      # 8-bit PNGs: lossless, kept as uint8
    assert data["train"][0][0].dtype == np.uint8
    # same seed, same clicks as the built-in route
    for ours, builtin in zip(data["train"][1], sample_split_points(masks, 0, points_per_image=30)):
        assert np.array_equal(ours.point_labels((64, 64)), builtin.point_labels((64, 64)))
    assert len(data["val"][0]) == 2 and len(data["test"][0]) == 2
    assert np.allclose(data["mean"], np.stack(data["train"][0]).mean(axis=(0, 2, 3)), rtol=1e-4)


def test_export_refuses_a_non_empty_folder(exported):
    with pytest.raises(ValueError, match="exists and is not empty"):
        tiles.export(exported)


def test_tiles_py_export_command(tmp_path):
    result = subprocess.run([sys.executable, "tiles.py", "export", str(tmp_path / "x"), "--train-size", "2",
                             "--val-size", "1", "--test-size", "1", "--image-size", "32"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert len(list((tmp_path / "x" / "train" / "images").glob("*.png"))) == 2


def test_exported_folder_trains_to_the_built_in_numbers(exported, tmp_path):
    from_folder = train(dict(FAST, data=str(exported), points=100, out=str(tmp_path / "folder")))
    built_in = train(dict(FAST, train_size=4, val_size=2, test_size=2, points=100, out=str(tmp_path / "builtin")))
    assert from_folder["classes"][4] == "Road" and (tmp_path / "folder" / "model.pt").exists()
    assert from_folder["labeled_fraction"] == built_in["labeled_fraction"]
    assert from_folder["test"] == built_in["test"]
    assert [h["train_loss"] for h in from_folder["history"]] == [h["train_loss"] for h in built_in["history"]]


def test_clicks_train_predict_round_trip_at_exact_sizes(tmp_path, capsys):
    root = own_folder(tmp_path / "own")
    data = load_data(dict(data=str(root), points=5, dense=False, seed=0))
    clicks = data["train"][1][0].point_labels((50, 90))
    assert (clicks >= 0).sum() == 4 and clicks[4, 3] == 0 and clicks[40, 80] == 1 and clicks[2, 70] == 1
    metrics = train(dict(FAST, data=str(root), out=str(tmp_path / "run")))    # the CSVs are all the labels
    assert metrics["classes"] == ["dark", "bright"] and metrics["labeled_fraction"] == 8 / (2 * 50 * 90)
    extra = tmp_path / "new"
    extra.mkdir()
    np.save(extra / "odd.npy", np.random.default_rng(1).normal(100, 30, (3, 37, 101)).astype(np.float32))
    predict.main([str(tmp_path / "run" / "model.pt"), str(root / "test" / "images"), str(extra / "odd.npy"),
                  "--out", str(tmp_path / "pred")])
    assert Image.open(tmp_path / "pred" / "a_classes.png").size == (90, 50)
    assert Image.open(tmp_path / "pred" / "odd_classes.png").size == (101, 37)
    assert Image.open(tmp_path / "pred" / "odd_preview.png").mode == "RGB"
    assert "[2/2]" in capsys.readouterr().out


def test_four_band_npy_tiles_train(tmp_path):
    root = own_folder(tmp_path / "nir", bands=4, hwc=True, with_val=False)
    metrics = train(dict(FAST, data=str(root), points=5, out=str(tmp_path / "run")))
    checkpoint = torch.load(tmp_path / "run" / "model.pt", weights_only=True)
    assert checkpoint["bands"] == 4 and checkpoint["state_dict"]["mean"].shape == (1, 4, 1, 1)
    assert metrics["best_epoch"] == 1
    with pytest.raises(SystemExit):       # a 4-band model cannot read a 3-band tile
        np.save(tmp_path / "rgb.npy", np.zeros((3, 32, 32), np.float32))
        predict.main([str(tmp_path / "run" / "model.pt"), str(tmp_path / "rgb.npy"), "--out", str(tmp_path / "p")])
    assert not (tmp_path / "p").exists()


def break_folder(root, how):
    mask = np.zeros((50, 90), np.uint8)
    if how == "missing split":
        import shutil
        shutil.rmtree(root / "test")
    elif how == "empty split":
        for p in (root / "test" / "images").iterdir():
            p.unlink()
    elif how == "no mask":
        (root / "val" / "masks" / "a.png").unlink()
    elif how == "size mismatch":
        Image.fromarray(np.zeros((50, 80), np.uint8)).save(root / "val" / "masks" / "a.png")
    elif how == "bad mask value":
        mask[0, 0] = 7
        Image.fromarray(mask).save(root / "val" / "masks" / "a.png")
    elif how == "click outside":
        (root / "train" / "points" / "t0.csv").write_text("x,y,class\n90,10,dark\n")
    elif how == "unknown class":
        (root / "train" / "points" / "t0.csv").write_text("x,y,class\n5,10,water\n")
    elif how == "unreadable":
        (root / "train" / "images" / "t1.npy").write_text("not an image")
    elif how == "no classes":
        (root / "classes.txt").unlink()


def test_tiles_without_clicks_need_a_sampling_flag(exported, capsys):
    import train as train_module
    with pytest.raises(SystemExit):
        train_module.main(["--data", str(exported), "--weights", "none"])
    assert "scene_0000.png: no points/scene_0000.csv; give --points N" in capsys.readouterr().err


@pytest.mark.parametrize("how, message", [
    ("missing split", r"test/images: missing or holds no images"),
    ("empty split", r"test/images: missing or holds no images"),
    ("no mask", r"val/images/a.npy: no mask; a val image needs a mask"),
    ("size mismatch", r"val/masks/a.png: mask is \(50, 80\), its image is \(50, 90\)"),
    ("bad mask value", r"val/masks/a.png: mask values \[7\] are not class indices 0..1 or 255"),
    ("click outside", r"t0.csv:2: click \(90, 10\) is outside the 90x50 image"),
    ("unknown class", r"t0.csv:2: unknown class 'water'"),
    ("unreadable", r"t1.npy: cannot read image"),
    ("no classes", r"classes.txt: missing"),
])
def test_bad_folders_get_one_clear_error_and_write_nothing(tmp_path, how, message, capsys):
    import train as train_module
    root = own_folder(tmp_path / "own")
    break_folder(root, how)
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as exit_info:
        train_module.main(["--data", str(root), "--points", "5", "--weights", "none", "--out", str(out)])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and len(err.strip().splitlines()) == 1
    assert __import__("re").search(message, err), err
    assert not out.exists()


def test_predict_rejects_bad_checkpoints(tmp_path, capsys):
    torch.save({"something": 1}, tmp_path / "junk.pt")
    model = predict.UNet(3, weights=None)
    torch.save(dict(state_dict=model.state_dict(), classes=["a", "b"], bands=3, image_size=64), tmp_path / "wrong.pt")
    np.save(tmp_path / "x.npy", np.zeros((3, 32, 32), np.float32))
    for checkpoint, message in (("junk.pt", "not a train.py checkpoint"), ("nope.pt", "checkpoint not found"),
                                ("wrong.pt", "weights are for 3 classes and 3 bands, but it declares 2 classes")):
        with pytest.raises(SystemExit):
            predict.main([str(tmp_path / checkpoint), str(tmp_path / "x.npy"), "--out", str(tmp_path / "p")])
        assert message in capsys.readouterr().err


LEGEND = "Building #3C1098\nLand  cover #8429f6\nignore #9B9B9B\nIGNORE #000000\n"
COLOURS = np.array([[0x3C, 0x10, 0x98], [0x84, 0x29, 0xF6], [0x9B, 0x9B, 0x9B], [0, 0, 0]], np.uint8)


def colour_folder(root, mode="RGB"):
    """Two classes in colour masks with two 'ignore' colours; one train tile, val and test."""
    rng = np.random.default_rng(0)
    root.mkdir(parents=True)
    (root / "classes.txt").write_text(LEGEND)
    index = np.zeros((40, 70), np.uint8)
    index[:, 35:] = 1
    index[:5] = 2                                          # unknown, grey
    index[-3:, :10] = 3                                    # unknown, black
    image = (index[None] * 60 + rng.normal(60, 5, (3, 40, 70))).clip(0, 255).astype(np.uint8)
    for split in ("train", "val", "test"):
        for sub in ("images", "masks"):
            (root / split / sub).mkdir(parents=True)
        Image.fromarray(image.transpose(1, 2, 0)).save(root / split / "images" / "a.png")
        rgb = COLOURS[index]
        if mode == "RGBA":
            mask = Image.fromarray(np.dstack([rgb, np.full((40, 70), 255, np.uint8)]), "RGBA")
        elif mode == "P":
            mask = Image.fromarray(index, "P")
            mask.putpalette(COLOURS.ravel().tolist())
        else:
            mask = Image.fromarray(rgb)
        mask.save(root / split / "masks" / "a.png")
    return root, np.where(index >= 2, 255, index)


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "P"])
def test_colour_masks_read_through_the_legend(tmp_path, mode):
    root, expected = colour_folder(tmp_path / "c", mode)
    assert tiles.read_legend(root) == (("Building", "Land  cover"), ["#3C1098", "#8429F6"], ["#9B9B9B", "#000000"])
    data = tiles.load_folder(root, 0, "dense")
    assert np.array_equal(data["test"][1][0], expected) and data["colours"] == ["#3C1098", "#8429F6"]
    assert np.array_equal(data["train"][1][0], expected)                 # --dense: the mask is the label


def test_a_colour_not_in_the_legend_names_the_file_colours_and_counts(tmp_path):
    root, _ = colour_folder(tmp_path / "c")
    rgb = COLOURS[np.zeros((40, 70), np.uint8)]
    rgb[0, :3] = (1, 2, 3)                                  # what JPEG does to a mask, in small
    rgb[1, :1] = (250, 0, 0)
    Image.fromarray(rgb).save(root / "val" / "masks" / "a.png")
    with pytest.raises(ValueError, match=r"val/masks/a.png: 2 colour\(s\) not in classes.txt: #010203 \(3 px\), "
                                         r"#FA0000 \(1 px\); add each as a class or an 'ignore #RRGGBB' line"):
        tiles.load_folder(root, 0, "dense")


@pytest.mark.parametrize("legend, message", [
    ("a #000000\nb\n", r"give every class a mask colour or none; \['b'\] have none"),
    ("a\nb\nignore #FFFFFF\n", r"give every class a mask colour or none"),
    ("a #000000\nb #000000\n", r"each colour may stand for one class only"),
    ("a\nb\nignore\n", r"classes.txt:3: an ignore line needs the colour"),
    ("a\na\n", r"class names must differ"),
])
def test_bad_legends_say_what_is_wrong(tmp_path, legend, message):
    (tmp_path / "classes.txt").write_text(legend)
    with pytest.raises(ValueError, match=message):
        tiles.read_legend(tmp_path)


def test_a_colour_mask_without_a_colour_legend_says_how_to_give_one(tmp_path):
    root, _ = colour_folder(tmp_path / "c")
    (root / "classes.txt").write_text("Building\nLand\n")
    with pytest.raises(ValueError, match=r"a colour mask, but classes.txt gives no colours; .*'Building #3C1098'"):
        tiles.load_folder(root, 0, "dense")


def unknown_pixel_folder(root):
    """Index masks with a band of 255 (unknown) pixels in every split."""
    own_folder(root)
    mask = np.zeros((50, 90), np.uint8)
    mask[:, 45:] = 1
    mask[20:30] = 255
    for split in ("train", "val", "test"):
        (root / split / "masks").mkdir(exist_ok=True)
        Image.fromarray(mask).save(root / split / "masks" / ("t0.png" if split == "train" else "a.png"))
    for stale in (root / "train" / "points").iterdir():
        stale.unlink()
    (root / "train" / "images" / "t1.npy").unlink()
    return root, mask


@pytest.mark.parametrize("how", ["--dense", "--points 50", "--points-per-class 5",
                                 "--points-per-class 5 --strategy stratified"])
def test_masks_with_unknown_pixels_train_and_score(tmp_path, how):
    root, mask = unknown_pixel_folder(tmp_path / "u")
    config = dict(FAST, data=str(root), out=str(tmp_path / "run"), dense="--dense" in how,
                  points=50 if "--points 50" in how else None,
                  points_per_class=5 if "per-class" in how else None,
                  strategy="stratified" if "stratified" in how else "random")
    labels = load_data(dict(config, seed=0))["train"][1][0]
    plane = labels.point_labels(mask.shape) if hasattr(labels, "point_labels") else \
        __import__("data").every_pixel(labels)
    assert (plane[20:30] == -1).all() and set(np.unique(plane)) <= {-1, 0, 1}        # never 255, never clicked
    assert (plane >= 0).sum() == ((mask != 255).sum() if "--dense" in how else 50 if "50" in how else 10)
    metrics = train(config)
    matrix = np.array(metrics["test"]["confusion_matrix"])
    assert matrix.sum() == (mask != 255).sum()                                       # unknown pixels not scored
    assert metrics["labeled_fraction"] == (plane >= 0).sum() / mask.size


def test_a_folder_with_no_label_at_all_says_so_before_training(tmp_path, capsys):
    import train as train_module
    root, mask = unknown_pixel_folder(tmp_path / "u")
    Image.fromarray(np.full_like(mask, 255)).save(root / "train" / "masks" / "t0.png")
    with pytest.raises(SystemExit):
        train_module.main(["--data", str(root), "--dense", "--weights", "none", "--out", str(tmp_path / "r")])
    assert "no training tile has any label" in capsys.readouterr().err and not (tmp_path / "r").exists()


def test_tiles_smaller_than_a_crop_and_big_tiles_train(tmp_path):
    root = own_folder(tmp_path / "own", shape=(45, 300))        # 45 px high: padded up to the 64 crop
    metrics = train(dict(FAST, data=str(root), out=str(tmp_path / "run")))
    assert metrics["crops_per_epoch"] == 2 * 5                  # ceil(2 tiles * 64 * 300 / 64²)
    assert metrics["test"]["pixel_accuracy"] > 0


def test_tiles_stay_in_their_stored_dtype_and_npy_is_memory_mapped(tmp_path):
    np.save(tmp_path / "big.npy", np.arange(2 * 50 * 40, dtype=np.uint16).reshape(50, 40, 2))
    image = tiles.read_image(tmp_path / "big.npy")
    assert image.shape == (2, 50, 40) and image.dtype == np.uint16 and isinstance(image.base, np.memmap)
    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(tmp_path / "a.jpg")
    assert tiles.read_image(tmp_path / "a.jpg").dtype == np.uint8


def test_previews_use_the_legend_colours(tmp_path):
    root, _ = colour_folder(tmp_path / "c")
    train(dict(FAST, data=str(root), dense=True, out=str(tmp_path / "run")))
    predict.main([str(tmp_path / "run" / "model.pt"), str(root / "test" / "images"), "--out", str(tmp_path / "p")])
    classes = np.asarray(Image.open(tmp_path / "p" / "a_classes.png"))
    preview = np.asarray(Image.open(tmp_path / "p" / "a_preview.png"))
    assert np.array_equal(preview, COLOURS[classes])
