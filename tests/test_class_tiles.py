"""scripts/class_tiles.py: the tiles holding each class and its pixels, per split, counted from the
masks (unknown pixels left out); test only with --show-test; training tiles with clicks and no
mask counted apart."""

import numpy as np
import pytest

from conftest import write_tile
from scripts.class_tiles import main


def pond_folder(root):
    """Two classes: 'land' everywhere, a 'pond' of 4×4 pixels in one training tile and one test
    tile; one unknown pixel (255) in each mask; a third training tile with clicks only."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "classes.txt").write_text("land\npond\n")
    image = np.zeros((3, 16, 16), np.float32)
    for split, count in (("train", 2), ("val", 2), ("test", 3)):
        for i in range(count):
            mask = np.zeros((16, 16), np.uint8)
            mask[0, 0] = 255
            if i == 0 and split != "val":
                mask[4:8, 4:8] = 1
            write_tile(root / split, f"{split}-{i}", image, mask=mask)
    write_tile(root / "train", "clicked", image, clicks=[(1, 2, "land")])
    return root


def test_tiles_and_pixels_per_class_and_test_only_when_asked(tmp_path, capsys):
    root = pond_folder(tmp_path / "set")
    main([str(root)])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"{root} train: 2 tiles with a mask (1 with clicks and no mask, not counted)"
    assert lines[1].split() == ["land", "2", "of", "2", "tiles", "494", "pixels", "96.86", "%"]
    assert lines[2].split() == ["pond", "1", "of", "2", "tiles", "16", "pixels", "3.14", "%"]
    assert lines[3] == f"{root} val: 2 tiles with a mask"
    assert lines[5].split()[:6] == ["pond", "0", "of", "2", "tiles", "0"]
    assert len(lines) == 6
    main([str(root), "--show-test"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[6] == f"{root} test: 3 tiles with a mask" and len(lines) == 9
    assert lines[8].split()[:6] == ["pond", "1", "of", "3", "tiles", "16"]


def test_a_val_tile_without_a_mask_is_one_line(tmp_path, capsys):
    root = pond_folder(tmp_path / "set")
    (root / "val" / "masks" / "val-1.png").unlink()
    with pytest.raises(SystemExit) as stop:
        main([str(root)])
    assert stop.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "val-1.npy: no mask" in error[0]
