"""Shared fixtures and helpers: small settings and tile folders written the way a user writes
them."""

import os

import numpy as np
import pytest
from PIL import Image

import export
from data import make_split

# the report's recipe, on folders too, without the prior shift's EM pass and the forest's fit (a
# folder run's own defaults are tested in test_train.py)
FAST = dict(
    epochs=1,
    batch_size=2,
    image_size=64,
    weights="none",
    augment="hflip",
    tta=False,
    prior_shift=0.0,
    forest_weight=0.0,
)


@pytest.fixture(autouse=True, scope="session")
def test_precision():
    """TEST_PRECISION=fp32 (or bf16) makes `--precision auto` mean that precision in the trainings
    and scorings this process runs, so that on a CPU with bf16 the suite is run in both."""
    asked = os.environ.get("TEST_PRECISION")
    if not asked:
        yield
        return
    import predict
    import suggest
    import train
    from lib import device

    def pick(precision, where):
        return device.pick_precision(asked if precision == "auto" else precision, where)

    with pytest.MonkeyPatch.context() as patch:
        for module in (train, predict, suggest):
            patch.setattr(module, "pick_precision", pick)
        yield


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """The synthetic scenes exported as a folder: 4/2/2 PNG tiles of 64 x 64."""
    root = tmp_path_factory.mktemp("export") / "scenes"
    export.export_tiles(root, seed=0, sizes=(4, 2, 2), image_size=64)
    return root


@pytest.fixture(scope="module")
def georeferenced(tmp_path_factory):
    """GeoTIFF tiles in UTM, their clicks as a lon/lat GeoPackage and as CSVs, reference points
    (gis_layers.georeferenced_tiles; imported here so the core tests need no rasterio)."""
    from gis_layers import georeferenced_tiles

    return georeferenced_tiles(tmp_path_factory.mktemp("gis"))


def write_tile(folder, stem, image, mask=None, clicks=None):
    for sub in ("images", "masks", "points"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    np.save(folder / "images" / f"{stem}.npy", image)
    if mask is not None:
        Image.fromarray(mask.astype(np.uint8)).save(folder / "masks" / f"{stem}.png")
    if clicks is not None:
        (folder / "points" / f"{stem}.csv").write_text(
            "x,y,class\n" + "".join(f"{x},{y},{c}\n" for x, y, c in clicks)
        )


def own_folder(root, bands=3, shape=(50, 90), with_val=True):
    """Two classes, 'dark' left and 'bright' right; train tiles carry hand-written clicks only."""
    rng = np.random.default_rng(0)
    (root).mkdir(parents=True, exist_ok=True)
    (root / "classes.txt").write_text("dark\nbright\n")
    mask = np.zeros(shape, np.uint8)
    mask[:, shape[1] // 2 :] = 1
    image = (mask[None] * 100 + rng.normal(50, 5, (bands,) + shape)).astype(np.float32)
    for i in range(2):
        write_tile(
            root / "train",
            f"t{i}",
            image,
            clicks=[(3, 4, "dark"), (80, 40, "bright"), (10, 30, 0), (70, 2, 1)],
        )
    for split in ("val", "test") if with_val else ("test",):
        write_tile(root / split, "a", image, mask=mask)
    return root


@pytest.fixture(scope="module")
def train_split():
    return make_split("train", 24, seed=0, image_size=128)


def train_and_predict(root, out):
    """A dense run on the folder `root` (out/run) and predict.py over its test images (out/p)."""
    import predict
    import train

    train.train(dict(FAST, data=str(root), dense=True, out=str(out / "run")))
    images, model = str(root / "test" / "images"), str(out / "run" / "model.pt")
    predict.main([model, images, "--out", str(out / "p")])


def train_killed_after(config, epoch):
    """train(config) killed as a run is killed during epoch + 1: its state saved after every epoch,
    however short, and the run stopped right after the save of `epoch`."""
    from lib import checkpoint
    from train import train

    save = checkpoint.save_progress

    def save_then_stop(path, parts, saved_epoch, *rest):
        save(path, parts, saved_epoch, *rest)
        if saved_epoch == epoch:
            raise KeyboardInterrupt

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(checkpoint, "SAVE_PROGRESS_EVERY_S", -1)
        patch.setattr(checkpoint, "save_progress", save_then_stop)
        with pytest.raises(KeyboardInterrupt):
            train(config)
