"""label.py's API (lib/label_server.py), over HTTP on a free local port: listing, a click written,
a proposal answered, undo, each bad request refused with nothing changed, concurrent clicks all
kept, and a file changed by another program reread."""

import json
import threading
import urllib.error
import urllib.request

import numpy as np
import pytest
from PIL import Image

import export
import label


@pytest.fixture
def served(tmp_path):
    """A folder of 3 synthetic training tiles, tile scene_0001 with a click and two proposals, and
    label.py serving it: (folder, base URL)."""
    root = tmp_path / "scenes"
    export.export_tiles(root, sizes=(3, 1, 1), image_size=64)
    (root / "train" / "points").mkdir()
    (root / "train" / "points" / "scene_0001.csv").write_text(
        "x,y,class\n1,2,Water\n10,20,\n30,40,\n"
    )
    started = threading.Event()
    servers = []

    def ready(server):
        servers.append(server)
        started.set()

    thread = threading.Thread(
        target=label.main, args=([str(root), "--port", "0"], ready), daemon=True
    )
    thread.start()
    assert started.wait(30)
    host, port = servers[0].server_address[:2]
    yield root, f"http://{host}:{port}"
    servers[0].shutdown()
    thread.join(10)


def call(url, body=None, raw=None):
    """(status, decoded JSON or bytes)."""
    data = raw if raw is not None else None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method="GET" if data is None else "POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, payload, kind = (
                response.status,
                response.read(),
                response.headers["Content-Type"],
            )
    except urllib.error.HTTPError as error:
        status, payload, kind = error.code, error.read(), error.headers["Content-Type"]
    return status, json.loads(payload) if kind == "application/json" else payload


def csv_of(root, stem):
    path = root / "train" / "points" / f"{stem}.csv"
    return path.read_text() if path.exists() else None


def test_listing_clicks_proposals_and_undo(served):
    root, base = served
    status, listing = call(f"{base}/api/tiles")
    assert status == 200 and listing["classes"][2] == "Water"
    assert [t["stem"] for t in listing["tiles"]] == ["scene_0000", "scene_0001", "scene_0002"]
    assert listing["tiles"][1] | {} == dict(
        stem="scene_0001", width=64, height=64, clicks=1, proposals=2
    )
    status, state = call(f"{base}/api/tiles/scene_0000/points", {"x": 5, "y": 6, "class": "Road"})
    assert status == 200 and state["clicks"] == [[5, 6, "Road"]]
    assert csv_of(root, "scene_0000").splitlines() == ["x,y,class", "5,6,Road"]
    # a click on a proposal answers it (in place), a class may be given by its index
    status, state = call(f"{base}/api/tiles/scene_0001/points", {"x": 30, "y": 40, "class": 1})
    assert state["clicks"] == [[1, 2, "Water"], [30, 40, "Vegetation"]]
    assert state["proposals"] == [[10, 20]]
    assert csv_of(root, "scene_0001").splitlines() == [
        "x,y,class",
        "1,2,Water",
        "10,20,",
        "30,40,Vegetation",
    ]
    status, state = call(f"{base}/api/tiles/scene_0001/undo", {})
    assert status == 200 and state["proposals"] == [[10, 20], [30, 40]]
    assert call(f"{base}/api/tiles/scene_0001/undo", {})[0] == 409  # nothing more of this page's
    status, png = call(f"{base}/api/tiles/scene_0000/image?x=0&y=0&w=64&h=64&width=32")
    assert status == 200 and png.startswith(b"\x89PNG")
    assert call(f"{base}/api/tiles/scene_0000/prediction")[0] == 404  # no --run


