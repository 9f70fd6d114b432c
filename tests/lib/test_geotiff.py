"""GeoTIFF in and out: multi-band rasters read as stored, value-coded masks, predictions that keep
their CRS and transform, scenes segmented block by block."""

import numpy as np
import pytest
import rasterio
import torch
from PIL import Image
from rasterio.transform import from_origin

import export
import predict
from conftest import FAST, train_and_predict
from lib import annotations, geotiff, rasters, tiles
from train import train
from unet import UNet

CRS, TRANSFORM = "EPSG:32633", from_origin(600_000, 5_100_000, 2.5, 2.5)


def write(path, array, compress="deflate", crs=CRS, transform=TRANSFORM):
    geotiff.write(path, array, crs, transform, compress)


@pytest.mark.parametrize(
    "dtype, compress",
    [(np.uint16, "deflate"), (np.int16, "lzw"), (np.float32, "deflate"), (np.uint8, None)],
)
def test_multi_band_geotiffs_are_read_as_stored(tmp_path, dtype, compress):
    array = (np.random.default_rng(0).random((6, 33, 47)) * 3000).astype(dtype)
    write(tmp_path / "a.tif", array, compress)
    image = rasters.read_image(tmp_path / "a.tif")
    assert image.dtype == dtype and image.shape == (6, 33, 47) and np.array_equal(image, array)


