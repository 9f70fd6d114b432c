"""predict.py: a file that is not a checkpoint is one line, not a traceback."""

import numpy as np
import pytest
import torch
from PIL import Image

import predict
from unet import UNet


def test_predict_rejects_bad_checkpoints(tmp_path, capsys):
    torch.save({"something": 1}, tmp_path / "junk.pt")
    model = UNet(3, weights=None)
    torch.save(
        dict(state_dict=model.state_dict(), classes=["a", "b"], bands=3, image_size=64),
        tmp_path / "wrong.pt",
    )
    np.save(tmp_path / "x.npy", np.zeros((3, 32, 32), np.float32))
    (tmp_path / "broken.pt").write_bytes(b"not a checkpoint at all")
    for checkpoint, message in (
        ("junk.pt", "not a train.py checkpoint"),
        ("nope.pt", "checkpoint not found"),
        ("wrong.pt", "weights are for 3 classes and 3 bands, but it declares 2 classes"),
        ("broken.pt", "broken.pt: not a train.py checkpoint ("),
    ):
        with pytest.raises(SystemExit) as exit_info:
            predict.main(
                [str(tmp_path / checkpoint), str(tmp_path / "x.npy"), "--out", str(tmp_path / "p")]
            )
        err = capsys.readouterr().err
        assert (
            exit_info.value.code == 2 and len(err.strip().splitlines()) == 1 and message in err
        ), err
    (tmp_path / "a_file").write_text("")
    with pytest.raises(SystemExit):
        predict.main(
            [str(tmp_path / "wrong.pt"), str(tmp_path / "x.npy"), "--out", str(tmp_path / "a_file")]
        )
    assert "a_file: exists and is not a folder" in capsys.readouterr().err


def test_predict_sees_the_image_shrunk_too_when_asked(tmp_path, monkeypatch):
    from lib.checkpoint import save_checkpoint

    asked = []
    real = predict.predict_tile
    monkeypatch.setattr(predict, "predict_tile", lambda *a, **k: asked.append(k) or real(*a, **k))
    save_checkpoint(tmp_path / "model.pt", UNet(3, weights=None), ["a", "b", "c"], None, 3, 64)
    np.save(tmp_path / "x.npy", np.random.default_rng(0).random((3, 70, 90)).astype(np.float32))
    flags = ["--tta", "--tta-zoom-out", "2", "--out", str(tmp_path / "p")]
    predict.main([str(tmp_path / "model.pt"), str(tmp_path / "x.npy"), *flags])
    assert [(k["tta"], k["zoom_out"]) for k in asked] == [(True, 2)]
    assert (tmp_path / "p" / "x_classes.png").is_file()


def test_predict_weights_each_map_by_its_own_class_shares_when_asked(tmp_path, monkeypatch):
    from lib.checkpoint import save_checkpoint

    save_checkpoint(tmp_path / "model.pt", UNet(3, weights=None), ["a", "b", "c"], None, 3, 64)
    np.save(tmp_path / "x.npy", np.random.default_rng(0).random((3, 70, 90)).astype(np.float32))
    seen = []
    real = predict.tile_prior
    monkeypatch.setattr(
        predict, "tile_prior", lambda scores, s: seen.append((scores, s)) or real(scores, s)
    )
    maps = {}
    for strength in ("0", "3"):
        out = tmp_path / strength
        flags = ["--tile-prior", strength, "--out", str(out)]
        predict.main([str(tmp_path / "model.pt"), str(tmp_path / "x.npy"), *flags])
        maps[strength] = np.array(Image.open(out / "x_classes.png"))
    assert [s for _, s in seen] == [0.0, 3.0]
    # no pixel leaves the class the map's own shares favour most; others may join it
    commonest = seen[1][0].softmax(0).mean((1, 2)).argmax().item()
    assert (maps["3"] == commonest).sum() >= (maps["0"] == commonest).sum()
