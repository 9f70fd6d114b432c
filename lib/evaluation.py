"""Inference and scoring: a tile of any size through the network, and the metrics of a split.

The network sees window x window crops (a multiple of 32). `predict_tile` covers a whole tile,
of any size, with overlapping windows and averages their logits where they overlap, so no pixel
is dropped or resized and no seam shows. With `tta` (test-time augmentation) each window is also
seen in the 7 other symmetries of the square (crops.dihedral), turned back and averaged: the
answer no longer depends on which way the tile happens to face, for 8x the inference. With
`zoom_out` K the tile is also seen shrunk K times (each K x K pixels averaged), so a window holds
K x K times the ground; those logits, upsampled, are averaged with the full-size ones (a roof
wider than a window is seen with its edges), for 1 + 1/K^2 the inference. With `tile_prior` S
each tile's map is weighted by the tile's own class shares, as the network sees them (below).
`evaluate` scores a split from one confusion matrix accumulated over all its pixels: mIoU, pixel
accuracy, per-class IoU / precision / recall, and the pixel accuracy of always answering the
commonest class, the floor a useful model clears. Validation, testing, predict.py and
reporting/page.py's figures all go through here.
"""

import time

import numpy as np
import torch
import torch.nn.functional as F

from lib import distributed
from lib.crops import dihedral, shrink, undo_dihedral
from lib.device import autocast, memory_format
from unet import DIVISOR


