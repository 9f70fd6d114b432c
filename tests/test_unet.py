"""unet.py: shapes, size, normalisation, and every way the encoder weights can (not) be found."""

import urllib.error

import numpy as np
import pytest
import torch
import torchvision

from lib.checkpoint import load_checkpoint, save_checkpoint
from unet import IMAGENET_MEAN, UNet, adapt_first_conv, band_statistics

SMP_UNET_RESNET34_PARAMS = 24_436_369  # segmentation_models_pytorch Unet("resnet34", classes=5)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)  # the same init whichever tests ran before (the checks below read logits)
    return UNet(num_classes=5, weights=None).eval()


def test_raw_logits_at_input_resolution(model):
    x = torch.rand(2, 3, 64, 96)
    with torch.no_grad():
        y = model(x)
    assert y.shape == (2, 5, 64, 96)
    # no final activation
    assert (y < 0).any() and not torch.allclose(y.softmax(1).sum(1), y.sum(1))


def test_parameter_count_matches_smp_unet_within_two_percent(model):
    n = sum(p.numel() for p in model.parameters())
    assert abs(n - SMP_UNET_RESNET34_PARAMS) / SMP_UNET_RESNET34_PARAMS < 0.02, n


@pytest.mark.parametrize(
    "shape, message",
    [
        ((1, 3, 100, 64), "multiples of 32, got 100x64"),
        ((1, 3, 64, 48), "multiples of 32, got 64x48"),
        ((1, 4, 64, 64), r"expected images \(N, 3, H, W\)"),
    ],
)
def test_bad_input_shapes(model, shape, message):
    with pytest.raises(ValueError, match=message):
        model(torch.rand(*shape))


def test_normalisation_defaults_to_imagenet_and_travels_in_the_state_dict(model):
    assert torch.allclose(model.mean.flatten(), torch.tensor(IMAGENET_MEAN))
    assert "mean" in model.state_dict() and "std" in model.state_dict()
    custom = UNet(weights=None, in_channels=4, mean=[1, 2, 3, 4], std=[1, 1, 1, 2])
    assert custom.std.flatten().tolist() == [1, 1, 1, 2]
    with pytest.raises(ValueError, match="one mean and one std per input band"):
        UNet(weights=None, in_channels=4)


def test_local_weights_file_is_loaded(tmp_path):
    reference = torchvision.models.resnet34(weights=None)
    path = tmp_path / "resnet34.pth"
    torch.save(reference.state_dict(), path)
    model = UNet(weights=str(path))
    assert model.encoder_init == f"file:{path}"
    assert torch.equal(model.layers[-1][0].conv1.weight, reference.layer4[0].conv1.weight)


def test_missing_or_wrong_weights_file(tmp_path):
    with pytest.raises(ValueError, match="weights file not found: /no/such.pth"):
        UNet(weights="/no/such.pth")
    torch.save({"not": torch.zeros(1)}, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match="not a torchvision resnet34 state dict"):
        UNet(weights=str(tmp_path / "bad.pth"))


def test_imagenet_offline_falls_back_to_random_init_with_one_line(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # an empty hub cache ...

    def offline(*args, **kwargs):  # ... and no network, even where there is one
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torchvision.models._api, "load_state_dict_from_url", offline)
    model = UNet(weights="imagenet")
    assert model.encoder_init == "random"
    lines = capsys.readouterr().out.strip().splitlines()
    assert (
        len(lines) == 1
        and "ImageNet weights unavailable" in lines[0]
        and "--weights PATH" in lines[0]
    )


