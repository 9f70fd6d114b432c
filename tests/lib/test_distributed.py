"""Under torchrun: N processes compute what one process computes (CPU, gloo, 2 processes).

The equivalence that makes DistributedDataParallel trustworthy here, in the spirit of test_pce.py:
one step on two half batches equals one step on the whole batch, even when the halves hold
different numbers of clicks (pCE's denominator is the global batch's); evaluation split over the
processes gives the very confusion matrix of one process. Then the real commands under torchrun.
"""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

import export
from lib import distributed
from lib.evaluation import evaluate
from lib.recipe import make_optimizer, train_step
from lib.settings import DEFAULTS
from unet import UNet

pytestmark = pytest.mark.slow  # the whole file: see pyproject.toml's markers

TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
TINY = (
    "--train-size 16 --val-size 4 --test-size 4 --image-size "
    "64 --epochs 2 --batch-size 4 --weights none"
).split()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def as_process(rank, world, port):
    os.environ.update(
        RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port)
    )
    torch.set_num_threads(1)
    return distributed.setup(torch.device("cpu"))


def a_batch():
    generator = torch.Generator().manual_seed(1)
    images = torch.rand(4, 3, 64, 64, generator=generator) * 255
    labels = torch.full((4, 64, 64), -1)
    labels[0, :3, :5] = 1  # 15 clicks on image 0 (process 0's half: images 0 and 2) ...
    labels[2, 10, 10] = 2
    labels[1, 40, 7] = 4  # ... and 2 on process 1's half (images 1 and 3)
    labels[3, 5, 60] = 0
    return images, labels


def a_model(optimizer="adam"):
    torch.manual_seed(0)
    # BatchNorm frozen: its batch statistics differ
    model = UNet(5, "none", 3, [100.0] * 3, [50.0] * 3).eval()
    if optimizer == "sgd":  # lr 1: the step is the gradient itself
        return model, torch.optim.SGD(model.parameters(), lr=1.0)
    return model, make_optimizer(model, DEFAULTS)[0]  # the recipe's Adam


def half_step(rank, port, out, optimizer):
    device = as_process(rank, 2, port)
    model, optimizer = a_model(optimizer)
    images, labels = a_batch()
    train_step(distributed.wrap(model, device), optimizer, images[rank::2], labels[rank::2], "fp32")
    torch.save(model.state_dict(), f"{out}/rank{rank}.pt")
    distributed.finish()


# The tolerance, as a fraction of the largest change of any weight in the step: fp32 summation
# order. With SGD (lr 1) the step is the gradient itself, and the two routes agree to 1e-6 of its
# largest entry. Adam divides each gradient by its own size (plus eps, 1e-8): where weight decay
# all but cancels a gradient, rounding is magnified, so 1e-2 of a step (measured: 1.5e-3).
@pytest.mark.parametrize("optimizer, tolerance", [("sgd", 1e-6), ("adam", 1e-2)])
def test_two_half_batches_step_like_the_whole_batch(tmp_path, optimizer, tolerance):
    mp.spawn(half_step, args=(free_port(), str(tmp_path), optimizer), nprocs=2)
    model, step = a_model(optimizer)
    before = {name: value.clone() for name, value in model.state_dict().items()}
    train_step(model, step, *a_batch(), "fp32")
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1)]
    largest = max(
        (value - before[name]).abs().max().item() for name, value in model.state_dict().items()
    )
    for name, value in model.state_dict().items():
        assert torch.equal(ranks[0][name], ranks[1][name])  # the processes agree ...
        difference = (ranks[0][name] - value).abs().max().item() if value.is_floating_point() else 0
        # ... and equal one process
        assert difference <= tolerance * largest, (name, difference, largest)


def tiles_to_score():
    rng = np.random.default_rng(0)
    shapes = [(64, 64), (70, 100), (64, 96)]  # three tiles: they do not share out evenly
    images = [rng.integers(0, 255, (3,) + s).astype(np.uint8) for s in shapes]
    masks = [rng.integers(0, 5, s).astype(np.uint8) for s in shapes]
    return images, masks


def shared_scoring(rank, port, out):
    as_process(rank, 2, port)
    scores = evaluate(a_model()[0], tiles_to_score(), list("abcde"), 64)
    (out / f"rank{rank}.json").write_text(json.dumps(scores))
    distributed.finish()


