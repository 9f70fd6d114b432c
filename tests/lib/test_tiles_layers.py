"""Tile folders described by GIS layers (vector.py): a folder with no mask at all, scored on
reference points; mask runs that record what they were scored on; value-coded legends; and
the polygons written out (--polygons, --min-area)."""

import json
import shutil

import fiona
import numpy as np
import pytest
import rasterio
from rasterio import features

import export
import predict
from conftest import FAST
from lib import annotations, rasters, tiles, vector, vector_out
from train import train


def test_min_area_merges_small_patches_and_needs_polygons(tmp_path, capsys):
    class_map = np.zeros((40, 40), np.uint8)
    class_map[10:12, 10:12] = 1  # a 4-pixel speckle
    class_map[20:, :] = 2
    tif = tmp_path / "c_classes.tif"
    with rasterio.open(
        tif,
        "w",
        driver="GTiff",
        width=40,
        height=40,
        count=1,
        dtype="uint8",
        crs="EPSG:32632",
        transform=rasterio.transform.from_origin(500000, 5000000, 2, 2),
    ) as out:
        out.write(class_map[None])
    # 5 pixels of 4 m²
    vector_out.write_polygons(tmp_path / "p.gpkg", tif, ["a", "b", "c"], min_area=5 * 4)
    with fiona.open(tmp_path / "p.gpkg") as layer:
        assert sorted(f.properties["class"] for f in layer) == ["a", "c"]
    with pytest.raises(SystemExit):
        predict.main(["model.pt", str(tif), "--min-area", "10", "--out", str(tmp_path / "x")])
    assert "--min-area must be >= 0 and goes with --polygons" in capsys.readouterr().err


def test_scored_on_is_recorded_for_mask_runs_too(tmp_path):
    root = tmp_path / "png"
    export.export_tiles(root, seed=0, sizes=(2, 1, 1), image_size=64)
    metrics = train(dict(FAST, data=str(root), points_per_class=2, out=str(tmp_path / "r")))
    assert (
        json.loads((tmp_path / "r" / "metrics.json").read_text())["scored_on"]
        == metrics["scored_on"]
        == dict(val="masks", test="masks")
    )


def test_a_folder_without_any_mask_trains_and_is_scored_from_exported_layers(tmp_path):
    root = tmp_path / "geo"
    export.export_tiles(root, seed=1, sizes=(2, 1, 2), image_size=64, format="tif")
    export.export_layers(root, points_per_class=2, reference_points=7)
    masks = tmp_path / "masks"
    shutil.move(root / "train" / "masks", masks)
    shutil.rmtree(root / "test" / "masks"), shutil.rmtree(root / "val")
    layers = [str(root / "clicks.gpkg"), str(root / "reference.gpkg")]
    data = tiles.load_data(None, 0, str(root), layer=(layers, "class"))
    legend = annotations.read_legend(root)
    for stem, clicks in zip(data["stems"]["train"], data["train"][1]):
        mask = rasters.read_mask(masks / f"{stem}.tif", legend, (64, 64))
        assert clicks.rows.size and np.array_equal(mask[clicks.rows, clicks.cols], clicks.classes)
    assert [int((m != 255).sum()) for m in data["test"][1]] == [7, 7]
    metrics = train(dict(FAST, data=str(root), points_file=layers, out=str(tmp_path / "run")))
    assert (
        metrics["scored_on"]["test"] == "reference points"
        and np.asarray(metrics["test"]["confusion_matrix"]).sum() == 14
    )
    with pytest.raises(ValueError, match="its tiles have no masks and no point of"):
        tiles.load_data(None, 0, str(root), layer=(layers[:1], "class"))


def test_a_value_coded_legend_takes_the_codes_as_classes():
    assert (
        vector.class_index(3, ["a", "b"], [7, 3]) == 1
        and vector.class_index("7", ["a", "b"], [7, 3]) == 0
    )
    assert (
        vector.class_index(1, ["a", "b"], [7, 3]) is None and vector.class_index(1, ["a", "b"]) == 1
    )
    assert (
        vector.class_index("b", ["a", "b"], [7, 3]) == 1
        and vector.class_index(1.5, ["a", "b"]) is None
    )


@pytest.mark.slow
def test_polygons_rasterised_back_equal_the_class_map(tmp_path):
    root = tmp_path / "geo"  # GeoTIFF tiles in UTM with their clicks as a GeoPackage
    export.export_tiles(root, seed=0, sizes=(4, 2, 2), image_size=64, format="tif")
    export.export_layers(root, points_per_class=3, reference_points=7)
    names = annotations.read_legend(root).names
    layer = str(root / "clicks.gpkg")
    train(dict(FAST, data=str(root), points_file=layer, out=str(tmp_path / "run")))
    predict.main(
        [
            str(tmp_path / "run" / "model.pt"),
            str(root / "test" / "images"),
            "--polygons",
            "--out",
            str(tmp_path / "maps"),
        ]
    )
    for tif in sorted((tmp_path / "maps").glob("*_classes.tif")):
        with rasterio.open(tif) as raster:
            class_map, shape, transform, crs = (
                raster.read(1),
                raster.shape,
                raster.transform,
                raster.crs,
            )
        polygons = tif.with_name(tif.name.replace("_classes.tif", "_polygons.gpkg"))
        with fiona.open(polygons) as layer:
            assert layer.crs == crs
            found = {f.properties["code"]: f.properties["class"] for f in layer}
            back = features.rasterize(
                ((f.geometry, f.properties["code"]) for f in layer),
                shape,
                transform=transform,
                fill=255,
                dtype="uint8",
            )
        assert np.array_equal(back, class_map) and all(names[k] == n for k, n in found.items())
