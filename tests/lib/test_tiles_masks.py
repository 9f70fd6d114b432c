"""Real imagery in tile folders: colour-coded masks, unknown pixels, big and small tiles, memory."""

import numpy as np
import pytest
from PIL import Image

from clicks import every_pixel
from conftest import FAST, own_folder, train_and_predict
from lib import annotations, rasters, tiles
from lib.settings import DEFAULTS, label_mode
from train import train

LEGEND = "Building #3C1098\nLand  cover #8429f6\nignore #9B9B9B\nIGNORE #000000\n"
COLOURS = np.array(
    [[0x3C, 0x10, 0x98], [0x84, 0x29, 0xF6], [0x9B, 0x9B, 0x9B], [0, 0, 0]], np.uint8
)


def colour_folder(root, mode="RGB"):
    """Two classes in colour masks with two 'ignore' colours; one train tile, val and test."""
    rng = np.random.default_rng(0)
    root.mkdir(parents=True)
    (root / "classes.txt").write_text(LEGEND)
    index = np.zeros((40, 70), np.uint8)
    index[:, 35:] = 1
    index[:5] = 2  # unknown, grey
    index[-3:, :10] = 3  # unknown, black
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
    assert annotations.read_legend(root) == (
        ("Building", "Land  cover"),
        ["#3C1098", "#8429F6"],
        ["#9B9B9B", "#000000"],
    )
    data = tiles.load_folder(root, 0, "dense")
    assert np.array_equal(data["test"][1][0], expected) and data["colours"] == [
        "#3C1098",
        "#8429F6",
    ]
    assert np.array_equal(data["train"][1][0], expected)  # --dense: the mask is the label


def test_a_colour_not_in_the_legend_names_the_file_colours_and_counts(tmp_path):
    root, _ = colour_folder(tmp_path / "c")
    rgb = COLOURS[np.zeros((40, 70), np.uint8)]
    rgb[0, :3] = (1, 2, 3)  # what JPEG does to a mask, in small
    rgb[1, :1] = (250, 0, 0)
    Image.fromarray(rgb).save(root / "val" / "masks" / "a.png")
    with pytest.raises(
        ValueError,
        match=r"val/masks/a.png: 2 colour\(s\) not in classes.txt: #010203 \(3 px\), "
        r"#FA0000 \(1 px\); add each as a class or an 'ignore #RRGGBB' line",
    ):
        tiles.load_folder(root, 0, "dense")


@pytest.mark.parametrize(
    "legend, message",
    [
        (
            "a #000000\nb\n",
            r"give every class a mask colour \(or every class a value\) or none; \['b'\] have none",
        ),
        (
            "a\nb\nignore #FFFFFF\n",
            r"give every class a mask colour \(or every class a value\) or none",
        ),
        ("a #000000\nb 7\n", r"colours and values are mixed"),
        ("a #000000\nb #000000\n", r"each colour or value may stand for one class only"),
        ("a\nb\nignore\n", r"classes.txt:3: an ignore line needs the colour or value"),
        ("a\na\n", r"class names must differ"),
    ],
)
def test_bad_legends_say_what_is_wrong(tmp_path, legend, message):
    (tmp_path / "classes.txt").write_text(legend)
    with pytest.raises(ValueError, match=message):
        annotations.read_legend(tmp_path)


def test_a_colour_mask_without_a_colour_legend_says_how_to_give_one(tmp_path):
    root, _ = colour_folder(tmp_path / "c")
    (root / "classes.txt").write_text("Building\nLand\n")
    with pytest.raises(
        ValueError, match=r"a colour mask, but classes.txt gives no colours; .*'Building #3C1098'"
    ):
        tiles.load_folder(root, 0, "dense")


