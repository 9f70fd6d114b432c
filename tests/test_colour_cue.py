"""scripts/colour_cue.py: tiles told apart by their colour alone are all named; val only unless
--show-test; a training tile with clicks but no mask is one line and exit 2."""

import numpy as np
import pytest

from conftest import write_tile
from scripts.colour_cue import main


def colour_folder(root):
    """Two classes, each tile wholly one: 'dark' tiles near 40, 'bright' near 200, with noise."""
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    (root / "classes.txt").write_text("dark\nbright\n")
    for split, count in (("train", 4), ("val", 3), ("test", 2)):
        for i in range(count):
            for k, level in enumerate((40, 200)):
                image = rng.normal(level, 10, (3, 32, 32)).astype(np.float32)
                write_tile(root / split, f"{k}-{i}", image, mask=np.full((32, 32), k))
    return root


def test_tiles_told_apart_by_colour_are_all_named_and_test_only_when_asked(tmp_path, capsys):
    root = colour_folder(tmp_path / "set")
    main([str(root)])
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{root} val: 6 tiles")
    assert "centroid: 1.000 (always the commonest: 0.500)" in lines[0]
    main([str(root), "--show-test"])
    assert [line.split(":")[0] for line in capsys.readouterr().out.splitlines()] == [
        f"{root} val",
        f"{root} test",
    ]


def test_a_training_tile_with_clicks_but_no_mask_is_one_line(tmp_path, capsys):
    root = colour_folder(tmp_path / "set")
    (root / "train" / "masks" / "0-0.png").unlink()
    (root / "train" / "points" / "0-0.csv").write_text("x,y,class\n3,4,dark\n")
    with pytest.raises(SystemExit) as stop:
        main([str(root)])
    assert stop.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "0-0.npy: no mask; every tile needs one" in error[0]
