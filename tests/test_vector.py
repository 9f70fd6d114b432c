"""GIS point layers in, accuracy from reference points, polygons out (vector.py, --points-file,
--polygons)."""

import json
import shutil

import fiona
import numpy as np
import pytest
import rasterio
from rasterio import warp

import export
import suggest
from clicks import sample_points
from conftest import FAST
from lib import annotations, rasters, tiles
from train import main, train

LAYER_CRS = "EPSG:4326"  # the points in lon/lat, over tiles in UTM (export's EPSG:32632)
SCHEMA = {"geometry": "Point", "properties": {"class": "str"}}


def map_points(tile, clicks, crs=LAYER_CRS):
    """The map coordinates (in `crs`) of the centres of the clicked pixels of a GeoTIFF tile."""
    with rasterio.open(tile) as raster:
        xs, ys = raster.transform @ (clicks.cols + 0.5, clicks.rows + 0.5)
        return warp.transform(raster.crs, crs, list(xs), list(ys))


def write_layer(path, records, driver="GPKG", crs=LAYER_CRS, schema=SCHEMA):
    with fiona.open(path, "w", driver=driver, crs=crs, schema=schema) as layer:
        layer.writerecords(records)
    return path


def point(x, y, name):
    return dict(geometry=dict(type="Point", coordinates=(x, y)), properties={"class": name})


@pytest.fixture(scope="module")
def georeferenced(tmp_path_factory):
    """GeoTIFF tiles (4/2/2 of 64²) in UTM; their clicks (3 per class) as a lon/lat GeoPackage, the
    same clicks as per-tile pixel CSVs in a copy of the folder, and reference points on the test
    tiles."""
    base = tmp_path_factory.mktemp("gis")
    root = base / "tiles"
    export.export_tiles(root, seed=0, sizes=(4, 2, 2), image_size=64, format="tif")
    legend, rng = annotations.read_legend(root), np.random.default_rng(0)
    clicks, reference, expected = [], [], {}
    for split, records in (("train", clicks), ("test", reference)):
        for tile in sorted((root / split / "images").glob("*.tif")):
            mask = rasters.read_mask(root / split / "masks" / tile.name, legend, (64, 64))
            chosen = sample_points(mask, rng, points_per_class=3)
            expected[split, tile.stem] = chosen
            records += [
                point(x, y, legend.names[k])
                for x, y, k in zip(*map_points(tile, chosen), chosen.classes)
            ]
    with_csvs = base / "csvs"
    shutil.copytree(root, with_csvs)
    for stem in ("scene_0000", "scene_0001", "scene_0002", "scene_0003"):
        (with_csvs / "train" / "points").mkdir(exist_ok=True)
        annotations.write_clicks(
            with_csvs / "train" / "points" / f"{stem}.csv", expected["train", stem], legend.names
        )
    return dict(
        root=root,
        csvs=with_csvs,
        legend=legend,
        expected=expected,
        gpkg=write_layer(base / "clicks.gpkg", clicks),
        clicks=clicks,
        reference=write_layer(base / "reference.gpkg", reference),
    )


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


def bad(tmp_path, g, records=None, **layer):
    path = (
        write_layer(tmp_path / "bad.gpkg", records or g["clicks"][:3], **layer)
        if records is not False
        else g["gpkg"]
    )
    return ["--data", str(g["root"]), "--points-file", str(path)]


@pytest.mark.parametrize(
    "case, message",
    [
        (
            "class",
            "has class 'Forest', which classes.txt lacks (Urban, Vegetation, Water, Bare Soil, "
            "Road, or an index 0..4)",
        ),
        (
            "field",
            "the layer has no field 'class'; its fields: kind (choose one with --class-field)",
        ),
        ("crs", "the layer has no CRS"),
        ("outside", "no point falls inside any tile of"),
        ("geometry", "feature 1 is a LineString; a layer of clicks holds points"),
        ("png", "not georeferenced (no CRS), but the point layer is in map coordinates"),
        (
            "planetary",
            "bad.gpkg: its CRS (Mars (2015) - Sphere / Ocentric) cannot be transformed to the "
            "tiles' CRS (EPSG:32632); reproject the layer",
        ),
        ("empty", "empty.gpkg: the layer holds no points"),
        ("dbf", "its attribute table bad.dbf, which holds the 'class' field, is missing"),
    ],
)
def test_bad_layers_give_one_line_and_exit_2(georeferenced, tmp_path, capsys, case, message):
    g = georeferenced
    if case == "class":
        argv = bad(tmp_path, g, [point(*g["clicks"][0]["geometry"]["coordinates"], "Forest")])
    elif case == "field":
        argv = bad(
            tmp_path,
            g,
            [dict(geometry=g["clicks"][0]["geometry"], properties={"kind": "Water"})],
            schema={"geometry": "Point", "properties": {"kind": "str"}},
        )
    elif case == "crs":
        argv = bad(tmp_path, g, crs=None)
    elif case == "outside":
        argv = bad(tmp_path, g, [point(100.0, -40.0, "Water")])
    elif case == "geometry":
        line = dict(
            geometry=dict(type="LineString", coordinates=[(9.0, 45.0), (9.1, 45.1)]),
            properties={"class": "Road"},
        )
        argv = bad(
            tmp_path, g, [line], schema={"geometry": "LineString", "properties": {"class": "str"}}
        )
    elif case == "planetary":  # Mars: PROJ has no way to the Earth's UTM
        argv = bad(tmp_path, g, crs="IAU_2015:49900")
    elif case == "empty":
        argv = ["--data", str(g["root"]), "--points-file"]
        argv.append(str(write_layer(tmp_path / "empty.gpkg", [])))
    elif case == "dbf":
        argv = bad(tmp_path, g, driver="ESRI Shapefile")
        argv[-1] = str(write_layer(tmp_path / "bad.shp", g["clicks"][:3], "ESRI Shapefile"))
        (tmp_path / "bad.dbf").unlink()
    else:
        png = tmp_path / "png"
        export.export_tiles(png, seed=0, sizes=(1, 1, 1), image_size=64)
        argv = ["--data", str(png), "--points-file", str(g["gpkg"])]
    with pytest.raises(SystemExit) as exit_info:
        main(argv + ["--weights", "none", "--image-size", "64", "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and len(err.strip().splitlines()) == 1 and message in err, err
    assert not (tmp_path / "r").exists()


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