def value_folder(root, bands=4):
    """WorldCover-style value-coded masks: 10 Tree cover, 80 Water, 0 no data; 4-band uint16
    GeoTIFFs."""
    rng = np.random.default_rng(0)
    (root).mkdir(parents=True)
    (root / "classes.txt").write_text("Tree cover 10\nPermanent water bodies 80\nignore 0\n")
    values = np.full((40, 70), 10, np.uint16)
    values[:, 35:] = 80
    values[:4] = 0
    image = ((values[None] // 10) * 400 + rng.normal(1000, 50, (bands, 40, 70))).astype(np.uint16)
    for split in ("train", "val", "test"):
        for sub in ("images", "masks"):
            (root / split / sub).mkdir(parents=True)
        write(root / split / "images" / "a.tif", image)
        write(root / split / "masks" / "a.tif", values[None])
    return root, np.select([values == 10, values == 80], [0, 1], 255)


def test_value_coded_masks_read_through_the_legend(tmp_path):
    root, expected = value_folder(tmp_path / "v")
    legend = annotations.read_legend(root)
    assert (
        legend.names == ("Tree cover", "Permanent water bodies")
        and legend.codes == [10, 80]
        and legend.ignored == [0]
    )
    data = tiles.load_folder(root, 0, "dense")
    assert np.array_equal(data["test"][1][0], expected) and data["train"][0][0].dtype == np.uint16
    assert data["bands"] == 4 and data["colours"] is None


def test_a_value_not_in_the_legend_names_the_file_values_and_counts(tmp_path):
    root, _ = value_folder(tmp_path / "v")
    values = np.full((1, 40, 70), 10, np.uint16)
    values[0, 0, :7], values[0, 1, :2] = 30, 95
    write(root / "test" / "masks" / "a.tif", values)
    with pytest.raises(
        ValueError,
        match=r"test/masks/a.tif: 2 value\(s\) not in classes.txt: 30 \(7 px\), 95 \(2 px\); "
        r"add each as a class or an 'ignore VALUE' line",
    ):
        tiles.load_folder(root, 0, "dense")


def test_scenes_are_segmented_block_by_block_exactly_once(tmp_path):
    array = np.random.default_rng(0).integers(0, 50, (2, 150, 230)).astype(np.uint8)
    write(tmp_path / "s.tif", array)
    covered = np.zeros((150, 230), int)
    # a "model" whose prediction shows which pixels it was given: band 1 modulo 7
    for row, col, classes in geotiff.predict_scene(
        tmp_path / "s.tif", lambda pixels: pixels[1] % 7, window=32, block=64
    ):
        assert np.array_equal(
            classes, array[1, row : row + classes.shape[0], col : col + classes.shape[1]] % 7
        )
        covered[row : row + classes.shape[0], col : col + classes.shape[1]] += 1
    assert (covered == 1).all()


def test_geotiff_predictions_keep_crs_transform_and_equal_the_png(tmp_path, capsys):
    root, _ = value_folder(tmp_path / "v")
    (root / "classes.txt").write_text("Tree cover 10\nPermanent water bodies 80\nignore 0\n")
    train_and_predict(root, tmp_path)
    with (
        rasterio.open(tmp_path / "p" / "a_classes.tif") as out,
        rasterio.open(root / "test" / "images" / "a.tif") as source,
    ):
        assert out.crs == source.crs and out.transform == source.transform and out.count == 1
        assert out.dtypes[0] == "uint8" and out.compression.name.lower() == "deflate"
        assert np.array_equal(out.read(1), np.asarray(Image.open(tmp_path / "p" / "a_classes.png")))
    assert "a_classes.tif" in capsys.readouterr().out


def test_a_colour_legend_becomes_the_colour_table(tmp_path):
    root, _ = value_folder(tmp_path / "v", bands=3)
    (root / "classes.txt").write_text("Tree cover 10\nWater 80\nignore 0\n")
    train(dict(FAST, data=str(root), dense=True, out=str(tmp_path / "run")))
    checkpoint = torch.load(tmp_path / "run" / "model.pt", weights_only=True)
    checkpoint["colours"] = ["#006400", "#0064C8"]
    torch.save(checkpoint, tmp_path / "run" / "model.pt")
    predict.main(
        [
            str(tmp_path / "run" / "model.pt"),
            str(root / "test" / "images" / "a.tif"),
            "--out",
            str(tmp_path / "p"),
        ]
    )
    with rasterio.open(tmp_path / "p" / "a_classes.tif") as out:
        assert out.colormap(1)[0] == (0, 100, 0, 255) and out.colormap(1)[1] == (0, 100, 200, 255)


def test_a_corrupt_tiff_gives_one_line(tmp_path, capsys):
    import train as train_module

    root, _ = value_folder(tmp_path / "v")
    (root / "train" / "images" / "a.tif").write_bytes(b"II*\x00 not really a tiff")
    with pytest.raises(SystemExit):
        train_module.main(
            ["--data", str(root), "--dense", "--weights", "none", "--out", str(tmp_path / "r")]
        )
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "train/images/a.tif: cannot read image" in err
    torch.save(
        dict(
            state_dict=UNet(
                2, weights=None, in_channels=4, mean=[0.0] * 4, std=[1.0] * 4
            ).state_dict(),
            classes=["a", "b"],
            bands=4,
            image_size=64,
        ),
        tmp_path / "model.pt",
    )
    with pytest.raises(SystemExit):
        predict.main(
            [
                str(tmp_path / "model.pt"),
                str(root / "train" / "images" / "a.tif"),
                "--out",
                str(tmp_path / "p"),
            ]
        )
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "train/images/a.tif: cannot read image" in err
    assert not (tmp_path / "p").exists()


def test_a_truncated_png_named_tif_is_refused_not_read_as_a_black_tile(tmp_path, capsys):
    import train as train_module

    root, _ = value_folder(tmp_path / "v", bands=3)
    png = tmp_path / "full.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 70, 3), dtype=np.uint8)).save(
        png
    )
    (root / "train" / "images" / "a.tif").write_bytes(png.read_bytes()[: png.stat().st_size // 2])
    with pytest.raises(SystemExit):
        train_module.main(
            ["--data", str(root), "--dense", "--weights", "none", "--out", str(tmp_path / "r")]
        )
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "train/images/a.tif: cannot read image" in err, (
        err
    )
    assert not (tmp_path / "r").exists()


def test_export_writes_four_band_geotiffs_on_a_made_up_map(tmp_path):
    export.export_tiles(tmp_path / "g", sizes=(2, 1, 1), image_size=32, format="tif", bands=4)
    with rasterio.open(tmp_path / "g" / "train" / "images" / "scene_0001.tif") as image:
        assert image.count == 4 and image.crs.to_string() == export.EXAMPLE_CRS
        assert image.transform.c == 500_000 + 32 * export.EXAMPLE_PIXEL
    data = tiles.load_folder(tmp_path / "g", 0, dict(points_per_class=3))
    assert data["bands"] == 4 and data["train"][0][0].shape == (4, 32, 32)
    with pytest.raises(ValueError, match="export writes --format png \\(3 bands\\) or tif"):
        export.export_tiles(tmp_path / "h", format="png", bands=4)


def test_scene_command_writes_a_big_uint16_geotiff_block_by_block(tmp_path, capsys):
    export.main(["scene", str(tmp_path / "s.tif"), "--size", "300", "--bands", "4"])
    with rasterio.open(tmp_path / "s.tif") as scene:
        assert scene.shape == (300, 300) and scene.count == 4 and scene.dtypes[0] == "uint16"
        assert scene.crs.to_string() == export.EXAMPLE_CRS and scene.read().max() > 100
    with pytest.raises(SystemExit):
        export.main(["scene", str(tmp_path / "s.tif")])  # never overwrites
    assert "scene needs a new file" in capsys.readouterr().err