def test_scoring_split_over_processes_equals_one_process_exactly(tmp_path):
    mp.spawn(shared_scoring, args=(free_port(), tmp_path), nprocs=2)
    alone = evaluate(a_model()[0], tiles_to_score(), list("abcde"), 64)
    for rank in (0, 1):
        assert json.loads((tmp_path / f"rank{rank}.json").read_text()) == json.loads(
            json.dumps(alone)
        )


def test_each_process_takes_its_slice_of_every_global_batch(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    shares = []
    for rank in (0, 1):
        monkeypatch.setenv("RANK", str(rank))
        shares.append(list(distributed.Shard(list(range(11)), batch_size=4)))
    assert shares == [[0, 2, 4, 6, 8, 10], [1, 3, 5, 7, 9, 0]]  # padded to 12 with the first crop
    with pytest.raises(
        ValueError, match="--batch-size 5 is the total over the processes: it must divide by the 2"
    ):
        distributed.per_process_batch(5)


def torchrun(args, cwd, timeout=300):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.getcwd())
    return subprocess.run(
        TORCHRUN + args, capture_output=True, text=True, timeout=timeout, cwd=cwd, env=env
    )


@pytest.fixture(scope="module")
def two_process_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp") / "run"
    result = torchrun(
        [os.path.abspath("train.py"), "--points", "100", "--out", str(out)] + TINY, os.getcwd()
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return out, result


def test_train_py_under_torchrun_writes_one_run(two_process_run):
    out, result = two_process_run
    metrics = json.loads((out / "metrics.json").read_text())
    assert (
        metrics["world_size"] == 2
        and metrics["batch_per_process"] == 2
        and metrics["config"]["batch_size"] == 4
    )
    assert result.stdout.count("epoch 1/2") == 1  # one process prints
    assert sorted(p.name for p in out.iterdir()) == ["metrics.json", "model.pt"]


def test_bad_data_under_torchrun_fails_with_one_line(tmp_path):
    root = tmp_path / "bad"
    export.export_tiles(root, seed=0, sizes=(2, 1, 1), image_size=64)
    mask = root / "test" / "masks" / "scene_0000.png"
    from PIL import Image

    Image.fromarray(np.full((64, 64), 9, np.uint8)).save(mask)
    result = torchrun(
        [
            os.path.abspath("train.py"),
            "--data",
            str(root),
            "--points-per-class",
            "2",
            "--out",
            str(tmp_path / "r"),
        ]
        + TINY[6:],
        os.getcwd(),
    )
    # what the two processes printed, before torchrun's own failure report (its traceback and table)
    ours = result.stderr.split("torch/distributed/elastic")[0].strip().splitlines()[:-1]
    assert result.returncode != 0 and len(ours) == 1, result.stderr
    assert (
        ours[0].startswith("train.py: error:")
        and "mask values [9] are not class indices 0..4" in ours[0]
    )
    assert not (tmp_path / "r").exists()


def test_a_process_that_dies_takes_the_run_down(tmp_path):
    script = tmp_path / "dies.py"
    script.write_text(
        "import os, sys\nimport train\nif os.environ['RANK'] == '1':\n    train.train_step = "
        "lambda *args: os._exit(3)\ntrain.main(sys.argv[1:])\n"
    )
    result = torchrun(
        [str(script), "--points", "100", "--out", str(tmp_path / "r")] + TINY,
        os.getcwd(),
        timeout=240,
    )
    assert result.returncode != 0 and not (tmp_path / "r" / "metrics.json").exists()


def test_predict_py_under_torchrun_writes_each_output_once_as_one_process_does(
    two_process_run, tmp_path
):
    out, _ = two_process_run
    root = tmp_path / "scenes"
    export.export_tiles(root, seed=3, sizes=(5, 1, 1), image_size=64)  # 5 images for 2 processes
    inputs = [str(out / "model.pt"), str(root / "train" / "images")]
    result = torchrun(
        [os.path.abspath("predict.py")] + inputs + ["--out", str(tmp_path / "two")], os.getcwd()
    )
    assert result.returncode == 0, result.stderr[-3000:]
    subprocess.run(
        [sys.executable, "predict.py"] + inputs + ["--out", str(tmp_path / "one")],
        check=True,
        capture_output=True,
    )
    one, two = sorted((tmp_path / "one").iterdir()), sorted((tmp_path / "two").iterdir())
    assert [p.name for p in one] == [p.name for p in two] and len(one) == 10
    assert all(a.read_bytes() == b.read_bytes() for a, b in zip(one, two))
    assert result.stdout.count("-> ") == 5  # every image once, by one process