def test_bad_requests_change_nothing(served):
    root, base = served
    before = {stem: csv_of(root, stem) for stem in ("scene_0000", "scene_0001")}
    for url, body, message in (
        ("scene_0001/points", {"x": 1, "y": 1, "class": "Lava"}, "unknown class 'Lava'"),
        ("scene_0001/points", {"x": 1, "y": 1, "class": 9}, "unknown class 9"),
        ("scene_0001/points", {"x": 64, "y": 1, "class": "Water"}, "outside the 64x64 tile"),
        ("scene_0001/points", {"x": -1, "y": 1, "class": "Water"}, "outside"),
        ("scene_0001/points", {"x": 1.5, "y": 1, "class": "Water"}, "outside"),
        ("scene_0001/points", {"x": 1, "class": "Water"}, "expected a JSON object"),
        ("scene_0001/points", b"x=1&y=2", "not JSON"),
        ("..%2F..%2Fclasses/points", {"x": 1, "y": 1, "class": "Water"}, "no training tile"),
        ("scene_0099/points", {"x": 1, "y": 1, "class": "Water"}, "no training tile"),
        ("scene_0000/undo", {}, "nothing to undo"),
    ):
        kind = dict(raw=body) if isinstance(body, bytes) else dict(body=body)
        status, answer = call(f"{base}/api/tiles/{url}", **kind)
        assert 400 <= status < 500 and message in answer["error"], (url, status, answer)
    assert call(f"{base}/api/nothing")[0] == 404
    status, answer = call(f"{base}/api/train", {"fast": True})
    assert status == 400 and 'expected {} or {"scratch": true}' in answer["error"]
    status, answer = call(f"{base}/api/train/cancel", {})
    assert status == 409 and "nothing to cancel" in answer["error"]
    assert call(f"{base}/api/train")[1]["status"] == "idle"  # no round was started
    assert {stem: csv_of(root, stem) for stem in before} == before


