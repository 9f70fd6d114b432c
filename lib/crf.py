"""A regularised loss from the same clicks: pCE plus a local CRF energy of the soft prediction.

pCE constrains the clicked pixels and nothing else: between the clicks the network may draw its
boundaries anywhere, and with a few clicks per class it tends to let thin or small classes swell
into their neighbours. Tang et al. (ECCV 2018, "On Regularized Losses for Weakly-supervised CNN
Segmentation") add a CRF energy of the softmax to pCE, so that the unlabeled pixels also pay for
a labelling that ignores the image; Obukhov et al. (2019, "Gated CRF Loss for Weakly Supervised
Semantic Image Segmentation") evaluate that energy over a local window, in plain tensor code.
Written here from their equations:

    loss = pCE + λ · R
    R = Σ_i Σ_{j ∈ window(i)} k(i, j) · (1 − Σ_c p_ic p_jc) / (number of pairs)
    k(i, j) = exp(− |xy_i − xy_j|² / 2σ_xy²  −  |I_i − I_j|² / 2σ_band²)

p_i is the softmax at pixel i, so 1 − Σ_c p_ic p_jc is the probability that i and j get different
classes. I_i are pixel i's standardised band values (any number of bands) and xy_i its position
in input pixels. k is near 1 for close pixels of similar colour and near 0 across a colour edge,
so R charges for every label change inside a uniform region and almost nothing for one that
follows an edge: the prediction is pulled onto the image's edges, clicks or no clicks. R is
computed on the softmax and the image average-pooled by DOWNSAMPLE (a RADIUS window there spans
DOWNSAMPLE × RADIUS input pixels each way), which keeps its cost a fraction of the network's;
pixels outside the image never pair, and a pixel never pairs with itself.
"""

import torch
import torch.nn.functional as F

DOWNSAMPLE = 2  # R is evaluated at half the input resolution ...
RADIUS = 3  # ... over a 7 x 7 window there: pairs up to 6 input pixels apart. (An 11 x 11
# window cost 5x as much here, 1.5x the network's own training step.)


def crf_energy(logits, image, sigma_xy, sigma_band, radius=RADIUS, downsample=DOWNSAMPLE):
    """R for a batch: logits (N, C, H, W), image (N, B, H, W) standardised per band. A scalar in
    [0, 1], with gradients for the logits only (the image is data)."""
    dtype = torch.promote_types(logits.dtype, torch.float32)  # bf16 logits are scored in fp32
    probabilities = F.avg_pool2d(torch.softmax(logits.to(dtype), dim=1), downsample)
    bands = F.avg_pool2d(image.to(dtype), downsample)
    n, _, h, w = probabilities.shape
    size = 2 * radius + 1
    window = lambda x: F.unfold(x, size, padding=radius).view(n, x.shape[1], size * size, h * w)
    # the position term depends only on the offset j - i, one value per window slot
    offsets = (
        torch.arange(-radius, radius + 1, dtype=probabilities.dtype, device=logits.device)
        * downsample
    )
    position = torch.exp(
        -(offsets[:, None] ** 2 + offsets[None, :] ** 2).view(-1, 1) / (2 * sigma_xy**2)
    )
    pairs = window(torch.ones_like(probabilities[:, :1]))[:, 0]  # 0 where j falls off the image ...
    pairs[:, size * size // 2] = 0  # ... or is i itself
    colour = torch.exp(
        -((window(bands) - bands.view(n, -1, 1, h * w)) ** 2).sum(1) / (2 * sigma_band**2)
    )
    differ = 1 - (window(probabilities) * probabilities.view(n, -1, 1, h * w)).sum(1)
    return (position * colour * differ * pairs).sum() / pairs.sum()
