"""A bad point layer costs one line naming what is wrong and exit 2, before any training
(--points-file, lib/vector.py)."""

import pytest

import export
from gis_layers import point, write_layer
from train import main


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