def unknown_pixel_folder(root):
    """Index masks with a band of 255 (unknown) pixels in every split."""
    own_folder(root)
    mask = np.zeros((50, 90), np.uint8)
    mask[:, 45:] = 1
    mask[20:30] = 255
    for split in ("train", "val", "test"):
        (root / split / "masks").mkdir(exist_ok=True)
        Image.fromarray(mask).save(
            root / split / "masks" / ("t0.png" if split == "train" else "a.png")
        )
    for stale in (root / "train" / "points").iterdir():
        stale.unlink()
    (root / "train" / "images" / "t1.npy").unlink()
    return root, mask


@pytest.mark.slow
@pytest.mark.parametrize(
    "how",
    [
        "--dense",
        "--points 50",
        "--points-per-class 5",
        "--points-per-class 5 --strategy stratified",
    ],
)
def test_masks_with_unknown_pixels_train_and_score(tmp_path, how):
    root, mask = unknown_pixel_folder(tmp_path / "u")
    config = dict(
        FAST,
        data=str(root),
        out=str(tmp_path / "run"),
        dense="--dense" in how,
        points=50 if "--points 50" in how else None,
        points_per_class=5 if "per-class" in how else None,
        strategy="stratified" if "stratified" in how else "random",
    )
    labels = tiles.load_data(label_mode(dict(DEFAULTS, **config))[0], 0, str(root))["train"][1][0]
    plane = (
        labels.point_labels(mask.shape) if hasattr(labels, "point_labels") else every_pixel(labels)
    )
    # never 255, never clicked
    assert (plane[20:30] == -1).all() and set(np.unique(plane)) <= {-1, 0, 1}
    assert (plane >= 0).sum() == (
        (mask != 255).sum() if "--dense" in how else 50 if "50" in how else 10
    )
    metrics = train(config)
    matrix = np.array(metrics["test"]["confusion_matrix"])
    assert matrix.sum() == (mask != 255).sum()  # unknown pixels not scored
    assert metrics["labeled_fraction"] == (plane >= 0).sum() / mask.size


def test_a_folder_with_no_label_at_all_says_so_before_training(tmp_path, capsys):
    import train as train_module

    root, mask = unknown_pixel_folder(tmp_path / "u")
    Image.fromarray(np.full_like(mask, 255)).save(root / "train" / "masks" / "t0.png")
    with pytest.raises(SystemExit):
        train_module.main(
            ["--data", str(root), "--dense", "--weights", "none", "--out", str(tmp_path / "r")]
        )
    assert (
        "no training tile has any label" in capsys.readouterr().err
        and not (tmp_path / "r").exists()
    )


def test_tiles_smaller_than_a_crop_and_big_tiles_train(tmp_path):
    root = own_folder(tmp_path / "own", shape=(45, 300))  # 45 px high: padded up to the 64 crop
    metrics = train(dict(FAST, data=str(root), out=str(tmp_path / "run")))
    assert metrics["crops_per_epoch"] == 2 * 5  # ceil(2 tiles * 64 * 300 / 64²)
    # every pixel of the 45 x 300 test tile is predicted and scored, none of the padding
    assert sum(map(sum, metrics["test"]["confusion_matrix"])) == 45 * 300
    assert all(0 < epoch["train_loss"] < 10 for epoch in metrics["history"])


def test_tiles_stay_in_their_stored_dtype_and_npy_is_memory_mapped(tmp_path):
    np.save(tmp_path / "big.npy", np.arange(2 * 50 * 40, dtype=np.uint16).reshape(2, 50, 40))
    image = rasters.read_image(tmp_path / "big.npy")
    assert image.shape == (2, 50, 40) and image.dtype == np.uint16 and isinstance(image, np.memmap)
    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(tmp_path / "a.jpg")
    assert rasters.read_image(tmp_path / "a.jpg").dtype == np.uint8


def test_previews_use_the_legend_colours(tmp_path):
    root, _ = colour_folder(tmp_path / "c")
    train_and_predict(root, tmp_path)
    classes = np.asarray(Image.open(tmp_path / "p" / "a_classes.png"))
    preview = np.asarray(Image.open(tmp_path / "p" / "a_preview.png"))
    assert np.array_equal(preview, COLOURS[classes])
