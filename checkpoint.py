"""The checkpoint train.py writes (<out>/model.pt) and predict.py and report.py read back.

It holds the weights (with the training tiles' per-band mean/std, buffers of the model), the
class names and their legend colours, the band count, the window size the network was trained
on, and the encoder init that was used: everything needed to segment new tiles the same way.
"""
from pathlib import Path

import torch

from cli import atomic
from unet import UNet


def save_checkpoint(path, model, classes, colours, bands, image_size):
    with atomic(path) as tmp:
        torch.save(dict(state_dict=model.state_dict(), classes=list(classes), colours=colours, bands=bands,
                        image_size=image_size, encoder_init=model.encoder_init), tmp)


def load_checkpoint(path):
    """(model in eval mode, the checkpoint dict); ValueError in one line if `path` is not one."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"checkpoint not found: {path}")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        state, classes, bands = checkpoint["state_dict"], checkpoint["classes"], checkpoint["bands"]
    except Exception as error:
        reason = (str(error).strip().splitlines() or [""])[0].split(". ")[0]     # torch's first sentence
        raise ValueError(f"{path}: not a train.py checkpoint ({type(error).__name__}: {reason})") from None
    if state["head.weight"].shape[0] != len(classes) or state["stem.0.weight"].shape[1] != bands:
        raise ValueError(f"{path}: its weights are for {state['head.weight'].shape[0]} classes and "
                         f"{state['stem.0.weight'].shape[1]} bands, but it declares {len(classes)} classes "
                         f"and {bands} bands")
    model = UNet(len(classes), weights=None, in_channels=bands, mean=[0.0] * bands, std=[1.0] * bands)
    model.load_state_dict(state)                  # brings the training data's mean/std with it
    return model.eval(), checkpoint
