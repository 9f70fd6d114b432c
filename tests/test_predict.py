"""predict.py: a file that is not a checkpoint is one line, not a traceback."""

import numpy as np
import pytest
import torch

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