def test_concurrent_clicks_on_one_tile_are_all_kept(served):
    root, base = served
    clicks = [(x, y) for x in range(0, 64, 8) for y in range(0, 64, 16)]  # 32 clicks
    answers = []  # every request answered, none reset (the server's accept queue holds them)
    threads = [
        threading.Thread(
            target=lambda body: answers.append(
                call(f"{base}/api/tiles/scene_0002/points", body)[0]
            ),
            args=({"x": x, "y": y, "class": "Urban"},),
        )
        for x, y in clicks
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    rows = csv_of(root, "scene_0002").splitlines()[1:]
    assert answers == [200] * len(clicks)
    assert sorted(rows) == sorted(f"{x},{y},Urban" for x, y in clicks)


def test_a_file_changed_by_another_program_is_reread_not_overwritten(served):
    root, base = served
    call(f"{base}/api/tiles/scene_0001/points", {"x": 3, "y": 3, "class": "Urban"})
    path = root / "train" / "points" / "scene_0001.csv"
    path.write_text(path.read_text() + "50,50,Road\n")  # an editor adds a row meanwhile
    status, state = call(f"{base}/api/tiles/scene_0001/points", {"x": 4, "y": 4, "class": "Urban"})
    assert [50, 50, "Road"] in state["clicks"] and [4, 4, "Urban"] in state["clicks"]
    assert "50,50,Road" in path.read_text()


def files_of(root):
    """{path: (size, mtime)} of everything in a folder: what a read-only view must leave as is."""
    return {p: (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()}


def test_the_preview_maps_the_view_from_the_clicks_and_writes_nothing(served):
    root, base = served
    for k, (x, y) in enumerate([(5, 5), (60, 5), (5, 60), (60, 60), (32, 32)]):
        call(f"{base}/api/tiles/scene_0000/points", {"x": x, "y": y, "class": k})
    before = files_of(root)
    assert call(f"{base}/api/tiles/scene_0000/prepare", {})[0] == 200
    status, png = call(f"{base}/api/tiles/scene_0000/preview?x=0&y=0&w=64&h=64&width=32")
    picture = np.array(Image.open(__import__("io").BytesIO(png)))
    _, listing = call(f"{base}/api/tiles")
    legend = {tuple(int(c[i : i + 2], 16) for i in (1, 3, 5)) for c in listing["colours"]}
    assert status == 200 and picture.shape == (32, 32, 4)
    assert (
        set(map(tuple, picture.reshape(-1, 4)[:, :3])) <= legend and (picture[..., 3] == 255).all()
    )
    # a tile the forest has not seen a click on is mapped too; the folder is as it was
    assert call(f"{base}/api/tiles/scene_0002/preview?width=16")[0] == 200
    assert files_of(root) == before


def test_the_preview_learns_each_new_click(tmp_path):
    from lib.labelling import Folder
    from lib.preview import Preview

    root = tmp_path / "scenes"
    export.export_tiles(root, sizes=(1, 1, 1), image_size=64)
    folder = Folder(root)
    preview = Preview(folder)
    with pytest.raises(ValueError, match="no clicks yet"):
        preview.png("scene_0000", {})
    folder.click("scene_0000", {"x": 3, "y": 3, "class": "Urban"})
    preview.png("scene_0000", {})
    assert preview.forest().classes_.tolist() == [0]  # Urban: every pixel
    folder.click("scene_0000", {"x": 40, "y": 50, "class": "Water"})
    assert preview.forest().classes_.tolist() == [0, 2]  # refitted on the clicks as they are
    # a click's features are the whole tile's at that pixel (lib/forest.features)
    from lib import forest

    whole = forest.features(folder.read("scene_0000", 0, 0, 64, 64))
    assert np.allclose(preview.vectors["scene_0000"][40, 50], whole[:, 50, 40])


def test_a_view_too_big_for_the_preview_is_refused_in_one_line(tmp_path, monkeypatch):
    from lib import preview as preview_module
    from lib.labelling import Folder

    root = tmp_path / "scenes"
    export.export_tiles(root, sizes=(1, 1, 1), image_size=64)
    folder = Folder(root)
    folder.click("scene_0000", {"x": 3, "y": 3, "class": "Urban"})
    monkeypatch.setattr(preview_module, "PREVIEW_PIXELS", 1000)
    preview = preview_module.Preview(folder)
    with pytest.raises(ValueError, match="the view holds 0.0 MP; the preview maps at most"):
        preview.png("scene_0000", {})
    assert preview.png("scene_0000", {"w": ["30"], "h": ["30"]}).startswith(b"\x89PNG")


def test_progress_says_the_epoch_and_the_time_left():
    from lib.label_server import progress

    assert progress(["$ python train.py", "180 train / 27 val tiles"]) == {}
    under_way = ["  epoch 1/4: 30/120 steps, train loss 1.2, 15s"]
    assert progress(under_way) == dict(epoch=0.25, epochs=4, eta_s=225)  # 60 s an epoch
    finished = under_way + ["epoch 1/4  train loss 1.1000  val mIoU 0.3000  50.0s"]
    assert progress(finished) == dict(epoch=1, epochs=4, eta_s=150)
    later = finished + ["  epoch 2/4: 60/120 steps, train loss 1.0, 30s"]
    assert progress(later) == dict(epoch=1.5, epochs=4, eta_s=125)  # the finished epochs' pace


def test_a_run_s_prediction_is_served_as_a_view(tmp_path):
    from lib.checkpoint import save_checkpoint
    from lib.labelling import Folder
    from unet import UNet

    root = tmp_path / "scenes"
    export.export_tiles(root, sizes=(1, 1, 1), image_size=64)
    (tmp_path / "run").mkdir()
    model = UNet(5, weights=None, mean=[100.0] * 3, std=[50.0] * 3)
    save_checkpoint(tmp_path / "run" / "model.pt", model, list(range(5)), None, 3, 64)
    folder = Folder(root, tmp_path / "run")
    png = folder.prediction_png("scene_0000", {"width": ["32"]})
    import io

    picture = np.array(Image.open(io.BytesIO(png)))
    assert picture.shape == (32, 32, 4) and set(map(tuple, picture.reshape(-1, 4)[:, :3])) <= {
        tuple(int(c[i : i + 2], 16) for i in (1, 3, 5)) for c in folder.colours
    }


@pytest.mark.slow
def test_retrain_runs_rounds_warm_after_the_first_then_suggests(tmp_path):
    import json

    from lib.label_server import Training
    from lib.labelling import Folder, Refused

    root = tmp_path / "scenes"
    export.export_tiles(root, sizes=(2, 1, 1), image_size=64)
    folder = Folder(root)
    for stem in folder.paths:  # a person's round 0: a click of every class on every tile
        for k, name in enumerate(folder.classes):
            folder.click(stem, {"x": 5 + 10 * k, "y": 5 + 7 * k, "class": name})
    flags = "--epochs 1 --image-size 64 --batch-size 2 --weights none --no-tta"
    training = Training(folder, tmp_path / "runs", flags, suggest_clicks=4)
    assert training.start()["running"]
    with pytest.raises(Refused, match="one at a time"):
        training.start()
    training.thread.join(600)
    report = training.report()
    first = tmp_path / "runs" / "round1"
    assert report["status"] == f"done: {first}", report["lines"][-5:]
    assert report["val_miou"] is not None and any("suggest.py" in line for line in report["lines"])
    assert folder.run == str(first)  # the page now shows the new run
    assert sum(len(folder.state(stem)["proposals"]) for stem in folder.paths) == 4
    assert sum(len(folder.state(stem)["clicks"]) for stem in folder.paths) == 10  # none lost
    config = lambda n: json.loads((tmp_path / "runs" / f"round{n}" / "metrics.json").read_text())[
        "config"
    ]
    assert config(1)["init"] is None
    # round 2: warm, from round 1's weights; round 3, asked for: from scratch
    for scratch in (False, True):
        training.start(scratch=scratch)
        training.thread.join(600)
        assert training.report()["status"].startswith("done"), training.report()["lines"][-5:]
    assert config(2)["init"] == str(first) and config(3)["init"] is None
    # round 2's 4 proposals, left open, were taken out when round 3 began; round 3's are open
    assert "4 open proposals left unanswered" in training.report()["lines"][0]
    assert sum(len(folder.state(stem)["clicks"]) for stem in folder.paths) == 10
    assert folder.run == str(tmp_path / "runs" / "round3")


@pytest.mark.slow
def test_a_round_cancelled_leaves_the_clicks_and_the_earlier_rounds(tmp_path):
    import time

    from lib.label_server import Training
    from lib.labelling import Folder, Refused

    root = tmp_path / "scenes"
    export.export_tiles(root, sizes=(2, 1, 1), image_size=64)
    folder = Folder(root)
    for stem in folder.paths:
        folder.click(stem, {"x": 5, "y": 5, "class": "Urban"})
    earlier = tmp_path / "runs" / "round1"
    earlier.mkdir(parents=True)
    (earlier / "metrics.json").write_text("{}")  # a finished round, as far as the page knows
    clicks, kept = files_of(root), files_of(earlier)
    flags = "--epochs 500 --image-size 64 --batch-size 2 --weights none --no-tta"
    training = Training(folder, tmp_path / "runs", flags, suggest_clicks=4)
    with pytest.raises(Refused, match="nothing to cancel"):
        training.cancel()
    training.start(scratch=True)
    deadline = time.time() + 300
    while not any(line.startswith("epoch 1/500") for line in training.lines):
        assert time.time() < deadline and training.thread.is_alive(), list(training.lines)[-5:]
        time.sleep(0.2)
    assert training.report()["epochs"] == 500 and training.report()["eta_s"] > 0
    report = training.cancel()
    assert not report["running"] and report["status"] == (
        "cancelled: round2 removed; the clicks are as they were"
    )
    assert not (tmp_path / "runs" / "round2").exists()
    assert files_of(root) == clicks and files_of(earlier) == kept
