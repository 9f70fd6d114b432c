"""Partial Cross-Entropy (pCE): the loss that lets a network learn from a few clicked pixels.

A point-supervised image has a label on a handful of pixels and nothing elsewhere. pCE is the
ordinary per-pixel cross-entropy, averaged over the labeled pixels only. The report writes it as

    pCE = Σ_i CE(pred_i, gt_i)·MASK_i / Σ_i MASK_i

where MASK_i = 1 where pixel i is annotated and 0 elsewhere. Unlabeled pixels carry the label -1.

The function below writes that formula out term by term. It is equal, in value and gradient, to
`torch.nn.CrossEntropyLoss(ignore_index=-1)` (test_pce.py proves it); the explicit form is here so
the reader can see what "ignoring" pixels means, and so a batch with no labels at all gives 0
instead of the 0/0 = NaN the built-in returns.
"""

import torch
import torch.nn.functional as F

UNLABELED = -1


def partial_cross_entropy(logits, point_labels, class_weights=None):
    """pCE = Σ_i CE(pred_i, gt_i)·MASK_i / Σ_i MASK_i

    logits:       (N, C, H, W) float, raw scores (no softmax).
    point_labels: (N, H, W) int64, class index in [0, C) where a pixel was clicked, -1 elsewhere.
    class_weights: optional (C,) weights w, for class-balanced pCE: MASK_i becomes w_{gt_i}·MASK_i,
                  Σ_i w_{gt_i}·CE_i·MASK_i / Σ_i w_{gt_i}·MASK_i, so a class few clicks fall on
                  counts as much as a common one (= CrossEntropyLoss(weight=w, ignore_index=-1)).
    Returns a scalar. With no labeled pixel in the whole batch it returns 0, still attached to the
    graph, so `loss.backward()` works and every gradient is exactly zero.
    """
    _check_inputs(logits, point_labels)
    mask = (point_labels != UNLABELED).to(logits.dtype)  # MASK_i
    # CE needs a valid class index at every pixel; the -1s become class 0 and MASK_i zeroes them
    # out.
    safe_labels = point_labels.long().clamp(min=0)
    ce = F.cross_entropy(logits, safe_labels, reduction="none")  # CE(pred_i, gt_i)
    if class_weights is not None:
        mask = mask * class_weights.to(logits)[safe_labels]  # w_{gt_i}·MASK_i
    # clamp(min=1) only matters when Σ MASK_i = 0: then the numerator is 0 too and the loss is 0.
    return (ce * mask).sum() / mask.sum().clamp(min=1)


def _check_inputs(logits, point_labels):
    if logits.dim() != 4:
        raise ValueError(f"logits must be (N, C, H, W), got shape {tuple(logits.shape)}")
    n, c, h, w = logits.shape
    if tuple(point_labels.shape) != (n, h, w):
        raise ValueError(
            f"point_labels shape {tuple(point_labels.shape)} does not match logits "
            f"{tuple(logits.shape)}: expected (N, H, W) = {(n, h, w)}"
        )
    if (
        point_labels.dtype.is_floating_point
        or point_labels.dtype.is_complex
        or point_labels.dtype == torch.bool
    ):
        raise ValueError(
            f"point_labels must be an integer tensor (int64), got {point_labels.dtype}"
        )
    if point_labels.numel():
        low, high = int(point_labels.min()), int(point_labels.max())
        if low < UNLABELED or high >= c:
            raise ValueError(
                f"point_labels must be -1 (unlabeled) or a class index in [0, {c - 1}], got values "
                f"in [{low}, {high}]"
            )
