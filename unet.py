"""U-Net with a torchvision ResNet34 encoder: image (N, B, H, W) -> raw logits (N, C, H, W).

The encoder is torchvision's resnet34 cut into its five stages; the decoder is written out here
and follows segmentation_models_pytorch's Unet: five blocks of
    upsample x2 -> concat the encoder skip at that size -> 2 x (3x3 conv, BN, ReLU)
with 256/128/64/32/16 channels, then a 3x3 conv head to one logit per class. No final
activation: the loss (pce.py) takes raw logits. ~24.4 M parameters, like smp's Unet("resnet34").
The last block has no encoder skip: the encoder's finest map is at H/2, from one 7x7 stride-2 conv.
`image_skip=True` (train.py --image-skip) gives it the standardised image itself, so that the
full-resolution layers see every pixel's own values, as a pixel classifier does: a road 2 px wide
can then be drawn from its pixels, not only from features upsampled from H/2.

Input normalisation happens in exactly one place, the first line of `UNet.forward`:
(x - mean) / std per band, with mean/std kept as buffers so they travel inside every checkpoint.
The default is ImageNet's RGB mean/std, the statistics the pretrained encoder was trained with,
for images scaled to [0, 1]. train.py passes the per-band mean/std of the training images instead
(`band_statistics`), one rule for the synthetic scenes and for tiles of any bands and scale.
`standardise_by="window"` (train.py --standardise window) then standardises each window (a
training crop, a window of a tile at test) by its own per-band mean and std as well, so that a
scene brighter or of more contrast than the training scenes looks to the network as they did; a
window flatter than a tenth of the training tiles' std is not stretched beyond that (water stays
flat).
"""

import contextlib
import io
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from torchvision.models import ResNet34_Weights

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DECODER_CHANNELS = (256, 128, 64, 32, 16)
ENCODER_CHANNELS = (64, 64, 128, 256, 512)  # stem (H/2), layer1 (H/4) ... layer4 (H/32)
DIVISOR = 32  # five stride-2 stages
WINDOW_STD_FLOOR = 0.1  # --standardise window: no window stretched more than 10x


def conv_bn_relu(in_channels, out_channels):
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class DecoderBlock(nn.Module):
    """upsample x2 -> concat skip -> 2 x (conv-bn-relu)"""

    def __init__(self, in_channels, skip_channels, out_channels):
        super().__init__()
        self.conv1 = conv_bn_relu(in_channels + skip_channels, out_channels)
        self.conv2 = conv_bn_relu(out_channels, out_channels)

    def forward(self, x, skip=None):
        x = F.interpolate(x, scale_factor=2, mode="nearest")
        if skip is not None:
            x = torch.cat([x, skip], dim=1)
        return self.conv2(self.conv1(x))


class UNet(nn.Module):
    def __init__(
        self,
        num_classes=5,
        weights="imagenet",
        in_channels=3,
        mean=None,
        std=None,
        image_skip=False,
        standardise_by="set",
    ):
        super().__init__()
        resnet, self.encoder_init = build_resnet34(weights)
        if in_channels != 3:
            resnet.conv1 = adapt_first_conv(resnet.conv1, in_channels)
        self.stem = nn.Sequential(resnet.conv1, resnet.bn1, resnet.relu)  # H/2
        self.layers = nn.ModuleList(
            [
                nn.Sequential(resnet.maxpool, resnet.layer1),  # H/4
                resnet.layer2,
                resnet.layer3,
                resnet.layer4,
            ]
        )  # H/8 .. H/32
        # the deepest feature map is upsampled through the decoder, picking up the skips on the way
        skips = ENCODER_CHANNELS[-2::-1] + (in_channels if image_skip else 0,)  # 256 .. 64, image
        self.image_skip = image_skip
        self.standardise_by = standardise_by  # "set" or "window"
        ins = (ENCODER_CHANNELS[-1],) + DECODER_CHANNELS[:-1]
        self.decoder = nn.ModuleList(
            [DecoderBlock(i, s, o) for i, s, o in zip(ins, skips, DECODER_CHANNELS)]
        )
        self.head = nn.Conv2d(DECODER_CHANNELS[-1], num_classes, 3, padding=1)
        mean = IMAGENET_MEAN if mean is None else mean
        std = IMAGENET_STD if std is None else std
        if not len(mean) == len(std) == in_channels:
            raise ValueError(
                f"need one mean and one std per input band ({in_channels}), got {len(mean)} means "
                f"and {len(std)} stds"
            )
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def standardise(self, x):
        """Per band, (x - mean) / std with the training images' statistics (and by "window",
        then with each window's own): what the network sees."""
        x = (x - self.mean) / self.std
        if self.standardise_by == "window":
            spread = x.std(dim=(2, 3), keepdim=True).clamp_min(WINDOW_STD_FLOOR)
            x = (x - x.mean(dim=(2, 3), keepdim=True)) / spread
        return x

    def forward(self, x):
        if x.dim() != 4 or x.shape[1] != self.mean.shape[1]:
            raise ValueError(
                f"expected images (N, {self.mean.shape[1]}, H, W), got shape {tuple(x.shape)}"
            )
        if x.shape[-2] % DIVISOR or x.shape[-1] % DIVISOR:
            raise ValueError(
                f"image height and width must be multiples of {DIVISOR}, got "
                f"{x.shape[-2]}x{x.shape[-1]}"
            )
        image = self.standardise(x)
        features = [self.stem(image)]
        for layer in self.layers:
            features.append(layer(features[-1]))
        x, skips = features[-1], features[-2::-1] + [image if self.image_skip else None]
        for block, skip in zip(self.decoder, skips):
            x = block(x, skip)
        return self.head(x)