@torch.no_grad()
def predict_tile(model, image, window, batch_size=8, precision="fp32", tta=False, zoom_out=1):
    """Logits (C, H, W) for a whole tile of any size: overlapping window x window crops of the
    edge-padded tile, their logits averaged where they overlap, the padding cut off again. The
    tile stays in its stored dtype; only the windows in flight are float. With zoom_out K > 1,
    the mean of these logits and those of the tile shrunk K times, upsampled (bilinear)."""
    image = np.asarray(image)
    h, w = image.shape[-2:]
    if zoom_out > 1:
        logits = predict_tile(model, image, window, batch_size, precision, tta)
        coarse = predict_tile(model, shrink(image, zoom_out), window, batch_size, precision, tta)
        return blend_zoomed(logits, coarse)
    ph, pw = max(window, -(-h // DIVISOR) * DIVISOR), max(window, -(-w // DIVISOR) * DIVISOR)
    padded = np.pad(image, ((0, 0), (0, ph - h), (0, pw - w)), mode="edge")
    starts = lambda n: sorted(set(range(0, n - window + 1, window // 2)) | {n - window})
    corners = [(y, x) for y in starts(ph) for x in starts(pw)]
    # batches follow the model's layout
    device, layout = (next(model.parameters(), torch.empty(0)).device, memory_format(model))
    logits, counts = None, torch.zeros(1, ph, pw)
    for i in range(0, len(corners), batch_size):
        chunk = corners[i : i + batch_size]
        windows = np.stack([padded[:, y : y + window, x : x + window] for y, x in chunk]).astype(
            np.float32
        )
        windows = torch.from_numpy(windows).to(device, memory_format=layout)
        out = 0
        for turn in range(8) if tta else (0,):
            with autocast(device, precision):
                out = out + undo_dihedral(
                    model(dihedral(windows, turn).contiguous(memory_format=layout)).float(), turn
                )
        out = (out / (8 if tta else 1)).cpu()
        logits = torch.zeros(out.shape[1], ph, pw) if logits is None else logits
        for (y, x), o in zip(chunk, out):
            logits[:, y : y + window, x : x + window] += o
            counts[:, y : y + window, x : x + window] += 1
    return logits.div_(counts)[:, :h, :w]  # in place: on a big tile this is the largest array


def blend_zoomed(logits, coarse):
    """The mean of a tile's logits (C, H, W) and those of the tile shrunk (C, H/K, W/K),
    upsampled (bilinear); in place in `logits`, a class at a time: no second full-size copy."""
    h, w = logits.shape[-2:]
    for full, small in zip(logits, coarse[:, None, None]):
        full += F.interpolate(small, (h, w), mode="bilinear", align_corners=False)[0, 0]
    return logits.div_(2)


def evaluate(
    model, split, classes, window, batch_size=8, precision="fp32", tta=False, zoom_out=1, fuse=None
):
    """Scores over a whole split (images, dense masks) seen one way (`tta`, `zoom_out`), from one
    confusion matrix; pixels marked IGNORE (255) are not scored. fuse, if given, is a run's
    lib/forest.Fusion: the forest's shares fused into each tile's logits (--forest-weight)."""
    views = [(tta, zoom_out, 0.0)]
    return evaluate_views(model, split, classes, window, batch_size, precision, views, fuse)[0]


def evaluate_views(model, split, classes, window, batch_size, precision, views, fuse=None):
    """The scores of a split for each view of `views`, (tta, zoom_out, tile_prior) triples, from
    one pass over its tiles: a tile's full-size logits are computed once for the views that see it
    with the same tta (a shrunk view is blended into a copy of them), views that differ only in
    their tile prior share those logits, and with fuse the forest's shares of the tile are
    computed once for all views (the forest costs about half a network pass with TTA)."""
    images, dense_masks = split
    model.eval()
    matrices = [torch.zeros(len(classes), len(classes), dtype=torch.int64) for _ in views]
    seen_as = list(dict.fromkeys((tta, zoom_out) for tta, zoom_out, _ in views))
    # under torchrun: a share each
    for image, dense_mask in distributed.share(list(zip(images, dense_masks))):
        fused = fuse.of_tile(image) if fuse else None
        truth = torch.tensor(np.asarray(dense_mask))
        seen = dict(zip(seen_as, tile_views(model, image, window, batch_size, precision, seen_as)))
        for matrix, (tta, zoom_out, strength) in zip(matrices, views):
            logits = seen[tta, zoom_out]
            prediction = tile_prior(fused(logits) if fused else logits, strength).argmax(0)
            matrix += confusion_matrix(prediction.to(torch.uint8), truth, len(classes))
    # ... and the matrices summed
    return [scores(distributed.sum_over_processes(matrix), classes) for matrix in matrices]


def tile_views(model, image, window, batch_size, precision, views):
    """Yield a tile's logits for each (tta, zoom_out) of `views`, as predict_tile computes them,
    the full-size pass of each tta made once."""
    image = np.asarray(image)
    full = {}
    for tta, zoom_out in views:
        if tta not in full:
            full[tta] = predict_tile(model, image, window, batch_size, precision, tta)
        if zoom_out == 1:
            yield full[tta]
        else:
            small = shrink(image, zoom_out)
            coarse = predict_tile(model, small, window, batch_size, precision, tta)
            yield blend_zoomed(full[tta].clone(), coarse)


def tile_prior(scores, strength):
    """A tile's own prior (--tile-prior S): its class scores (C, H, W), logits or fused, turned
    into log-probabilities weighted by the tile's class shares as the map itself gives them,

        p'(c | x_i) ∝ p(c | x_i) · q(c)^S,   q(c) = mean over the tile's pixels i of p(c | x_i)

    so that on a tile that is mostly one class the unsure pixels go to that class (a crop cut
    around a field or a lake: GID-MTL's; docs/unclicked.md). S = 0: the scores as they are. On a
    tile of many classes it pulls towards the large ones, which is why a run's val chooses it
    (final_scores). q is summed a class at a time: no second full-size copy of the probabilities."""
    if not strength:
        return scores
    log_p = torch.log_softmax(scores.float(), 0)
    shares = torch.stack([plane.exp().mean() for plane in log_p])
    return log_p.add_(strength * shares.clamp_min(1e-6).log()[:, None, None])


def confusion_matrix(prediction, target, num_classes):
    """matrix[t, p] = number of pixels of true class t predicted as p; a target outside
    0..num_classes-1 (255: unknown) is not counted. int32 indices, no masked copies: on a
    16-megapixel tile this costs 64 MB, not half a gigabyte."""
    target, prediction = target.reshape(-1).to(torch.int32), prediction.reshape(-1).to(torch.int32)
    index = torch.where(
        (target >= 0) & (target < num_classes), target * num_classes + prediction, num_classes**2
    )
    return torch.bincount(index, minlength=num_classes**2 + 1)[:-1].reshape(
        num_classes, num_classes
    )


def scores(matrix, classes):
    """mIoU (mean over classes that occur in truth or prediction), pixel accuracy, per-class
    IoU / precision / recall. A ratio with nothing to count is None. The pixel accuracy of always
    answering the commonest true class is the floor any useful model must clear. miou_in_truth
    leaves out the classes the truth lacks, what train.py chooses its epoch by: on a split without
    a class (DroneDeploy's val has no Car), one pixel called that class would cost its mIoU a
    whole class's share, IoU 0, though that pixel is already counted as its true class's miss."""
    m = matrix.double()
    tp, truth, predicted = m.diag(), m.sum(1), m.sum(0)
    ratio = lambda a, b: [None if d == 0 else float(n / d) for n, d in zip(a, b)]
    iou, precision, recall = (
        ratio(tp, truth + predicted - tp),
        ratio(tp, predicted),
        ratio(tp, truth),
    )
    present = [v for v in iou if v is not None]
    in_truth = [v for v, t in zip(iou, truth) if t > 0]
    return dict(
        miou=float(np.mean(present)) if present else 0.0,
        miou_in_truth=float(np.mean(in_truth)) if in_truth else 0.0,
        pixel_accuracy=float(tp.sum() / m.sum()) if m.sum() else 0.0,
        commonest_class_accuracy=float(truth.max() / m.sum()) if m.sum() else 0.0,
        per_class={
            c: dict(iou=iou[k], precision=precision[k], recall=recall[k])
            for k, c in enumerate(classes)
        },
        confusion_matrix=matrix.tolist(),
    )


def final_scores(
    score,
    test,
    val,
    tta,
    zoom_out=1,
    show_test=True,
    zoom_on_val=False,
    tile_prior=0.0,
    score_val=True,
):
    """The tested weights scored by `score(split, views)` (a list of scores, one a (tta, zoom_out,
    tile_prior) view, from one pass over the split): the test split, and with tta also without it
    and val with it (what the choice of recipe was made on, docs/recipe.md). zoom_out is part of
    the test-time augmentation: only with tta. What val chooses, from one pass over it (over the
    classes val holds, as epochs are chosen): with zoom_on_val, the tile shrunk zoom_out times or
    as it is; with a tile_prior S, S or none, wherever val is scored. Test is then seen as val
    scored higher. Returns (test metrics, extra): extra holds those other scores, the choices
    and what each pass cost. show_test=False keeps test's mIoU off the screen (a scan that chooses
    on val); score_val=False: no val pass unless zoom_on_val asks for one (a warm round: minutes
    of its time; its view and tile prior are its start's)."""

    def timed(name, split, views):
        # a progress line a pass: on big tiles, 8 orientations take minutes on a CPU
        tiles = len(split[0])
        words = "; ".join(view_name(zoom, strength, tta) for tta, zoom, strength in views)
        print(f"scoring {name}: {tiles} tile{'s' * (tiles != 1)}, {words}", flush=True)
        start = time.time()
        return score(split, views), round(time.time() - start, 2)

    extra = dict(scoring_seconds={})
    zoom_out = zoom_out if tta else 1
    zooms = [zoom_out, 1] if zoom_on_val and zoom_out > 1 else [zoom_out]
    strengths = [tile_prior, 0.0] if tile_prior else [0.0]
    if len(val[0]) and (len(zooms) > 1 or (score_val and (tta or tile_prior))):
        views = [(tta, zoom, strength) for zoom in zooms for strength in strengths]
        seen, extra["scoring_seconds"]["val_tta"] = timed("val", val, views)
        zoom_out, tile_prior = chosen_on_val(views, seen, extra)
    # test as the run sees it and, with tta, as it is (one pass: the forest's shares once a tile)
    views = (
        [(True, zoom_out, tile_prior), (False, 1, tile_prior)] if tta else [(False, 1, tile_prior)]
    )
    seen, extra["scoring_seconds"]["test"] = timed("test", test, views)
    scored = seen[0]
    if tta:
        extra["test_without_tta"] = seen[1]
        if show_test:
            print(
                f"test-time augmentation ({view_name(zoom_out)}): test mIoU "
                f"{extra['test_without_tta']['miou']:.4f} -> {scored['miou']:.4f}",
                flush=True,
            )
    return scored, extra


def score_run(
    model, data, config, precision, fusion=None, tta=None, show_test=True, score_val=True
):
    """A run's weights scored as train.py's last step scores them: final_scores over the run's
    data with the view, tile prior and fused forest its config names (`tta` given: instead of the
    config's); the forest's fit among the scoring seconds. Returns (test metrics, extra)."""

    def score(split, views):
        window, batch_size = config["image_size"], config["batch_size"]
        classes = data["classes"]
        return evaluate_views(model, split, classes, window, batch_size, precision, views, fusion)

    test, extra = final_scores(
        score,
        data["test"],
        data["val"],
        config["tta"] if tta is None else tta,
        config["tta_zoom_out"],
        show_test=show_test,
        zoom_on_val=config["zoom_on_val"],
        tile_prior=config["tile_prior"],
        score_val=score_val,
    )
    if fusion:
        extra["scoring_seconds"]["forest_fit"] = fusion.fit_seconds
    return test, extra


# A tile prior may not take a class off val's map. It pulls each tile to its large classes, so a
# class that is small in every tile (DroneDeploy's cars, its few ponds) can go altogether; when
# val's truth lacks or barely holds that class, val's mIoU cannot show what that costs (its
# dropping out is even counted as a gain: no more false pixels of it). So a view whose prior
# leaves a class under this share of the pixels the same view gives it without the prior is not
# chosen, whatever it scores (docs/unclicked.md, "A tile's own prior").
VANISHING = 0.01


def vanished(with_prior, without):
    """The classes (names) the tile prior takes off val's map: under VANISHING of the pixels the
    same view without it predicts for them (a class it never predicted does not count)."""
    before = np.asarray(without["confusion_matrix"]).sum(0)
    after = np.asarray(with_prior["confusion_matrix"]).sum(0)
    names = list(with_prior["per_class"])
    return [c for c, b, a in zip(names, before, after) if b > 0 and a < VANISHING * b]


def chosen_on_val(views, seen, extra):
    """The (zoom_out, tile_prior) of the view of val that scored highest, over the classes val
    holds (a tie keeps the shrunk view, and the tile prior off), among the views whose tile prior
    takes no class off val's map (`vanished`, against the same view without it, which `views`
    holds too); the choice, and each view's val, noted in `extra`."""
    plain = {(tta, zoom): v for (tta, zoom, strength), v in zip(views, seen) if not strength}
    erased = [
        vanished(v, plain[tta, zoom]) if strength else []
        for (tta, zoom, strength), v in zip(views, seen)
    ]
    best = max(
        (k for k in range(len(views)) if not erased[k]),
        key=lambda k: (seen[k]["miou_in_truth"], views[k][1], -views[k][2]),
    )
    tta, zoom_out, tile_prior = views[best]
    for (view_tta, zoom, strength), classes in zip(views, erased):
        if classes:
            print(
                f"val left {view_name(zoom, strength, view_tta)}: it takes "
                f"{', '.join(classes)} off val's map",
                flush=True,
            )
    if len(views) > 1:
        print(f"val chose: {view_name(zoom_out, tile_prior, tta)}", flush=True)
        extra["val_by_view"] = [
            dict(zoom_out=z, tile_prior=s, miou=v["miou"], miou_in_truth=v["miou_in_truth"])
            | (dict(takes_off=classes) if s else {})
            for (_, z, s), v, classes in zip(views, seen, erased)
        ]
    if len({zoom for _, zoom, _ in views}) > 1:
        extra["tta_zoom_out_chosen"] = zoom_out
    if len({strength for _, _, strength in views}) > 1:
        extra["tile_prior_chosen"] = tile_prior
    if tta:
        extra["val_miou_tta"] = seen[best]["miou"]
    return zoom_out, tile_prior


def view_name(zoom_out, tile_prior=0.0, tta=True):
    """How the scoring sees a tile, in words."""
    words = "8 orientations" if tta else "as they are"
    words += f", and the tile shrunk {zoom_out}x" if zoom_out > 1 else ""
    return words + (f", the tile prior {tile_prior:g}" if tile_prior else "")


def print_table(test, classes, scored_on="masks"):
    """Per-class IoU, precision and recall, one line a class; scored on reference points, with the
    number of points of each class beside them (a class with 6 points has a wide margin), and
    precision and recall under their map-accuracy names, user's and producer's accuracy."""
    fmt = lambda v: "   -  " if v is None else f"{v:.4f}"
    points = scored_on != "masks"
    truth = np.asarray(test["confusion_matrix"]).sum(1)
    print(
        f"{'class':<12} {'IoU':>7} {'precision':>10} {'recall':>7}"
        + (f"   {scored_on}: user's = precision, producer's = recall" if points else "")
    )
    for k, c in enumerate(classes):
        s = test["per_class"][c]
        print(
            f"{c:<12} {fmt(s['iou']):>7} {fmt(s['precision']):>10} {fmt(s['recall']):>7}"
            + (
                f"   {truth[k]} {'points' if scored_on == 'reference points' else 'scored pixels'}"
                if points
                else ""
            )
        )
