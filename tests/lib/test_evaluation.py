"""lib/evaluation.py: whole tiles through overlapping windows, test-time augmentation (the 8
orientations, the tile shrunk), and the scores of a split from one confusion matrix."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lib.crops import dihedral
from lib.evaluation import (
    confusion_matrix,
    evaluate,
    evaluate_views,
    final_scores,
    predict_tile,
    scores,
    shrink,
    tile_prior,
)
from unet import UNet


def test_confusion_matrix_and_scores_by_hand():
    target = torch.tensor([0, 0, 1, 1, 2, 255])
    prediction = torch.tensor([0, 1, 1, 1, 0, 2])  # the 255 pixel is not scored
    matrix = confusion_matrix(prediction, target, 3)
    assert matrix.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]
    s = scores(matrix, ["a", "b", "c"])
    assert s["per_class"]["a"] == dict(iou=1 / 3, precision=1 / 2, recall=1 / 2)
    assert s["per_class"]["b"]["iou"] == pytest.approx(2 / 3)
    assert s["per_class"]["c"] == dict(iou=0.0, precision=None, recall=0.0)
    assert s["miou"] == pytest.approx((1 / 3 + 2 / 3 + 0) / 3) and s[
        "pixel_accuracy"
    ] == pytest.approx(3 / 5)


def test_a_class_the_truth_lacks_counts_in_miou_but_not_in_the_epoch_choice():
    # no true "c"; one "a" pixel called "c": "a" loses it as a miss in both means, but only the
    # mIoU of every class adds c's IoU 0 (a third of the mean gone for one pixel)
    target, prediction = torch.tensor([0, 0, 1, 1]), torch.tensor([0, 2, 1, 1])
    s = scores(confusion_matrix(prediction, target, 3), ["a", "b", "c"])
    assert s["miou"] == pytest.approx((1 / 2 + 1 + 0) / 3)
    assert s["miou_in_truth"] == pytest.approx((1 / 2 + 1) / 2)
    s = scores(confusion_matrix(target, target, 3), ["a", "b", "c"])  # c nowhere: the same mean
    assert s["miou"] == s["miou_in_truth"] == 1.0


def test_metrics_come_from_one_matrix_over_the_split_not_a_mean_of_images():
    # image 1: 1 pixel, all wrong; image 2: 99 pixels, all right -> split accuracy 0.99, not 0.5
    m = confusion_matrix(torch.tensor([1]), torch.tensor([0]), 2) + confusion_matrix(
        torch.zeros(99, dtype=torch.long), torch.zeros(99, dtype=torch.long), 2
    )
    assert scores(m, ["a", "b"])["pixel_accuracy"] == pytest.approx(0.99)


def test_predict_tile_covers_any_tile_size_exactly():
    model = UNet(weights=None).eval()
    for h, w in [(64, 64), (50, 130), (97, 33)]:
        logits = predict_tile(model, torch.rand(3, h, w), window=64)
        assert logits.shape == (5, h, w) and torch.isfinite(logits).all()


@pytest.mark.parametrize("h, w", [(64, 64), (97, 130), (50, 33)])
def test_predict_tile_averages_the_overlapping_windows(h, w):
    rows, cols = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    model, window = WhereAmI(), 32
    logits = predict_tile(model, torch.stack([rows, cols]).float().numpy(), window, batch_size=3)
    expected, covers = torch.zeros(2, h, w), torch.zeros(h, w)
    for top, left in model.seen:  # by brute force: each pixel, the windows holding it
        expected[:, top : top + window, left : left + window] += torch.tensor(
            [top, left], dtype=torch.float32
        )[:, None, None]
        covers[top : top + window, left : left + window] += 1
    assert (covers >= 1).all() and covers.max() > 1  # every pixel covered, windows overlap
    assert torch.allclose(logits, expected / covers)


def test_bf16_evaluation_agrees_with_fp32():
    model = UNet(weights=None).eval().to(memory_format=torch.channels_last)
    image = torch.randint(0, 255, (3, 96, 160), dtype=torch.uint8).numpy()
    fp32, bf16 = (predict_tile(model, image, 64, precision=p) for p in ("fp32", "bf16"))
    assert bf16.dtype == torch.float32 and (fp32.argmax(0) == bf16.argmax(0)).float().mean() > 0.9


@pytest.mark.slow
def test_test_time_augmentation_answers_the_same_whichever_way_the_tile_faces():
    torch.manual_seed(0)
    model, tile = UNet(weights=None).eval(), torch.rand(3, 64, 64).numpy()
    with_tta = predict_tile(model, tile, 64, tta=True)
    without = predict_tile(model, tile, 64)
    for turn in range(1, 8):
        turned = dihedral(tile, turn).copy()
        assert torch.allclose(
            predict_tile(model, turned, 64, tta=True), dihedral(with_tta, turn), atol=1e-5
        )
        assert not torch.allclose(
            predict_tile(model, turned, 64), dihedral(without, turn), atol=1e-3
        )  # a plain net does not


def test_shrink_averages_each_block_and_the_cut_short_ones_over_their_own_pixels():
    image = np.arange(2 * 3 * 5, dtype=np.uint16).reshape(2, 3, 5)  # 3 x 5: the last blocks short
    small = shrink(image, 2)
    assert small.shape == (2, 2, 3) and small.dtype == np.float32
    assert small[0, 0, 0] == np.mean([0, 1, 5, 6]) and small[1, 0, 2] == np.mean([19, 24])
    assert small[0, 1, 2] == 14 and small[1, 1, 0] == np.mean([25, 26])  # the corner: one pixel


@pytest.mark.slow
@pytest.mark.parametrize("h, w", [(64, 64), (97, 45)])
def test_zoom_out_averages_the_logits_of_the_tile_and_of_the_tile_shrunk(h, w):
    torch.manual_seed(0)
    model, tile = UNet(weights=None).eval(), torch.rand(3, h, w).numpy()
    zoomed = predict_tile(model, tile, 64, tta=True, zoom_out=2)
    coarse = predict_tile(model, shrink(tile, 2), 64, tta=True)
    assert coarse.shape[-2:] == ((h + 1) // 2, (w + 1) // 2)
    upsampled = F.interpolate(coarse[None], (h, w), mode="bilinear", align_corners=False)[0]
    full = predict_tile(model, tile, 64, tta=True)
    assert zoomed.shape == (5, h, w) and torch.allclose(zoomed, (full + upsampled) / 2, atol=1e-5)
    assert not torch.allclose(zoomed, full, atol=1e-3)  # the shrunk tile's say counts


def test_the_shrunk_tile_is_part_of_the_test_time_augmentation_only(capsys):
    asked = []

    def score(split, views):
        asked.append((len(split[0]), views))
        return [dict(miou=0.5, miou_in_truth=0.5)] * len(views)

    final_scores(score, (["tile"] * 3, ["mask"] * 3), (["val"], ["mask"]), True, 2)
    # val with TTA (what the recipe was chosen on), then test seen both ways in one pass (the
    # forest's shares of a tile computed once)
    assert asked == [(1, [(True, 2, 0.0)]), (3, [(True, 2, 0.0), (False, 1, 0.0)])]
    # each pass says what it scores before it starts: minutes on big tiles
    lines = capsys.readouterr().out.splitlines()[:2]
    assert lines == [
        "scoring val: 1 tile, 8 orientations, and the tile shrunk 2x",
        "scoring test: 3 tiles, 8 orientations, and the tile shrunk 2x; as they are",
    ]
    asked.clear()
    final_scores(score, (["test"], ["m"]), (["val"], ["m"]), False, 2)
    assert asked == [(1, [(False, 1, 0.0)])]
    asked.clear()  # a warm round: val's pass would choose nothing, only be recorded
    _, extra = final_scores(score, (["t"], ["m"]), (["v"], ["m"]), True, 2, score_val=False)
    assert asked == [(1, [(True, 2, 0.0), (False, 1, 0.0)])] and "val_miou_tta" not in extra


@pytest.mark.parametrize("val_by_zoom, chosen", [({1: 0.6, 3: 0.5}, 1), ({1: 0.5, 3: 0.5}, 3)])
def test_zoom_on_val_sees_test_as_val_scored_higher(val_by_zoom, chosen, capsys):
    asked = []

    def score(split, views):
        asked.append((split[0][0], views))
        in_truth = [val_by_zoom[zoom] if split[0][0] == "val" else 0.1 for _, zoom, _ in views]
        return [dict(miou=v - 0.01, miou_in_truth=v) for v in in_truth]

    test, extra = final_scores(
        score, (["test"], ["m"]), (["val"], ["m"]), True, 3, zoom_on_val=True
    )
    assert asked == [
        ("val", [(True, 3, 0.0), (True, 1, 0.0)]),
        ("test", [(True, chosen, 0.0), (False, 1, 0.0)]),
    ]
    assert extra["tta_zoom_out_chosen"] == chosen and "tile_prior_chosen" not in extra
    assert extra["val_miou_tta"] == val_by_zoom[chosen] - 0.01  # the chosen view's, as recorded
    assert [v["miou_in_truth"] for v in extra["val_by_view"]] == [val_by_zoom[3], val_by_zoom[1]]
    assert "val chose: 8 orientations" in capsys.readouterr().out
    asked.clear()  # without a zoom to choose, val is scored once, as recorded
    _, extra = final_scores(score, (["test"], ["m"]), (["val"], ["m"]), True, 1, zoom_on_val=True)
    assert asked == [("val", [(True, 1, 0.0)]), ("test", [(True, 1, 0.0), (False, 1, 0.0)])]
    assert "val_by_view" not in extra


# a val map's scores as evaluation.scores gives them: what `vanished` reads (2 classes, both on it)
MAP_OF_TWO_CLASSES = dict(confusion_matrix=[[90, 10], [10, 90]], per_class=dict(Ground={}, Car={}))


def test_a_tile_prior_that_takes_a_class_off_vals_map_is_not_chosen(capsys):
    # DroneDeploy's case: val's truth lacks Car, the plain map calls 300 pixels Car; the prior
    # takes all of them and scores higher over the classes val holds. Val cannot see whether they
    # were false or true cars (test has cars), so the prior is left.
    plain = dict(miou=0.3, miou_in_truth=0.4, confusion_matrix=[[700, 300], [0, 0]])
    prior = dict(miou=0.5, miou_in_truth=0.5, confusion_matrix=[[1000, 0], [0, 0]])
    names = dict(per_class=dict(Ground={}, Car={}))

    def score(split, views):
        if split[0][0] == "test":
            return [dict(plain, **names)] * len(views)
        return [dict(prior if s else plain, **names) for _, _, s in views]

    _, extra = final_scores(score, (["test"], ["m"]), (["val"], ["m"]), False, 1, tile_prior=2.0)
    assert extra["tile_prior_chosen"] == 0.0
    assert extra["val_by_view"][0]["takes_off"] == ["Car"]
    assert "it takes Car off val's map" in capsys.readouterr().out
    # one class in a hundred kept is enough: what the prior leaves is still on the map
    prior["confusion_matrix"] = [[997, 3], [0, 0]]
    _, extra = final_scores(score, (["test"], ["m"]), (["val"], ["m"]), False, 1, tile_prior=2.0)
    assert extra["tile_prior_chosen"] == 2.0 and extra["val_by_view"][0]["takes_off"] == []


@pytest.mark.parametrize("tta", [True, False])
def test_val_chooses_the_tile_prior_or_none_with_the_view(tta, capsys):
    val_scores = {(3, 2.0): 0.50, (3, 0.0): 0.40, (1, 2.0): 0.45, (1, 0.0): 0.30}
    asked = []

    def score(split, views):
        asked.append((split[0][0], views))
        held = [val_scores[zoom, s] if split[0][0] == "val" else 0.1 for _, zoom, s in views]
        return [dict(miou=v, miou_in_truth=v, **MAP_OF_TWO_CLASSES) for v in held]

    _, extra = final_scores(
        score, (["test"], ["m"]), (["val"], ["m"]), tta, 3, zoom_on_val=True, tile_prior=2.0
    )
    if tta:  # four views of val from its one pass; test seen as the best of them
        assert asked[0] == ("val", [(True, 3, 2.0), (True, 3, 0.0), (True, 1, 2.0), (True, 1, 0.0)])
        assert asked[1] == ("test", [(True, 3, 2.0), (False, 1, 2.0)])
        assert extra["tta_zoom_out_chosen"] == 3 and extra["val_miou_tta"] == 0.50
    else:  # the zoom is test-time augmentation: only the tile prior to choose
        assert asked == [("val", [(False, 1, 2.0), (False, 1, 0.0)]), ("test", [(False, 1, 2.0)])]
        assert "val_miou_tta" not in extra and "tta_zoom_out_chosen" not in extra
    assert extra["tile_prior_chosen"] == 2.0
    assert "the tile prior 2" in capsys.readouterr().out
    asked.clear()  # val that scores higher without it: none
    val_scores = {key: 0.6 - key[1] / 10 for key in val_scores}
    _, extra = final_scores(score, (["t"], ["m"]), (["v"], ["m"]), tta, 1, tile_prior=2.0)
    assert extra["tile_prior_chosen"] == 0.0 and asked[-1][1][0] == (tta, 1, 0.0)
    asked.clear()  # a warm round: no val pass, its start's choice as given
    final_scores(score, (["t"], ["m"]), (["v"], ["m"]), tta, 1, tile_prior=2.0, score_val=False)
    assert [split for split, _ in asked] == ["t"] and asked[0][1][0] == (tta, 1, 2.0)


def test_the_tile_prior_pulls_a_tiles_unsure_pixels_to_its_commonest_class():
    logits = torch.zeros(3, 4, 4)
    logits[0] = 4.0  # fifteen pixels sure of class 0
    logits[:, 0, 0] = torch.tensor([0.0, 0.5, 0.0])  # one unsure, leaning to class 1
    assert tile_prior(logits, 0.0) is logits  # off: the scores as they are
    weighted = tile_prior(logits, 2.0)
    assert logits.argmax(0)[0, 0] == 1 and weighted.argmax(0)[0, 0] == 0
    assert (weighted.argmax(0)[1:] == 0).all()  # the sure pixels stay where they were
    p = logits.softmax(0)
    shares = p.mean((1, 2))
    expected = (p * shares[:, None, None] ** 2).log()  # p' ∝ p · q^S, up to a constant a pixel
    difference = weighted - expected
    assert torch.allclose(difference, difference[:1].expand_as(difference), atol=1e-5)


@pytest.mark.slow
def test_the_views_of_one_pass_are_those_of_a_pass_each():
    """evaluate_views shares a tile's full-size pass (and the forest's shares) between views: its
    scores are those of evaluate, one view at a time, and a tile prior those of its own pass."""
    torch.manual_seed(0)
    model = UNet(weights=None, num_classes=3).eval()
    images = [torch.rand(3, 70, 50).numpy(), torch.rand(3, 64, 64).numpy()]
    rng = np.random.default_rng(0)
    masks = [rng.integers(0, 3, image.shape[1:]) for image in images]
    views = [(True, 2, 0.0), (True, 1, 0.0), (False, 1, 0.0), (True, 2, 2.0), (False, 1, 1.0)]
    together = evaluate_views(model, (images, masks), list("abc"), 64, 8, "fp32", views)
    for (tta, zoom, strength), scored in zip(views, together):
        alone = evaluate_views(
            model, (images, masks), list("abc"), 64, 8, "fp32", [(tta, zoom, strength)]
        )[0]
        assert scored["confusion_matrix"] == alone["confusion_matrix"]
        if not strength:
            plain = evaluate(model, (images, masks), list("abc"), 64, 8, "fp32", tta, zoom)
            assert scored["confusion_matrix"] == plain["confusion_matrix"]


class WhereAmI(torch.nn.Module):
    """A stand-in model whose two logits are constant over each window: the window's top row and
    left column, read off an image whose bands are the row and column numbers. It notes every
    window it sees."""

    def __init__(self):
        super().__init__()
        self.stem = torch.nn.Sequential(torch.nn.Conv2d(2, 1, 1))
        self.seen = []

    def forward(self, windows):
        corners = windows[:, :, 0, 0]  # (n, 2): top, left
        self.seen += [tuple(int(v) for v in c) for c in corners]
        return corners[:, :, None, None].expand(-1, -1, *windows.shape[-2:]).contiguous()
