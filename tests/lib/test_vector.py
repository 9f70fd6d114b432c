"""GIS point layers in (lib/vector.py, --points-file): clicks on their pixels, the same run as
from CSVs, accuracy from reference points, nodata, and suggest.py's proposals as a layer. Bad
layers: test_vector_errors.py; polygons out: test_layer_folders.py."""

import json
import shutil

import fiona
import numpy as np
import pytest
import rasterio

import suggest
from conftest import FAST
from gis_layers import write_layer
from lib import rasters, tiles
from train import main, train


def test_points_in_another_crs_land_on_their_pixels_exactly(georeferenced):
    g = georeferenced
    for path in (
        g["gpkg"],
        write_layer(g["gpkg"].with_suffix(".geojson"), g["clicks"], driver="GeoJSON"),
    ):
        data = tiles.load_data(None, 0, str(g["root"]), layer=(str(path), "class"))
        for stem, clicks in zip(data["stems"]["train"], data["train"][1]):
            want = g["expected"]["train", stem]
            assert np.array_equal(clicks.rows, want.rows) and np.array_equal(clicks.cols, want.cols)
            assert np.array_equal(clicks.classes, want.classes)


@pytest.mark.slow
def test_a_layer_and_the_same_clicks_as_csvs_give_identical_metrics(georeferenced, tmp_path):
    g = georeferenced
    from_layer = train(
        dict(FAST, data=str(g["root"]), points_file=str(g["gpkg"]), out=str(tmp_path / "a"))
    )
    from_csvs = train(dict(FAST, data=str(g["csvs"]), out=str(tmp_path / "b")))
    assert (
        from_layer["test"] == from_csvs["test"]
        and from_layer["history"][0]["train_loss"] == from_csvs["history"][0]["train_loss"]
    )


def test_reference_points_score_as_the_dense_masks_restricted_to_them(georeferenced, tmp_path):
    g = georeferenced
    bare = tmp_path / "no-masks"
    shutil.copytree(g["root"], bare)
    shutil.rmtree(bare / "test" / "masks")
    both = [str(g["gpkg"]), str(g["reference"])]  # clicks and reference points, two layers
    data = tiles.load_data(None, 0, str(bare), layer=(both, "class"))
    assert data["scored_on"]["test"] == "reference points"
    for stem, mask in zip(data["stems"]["test"], data["test"][1]):
        dense = rasters.read_mask(
            g["root"] / "test" / "masks" / f"{stem}.tif", g["legend"], (64, 64)
        )
        want = g["expected"]["test", stem]
        restricted = np.full((64, 64), 255, np.uint8)
        restricted[want.rows, want.cols] = dense[want.rows, want.cols]
        assert np.array_equal(mask, restricted)
    metrics = train(dict(FAST, data=str(bare), points_file=both, out=str(tmp_path / "run")))
    assert metrics["scored_on"]["test"] == "reference points"
    assert np.asarray(metrics["test"]["confusion_matrix"]).sum() == sum(
        g["expected"]["test", s].rows.size for s in data["stems"]["test"]
    )


def test_points_on_nodata_are_counted_and_left_out(georeferenced, tmp_path, capsys):
    g = georeferenced
    folder = tmp_path / "nodata"
    shutil.copytree(g["root"], folder)
    tile = folder / "train" / "images" / "scene_0000.tif"
    with rasterio.open(tile, "r+") as raster:
        pixels = raster.read()
        pixels[:, :, :] = 0  # the whole tile is nodata: its clicks go
        raster.write(pixels)
        raster.nodata = 0
    data = tiles.load_data(None, 0, str(folder), layer=(str(g["gpkg"]), "class"))
    left_out = g["expected"]["train", "scene_0000"].rows.size
    assert (
        data["train"][1][0].rows.size == 0
        and f"{left_out} points on nodata or unknown pixels left out" in capsys.readouterr().out
    )


@pytest.mark.slow
def test_proposals_as_a_point_layer_land_on_their_pixels_and_train_once_filled_in(
    georeferenced, tmp_path, capsys
):
    g = georeferenced
    root, run = tmp_path / "tiles", tmp_path / "round0"
    shutil.copytree(g["root"], root)
    train(dict(FAST, data=str(root), points_file=str(g["gpkg"]), out=str(run)))
    (root / "train" / "points").mkdir()
    # stale: a layer run reads no CSV
    (root / "train" / "points" / "scene_0000.csv").write_text("x,y,class\n1,1,\n")
    chosen = suggest.suggest(run, root, 6, 4, tmp_path / "s", "cpu", "fp32")
    with fiona.open(tmp_path / "s" / "proposals.gpkg") as layer:
        records, crs = list(layer), layer.crs
    assert len(records) == len(chosen) == 6 and all(r.properties["class"] is None for r in records)
    with rasterio.open(root / "train" / "images" / "scene_0000.tif") as raster:
        assert crs == raster.crs  # the tiles' CRS
    argv = [
        "--data",
        str(root),
        "--weights",
        "none",
        "--image-size",
        "64",
        "--epochs",
        "1",
        "--no-tta",
    ]
    with pytest.raises(SystemExit) as exit_info:  # not labelled yet: one line
        main(
            argv
            + [
                "--points-file",
                str(g["gpkg"]),
                str(tmp_path / "s" / "proposals.gpkg"),
                "--out",
                str(tmp_path / "x"),
            ]
        )
    err = capsys.readouterr().err
    assert (
        exit_info.value.code == 2
        and len(err.strip().splitlines()) == 1
        and "feature 1 has no class yet" in err
    ), err
    filled = write_layer(
        tmp_path / "filled.gpkg",
        crs=crs,
        records=[  # the person labels: here, as the model guessed
            dict(
                geometry=dict(type="Point", coordinates=r.geometry.coordinates),
                properties={"class": r.properties["predicted"]},
            )
            for r in records
        ],
    )
    data = tiles.load_data(None, 0, str(root), layer=([str(g["gpkg"]), str(filled)], "class"))
    for t, (stem, clicks) in enumerate(zip(data["stems"]["train"], data["train"][1])):
        old = g["expected"]["train", stem]
        assert np.array_equal(clicks.rows[: old.rows.size], old.rows) and np.array_equal(
            clicks.cols[: old.cols.size], old.cols
        )
        assert sorted(
            zip(clicks.rows[old.rows.size :].tolist(), clicks.cols[old.cols.size :].tolist())
            # each point on its proposed pixel
        ) == sorted((y, x) for _, i, y, x, _ in chosen if i == t)
    main(argv + ["--points-file", str(g["gpkg"]), str(filled), "--out", str(tmp_path / "round1")])
    assert json.loads((tmp_path / "round1" / "metrics.json").read_text())["test"]["miou"] >= 0