def build_resnet34(weights):
    """torchvision resnet34 and the init actually used: 'imagenet', 'random' or 'file:<path>'.

    weights: "imagenet" (torchvision's ResNet34_Weights.IMAGENET1K_V1, read from the torch hub cache
    under $TORCH_HOME, downloaded if missing), a path to a torchvision resnet34 state dict, or
    None / "none". Offline without a cached copy, ImageNet weights fall back to random init with
    one line saying so; the caller records `encoder_init`, never the request.
    """
    resnet = torchvision.models.resnet34(weights=None)
    if weights is None or str(weights).lower() == "none":
        return resnet, "random"
    if weights == "imagenet":
        # torch hub announces its download attempt on stdout; our own line below says what happened
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                state = ResNet34_Weights.IMAGENET1K_V1.get_state_dict(progress=False)
        # offline: URLError, socket errors, ...; any reason means "not here"
        except Exception as error:
            cache = (
                Path(torch.hub.get_dir())
                / "checkpoints"
                / Path(ResNet34_Weights.IMAGENET1K_V1.url).name
            )
            print(
                f"ImageNet weights unavailable ({type(error).__name__}); continuing from random "
                f"init. To use them offline, copy {Path(cache).name} to {cache} or pass --weights "
                f"PATH.",
                flush=True,
            )
            return resnet, "random"
        resnet.load_state_dict(state)
        return resnet, "imagenet"
    path = check_weights(weights)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        # the classifier is unused
        state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    except Exception as error:  # not a torch file, truncated, or not a dict of tensors
        raise ValueError(
            f"{weights} is not a torchvision resnet34 state dict "
            f"({type(error).__name__} from torch.load)"
        ) from None
    missing, unexpected = resnet.load_state_dict(state, strict=False)
    if unexpected or [k for k in missing if not k.startswith("fc.")]:
        raise ValueError(
            f"{weights} is not a torchvision resnet34 state dict (missing {len(missing)} keys, "
            f"unexpected {len(unexpected)})"
        )
    return resnet, f"file:{path}"


def check_weights(weights):
    """The path of a weights file, or None for 'imagenet' / 'none'; a missing file is one line."""
    if weights is None or str(weights).lower() in ("imagenet", "none"):
        return None
    if not Path(weights).is_file():
        raise ValueError(
            f"weights file not found: {weights} (use imagenet, none or the path of a torchvision "
            f"resnet34 state dict)"
        )
    return Path(weights)


def adapt_first_conv(conv, in_channels):
    """The usual way to feed B != 3 bands to an RGB-pretrained conv: keep the RGB filters, start
    every extra band from their mean; with fewer than 3 bands every band gets the mean, scaled so
    a grey input gives the same response as before."""
    rgb = conv.weight.detach()
    mean = rgb.mean(dim=1, keepdim=True)
    if in_channels > 3:
        weight = torch.cat([rgb, mean.repeat(1, in_channels - 3, 1, 1)], dim=1)
    else:
        weight = mean.repeat(1, in_channels, 1, 1) * (3 / in_channels)
    new = nn.Conv2d(
        in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding, bias=False
    )
    new.weight.data.copy_(weight)
    return new


def band_statistics(images):
    """Per-band mean and std over every pixel of the training images, the normalisation the model
    applies (unet.py). Synthetic scenes and tile folders both go through here, so a folder
    exported from the generator trains to exactly the built-in numbers. Two passes over the
    tiles, one band of one tile at a time in float64: no copy of the whole split is ever made."""
    images = [np.asarray(image) for image in images]
    count = sum(image[0].size for image in images)
    mean = sum(np.array([band.sum(dtype=np.float64) for band in image]) for image in images) / count
    squares = sum(
        np.array([np.square(band - m, dtype=np.float64).sum() for band, m in zip(image, mean)])
        for image in images
    )
    return mean.tolist(), np.maximum(np.sqrt(squares / count), 1e-6).tolist()
