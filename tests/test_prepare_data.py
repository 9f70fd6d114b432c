"""scripts/prepare_data.sh on a GID-MTL-shaped source: each scene class split in blocks of crop
numbers (numeric order), the grey masks' values named in classes.txt, a folder train.py reads;
scripts/set_runs.sh refuses what it cannot run in one line, exit 2."""

import subprocess

import numpy as np
import pytest
from PIL import Image

from lib.tiles import load_folder


def gid_source(root, crops_per_scene=20):
    """GID-MTL5's layout: image/<scene>/<n>.tif (RGB) and label_gray/<scene>/<n>.tif (0-5)."""
    rng = np.random.default_rng(0)
    for index, scene in enumerate(["builtup", "water"]):
        for number in range(1, crops_per_scene + 1):
            for folder in ("image", "label_gray"):
                (root / "GID-MTL5" / folder / scene).mkdir(parents=True, exist_ok=True)
            image = rng.integers(0, 255, (32, 32, 3), np.uint8)
            mask = np.full((32, 32), 4 * index, np.uint8)  # Built-up 0 or Water 4 ...
            mask[:4] = 5  # ... and a strip of "undefined"
            Image.fromarray(image).save(root / "GID-MTL5" / "image" / scene / f"{number}.tif")
            Image.fromarray(mask).save(root / "GID-MTL5" / "label_gray" / scene / f"{number}.tif")


def test_gid5_is_split_in_blocks_of_crop_numbers(tmp_path):
    gid_source(tmp_path / "source")
    dest = tmp_path / "gid5"
    subprocess.run(
        ["bash", "scripts/prepare_data.sh", "gid5", str(tmp_path / "source"), str(dest)], check=True
    )
    for scene in ("builtup", "water"):
        numbers = {
            split: sorted(
                int(p.stem.split("-")[1]) for p in (dest / split / "images").glob(f"{scene}-*")
            )
            for split in ("train", "val", "test")
        }
        assert numbers == {
            "train": list(range(1, 15)),
            "val": list(range(15, 18)),
            "test": list(range(18, 21)),
        }
    assert (dest / "classes.txt").read_text().splitlines()[-1] == "ignore 5"
    data = load_folder(dest, seed=0, how=dict(points_per_class=2))
    masks = data["test"][1]
    assert {int(v) for mask in masks for v in np.unique(mask)} == {0, 4, 255}  # 5: unknown


@pytest.mark.parametrize(
    "argv, named",
    [
        (["prepare_data.sh", "gid7", "src"], "unknown data set 'gid7'"),
        (["set_runs.sh", "forest", "nowhere", "0"], "nowhere/ not found"),
        (["set_runs.sh", "trees", ".", "0"], "'trees' is not forest or network"),
        (["set_runs.sh", "forest", ".", "x"], "seed 'x' is not a non-negative integer"),
    ],
)
def test_the_run_scripts_refuse_in_one_line(argv, named, tmp_path):
    script = f"{__file__.rsplit('/tests/', 1)[0]}/scripts/{argv[0]}"
    done = subprocess.run(["bash", script, *argv[1:]], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 2 and named in done.stderr and len(done.stderr.splitlines()) == 1
    assert list(tmp_path.iterdir()) == []