def test_imagenet_weights_come_from_the_torch_hub_cache(monkeypatch, tmp_path):
    """The real torchvision code path: a copy in $TORCH_HOME/hub/checkpoints is used without
    network."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    cached = torchvision.models.resnet34(weights=None)
    checkpoints = tmp_path / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    torch.save(cached.state_dict(), checkpoints / "resnet34-b627a593.pth")
    model = UNet(weights="imagenet")
    assert model.encoder_init == "imagenet"
    assert torch.equal(model.stem[0].weight, cached.conv1.weight)


def test_first_conv_adapts_to_other_band_counts():
    conv = torchvision.models.resnet34(weights=None).conv1
    four = adapt_first_conv(conv, 4)
    assert torch.equal(four.weight[:, :3], conv.weight)
    assert torch.allclose(four.weight[:, 3], conv.weight.mean(1))
    grey = adapt_first_conv(conv, 1)
    x = torch.rand(1, 1, 32, 32)
    # grey image, same response
    assert torch.allclose(grey(x), conv(x.repeat(1, 3, 1, 1)), atol=1e-5)
    model = UNet(weights=None, in_channels=4, mean=[0.5] * 4, std=[0.2] * 4).eval()
    assert model(torch.rand(1, 4, 32, 32)).shape == (1, 5, 32, 32)


def test_the_network_sees_the_image_standardised_with_its_own_statistics():
    # the same weights with mean 0 / std 1, fed the standardised image, answer exactly the same
    torch.manual_seed(0)
    mean, std = [100.0, 50.0, 10.0], [20.0, 5.0, 2.0]
    model = UNet(3, weights=None, mean=mean, std=std).eval()
    plain = UNet(3, weights=None, mean=[0.0] * 3, std=[1.0] * 3).eval()
    weights = {k: v for k, v in model.state_dict().items() if k not in ("mean", "std")}
    plain.load_state_dict(weights, strict=False)
    image = torch.rand(1, 3, 32, 32) * 200
    standardised = (image - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(
        1, 3, 1, 1
    )
    with torch.no_grad():
        assert torch.allclose(model(image), plain(standardised), atol=1e-5)
        assert not torch.allclose(model(image), plain(image), atol=1e-2)


def test_a_window_standardised_on_its_own_looks_past_a_scene_brightness_and_contrast(tmp_path):
    # --standardise window: each band of a window brightened and stretched (its std staying above
    # the floor) gives the same logits; with the set's statistics alone it does not. A window
    # flatter than the floor is not stretched to unit std. The checkpoint keeps the setting.
    torch.manual_seed(0)
    image = torch.rand(2, 3, 64, 64) * 40 + 100
    gain, offset = torch.tensor([1.5, 0.8, 1.2]), torch.tensor([30.0, -20.0, 5.0])
    other_scene = image * gain.view(1, 3, 1, 1) + offset.view(1, 3, 1, 1)
    statistics = dict(mean=[110.0] * 3, std=[20.0] * 3)
    for by in ("window", "set"):
        model = UNet(3, weights=None, **statistics, standardise_by=by).eval()
        with torch.no_grad():
            same = torch.allclose(model(image), model(other_scene), atol=1e-4)
        assert same == (by == "window")
        save_checkpoint(tmp_path / "m.pt", model, ["a", "b", "c"], ["#000"] * 3, 3, 64)
        assert load_checkpoint(tmp_path / "m.pt")[0].standardise_by == by
    flat = 110 + torch.randn(1, 3, 64, 64) * 20 * 0.02  # 0.02 of the set's std
    seen = UNet(3, weights=None, **statistics, standardise_by="window").standardise(flat)
    assert torch.allclose(seen.std(dim=(2, 3)), torch.full((1, 3), 0.2), rtol=0.05)


def test_the_logits_at_a_pixel_depend_most_on_the_image_around_it():
    # the decoder puts each skip back where its features came from: the gradient of a corner's
    # logits is largest in that corner of the image, not in the mirrored one
    torch.manual_seed(0)
    model = UNet(3, weights=None).eval()
    image = torch.rand(1, 3, 64, 64, requires_grad=True)
    model(image)[..., 4:12, 4:12].sum().backward()
    weight = image.grad.abs().sum((0, 1))
    assert weight[:16, :16].sum() > 5 * weight[:16, -16:].sum()
    assert weight[:16, :16].sum() > 5 * weight[-16:, :16].sum()


def test_the_image_skip_feeds_each_pixel_to_the_full_resolution_block(tmp_path):
    # with the encoder cut off from the gradient, what reaches the image comes through the skip:
    # the last block's two 3x3 convs and the 3x3 head, so within 3 px of the pixel, at full
    # resolution; without the skip, nothing. The checkpoint brings the skip back (it is read from
    # the weights' shapes).
    torch.manual_seed(0)
    image = torch.rand(1, 3, 64, 64)
    for image_skip in (True, False):
        model = UNet(3, weights=None, image_skip=image_skip).eval()
        save_checkpoint(tmp_path / "m.pt", model, ["a", "b", "c"], ["#000"] * 3, 3, 64)
        assert load_checkpoint(tmp_path / "m.pt")[0].image_skip == image_skip
        model.stem.insert(0, Detached())
        pixel = image.clone().requires_grad_()
        model(pixel)[0, :, 20, 21].abs().sum().backward()
        if not image_skip:
            assert pixel.grad is None
            continue
        reached = pixel.grad.abs().sum((0, 1)) > 0
        assert reached[20, 21] and reached[17:24, 18:25].sum() == reached.sum() > 9


class Detached(torch.nn.Module):
    def forward(self, x):
        return x.detach()


def test_band_statistics_tile_by_tile_equal_the_whole_split():
    rng = np.random.default_rng(0)
    tiles = [
        rng.integers(0, 4000, (4, h, w)).astype(np.uint16) for h, w in ((30, 70), (128, 9), (5, 5))
    ]
    every_pixel_of_the_split = np.concatenate([t.reshape(4, -1) for t in tiles], axis=1).astype(
        np.float64
    )
    mean, std = band_statistics(tiles)
    assert np.allclose(mean, every_pixel_of_the_split.mean(1), rtol=1e-12)
    assert np.allclose(std, every_pixel_of_the_split.std(1), rtol=1e-12)
