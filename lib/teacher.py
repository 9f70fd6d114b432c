"""Learning from the unclicked pixels: a mean teacher, its confident pixels, and region growing.

Ten clicks per class label about 0.03 % of the pixels; pCE learns from those alone. The pixels in
between are unlabelled, not unknown: a model that has learnt a little already says what most of
them are. This chapter turns that into training targets, three ways, each a train.py flag:

  --ema          the mean teacher (Tarvainen & Valpola 2017): an exponential moving average of the
                 student's weights, θ' ← d·θ' + (1 - d)·θ after every step. It does not swing
                 from step to step, so it is what is validated, tested and saved. Its decay warms
                 up (MeanTeacher.current_decay): early in a short run the average must not lag
                 a student that is still improving fast.
  --consistency  FixMatch-style targets (Sohn et al. 2020): the teacher looks at the batch in
                 another orientation; where it is sure (max softmax ≥ --confidence) its class,
                 turned back, becomes a label for the student, weighted by --consistency and
                 ramped up over the first third of the run. The student learns them on a
                 strong view of the batch: CutMix (French et al. 2020: a box of another image of
                 the batch pasted in, its labels with it) and a brightness/contrast jitter, so
                 agreeing with the teacher is not a copy of what the student already says.
                 --sure-per-class N keeps at most N of its sure pixels per class and crop: most of
                 a crop is its commonest class, and targets in those shares would teach the
                 student the pixels' prior, which the clicks, ten per class, keep balanced.
  --grow         region growing from the clicks (CRGNet, Xu & Ghamisi 2022): a click's class
                 spreads to the 4-connected pixels that the teacher, sure, gives the same class.
                 A grown label never crosses into pixels of another class, and a click always keeps
                 its own label.

The unclicked pixels also tell the classes' shares, which the clicks do not: lib/prior.py.

Targets never overwrite a click: where a pixel is clicked, the click is its label (pCE on it
already). The teacher's targets are point labels like any other (-1 where it says nothing), so
recipe.train_step trains on them with the same pCE.
"""

import copy
import math

import torch

from lib.crops import dihedral, undo_dihedral
from lib.device import autocast, memory_format
from pce import UNLABELED


class MeanTeacher:
    """An exponential moving average of a model's weights and buffers (batch-norm statistics)."""

    def __init__(self, model, decay=0.99):
        self.model = copy.deepcopy(getattr(model, "module", model)).eval()
        self.model.requires_grad_(False)
        self.decay, self.steps = decay, 0

    def current_decay(self):
        """d_t = min(d, (1 + t) / (10 + t)): 0.1 at the first step, d after a few hundred."""
        return min(self.decay, (1 + self.steps) / (10 + self.steps))

    @torch.no_grad()
    def update(self, model):
        """θ' ← d_t·θ' + (1 - d_t)·θ for every float parameter and buffer; integer buffers (batch
        counts) are copied."""
        decay = self.current_decay()
        student = getattr(model, "module", model).state_dict()
        for name, value in self.model.state_dict().items():
            if value.dtype.is_floating_point:
                value.mul_(decay).add_(student[name].detach(), alpha=1 - decay)
            else:
                value.copy_(student[name])
        self.steps += 1

    def state_dict(self):
        return dict(model=self.model.state_dict(), steps=self.steps)

    def load_state_dict(self, state):
        self.model.load_state_dict(state["model"])
        self.steps = state["steps"]


def ramp_up(step, total_steps, share=1 / 3):
    """exp(-5 (1 - t)²), t the share of the ramp done (Laine & Aila 2017): from ~0 to 1 over the
    first `share` of the run, then 1."""
    t = min(1.0, step / max(1.0, share * total_steps))
    return math.exp(-5 * (1 - t) ** 2)


@torch.no_grad()
def teacher_view(teacher, images, precision):
    """The teacher's class probabilities (N, C, H, W) for `images`, computed on another
    orientation of the batch (one of the 7 non-identity turns, drawn from torch's global generator,
    which train.py seeds) and turned back."""
    turn = int(torch.randint(1, 8, ()))
    device = next(teacher.parameters()).device
    layout = memory_format(teacher)
    turned = dihedral(images.to(device), turn).contiguous(memory_format=layout)
    with autocast(device, precision):
        logits = teacher(turned)
    return undo_dihedral(logits.float().softmax(1), turn)


def confident_labels(probabilities, point_labels, confidence, per_class=0):
    """Consistency targets: the teacher's class where its probability ≥ `confidence`, -1 elsewhere
    and on every clicked pixel (the click is that pixel's label). With `per_class` > 0, at most
    that many of them per class and image, drawn at random (torch's global generator): the
    targets then come in about equal numbers per class, as the clicks do, and do not teach the
    student the pixels' class shares, which --prior-shift puts in after training."""
    sure, classes = probabilities.max(1)
    labels = torch.where(sure >= confidence, classes, UNLABELED)
    labels = torch.where(point_labels.to(labels.device) != UNLABELED, UNLABELED, labels)
    if per_class:
        order = torch.rand(labels.shape).to(labels.device)  # a random rank within each class
        for image_labels, image_order in zip(labels, order):  # views: writes go into `labels`
            for c in image_labels.unique().tolist():
                of_c = image_labels == c
                if c != UNLABELED and int(of_c.sum()) > per_class:
                    cut = image_order[of_c].kthvalue(per_class).values
                    image_labels[of_c & (image_order > cut)] = UNLABELED
    return labels


def grow_regions(probabilities, point_labels, confidence, steps=None):
    """Region growing: each click's class spreads, one 4-connected pixel per round, over the pixels
    the teacher gives that class with probability ≥ `confidence`, until nothing changes (or
    `steps` rounds). Returns the grown labels (-1 elsewhere) without the clicks themselves.

    A pixel joins class c only if the teacher says c there, so regions of two classes never meet
    on a pixel, and a clicked pixel keeps its click's label."""
    point_labels = point_labels.to(probabilities.device)
    sure, classes = probabilities.max(1)
    allowed = (sure >= confidence) & (point_labels == UNLABELED)
    grown = point_labels.clone()
    for _ in range(steps or sum(grown.shape[-2:])):
        # a pixel's 4-neighbours' labels; an allowed, unlabelled pixel takes the one that matches
        # the teacher's class there
        padded = torch.nn.functional.pad(grown, (1, 1, 1, 1), value=UNLABELED)
        neighbours = torch.stack(
            [
                padded[:, :-2, 1:-1],
                padded[:, 2:, 1:-1],
                padded[:, 1:-1, :-2],
                padded[:, 1:-1, 2:],
            ]
        )
        joins = allowed & (grown == UNLABELED) & (neighbours == classes).any(0)
        if not joins.any():
            break
        grown = torch.where(joins, classes, grown)
    return torch.where(point_labels != UNLABELED, UNLABELED, grown)


def strong_view(images, point_labels, extras):
    """The student's strong view of a batch (N, bands, H, W): each image gets a box (a quarter to
    half of its area) of another image of the batch, every label map going with its pixels, then
    its bands stretched about their mean by a contrast and scaled by a brightness in [0.8, 1.2].
    Returns the images, point labels and (target_labels, weight) extras of that view. Drawn from
    torch's global generator, which train.py seeds."""
    n, _, h, w = images.shape
    partner = torch.randperm(n)
    box = torch.zeros(n, h, w, dtype=torch.bool)
    for i in range(n):
        side = math.sqrt(float(torch.empty(()).uniform_(0.25, 0.5)))
        bh, bw = max(1, int(h * side)), max(1, int(w * side))
        y, x = int(torch.randint(0, h - bh + 1, ())), int(torch.randint(0, w - bw + 1, ()))
        box[i, y : y + bh, x : x + bw] = True

    def mix(labels):
        labels = labels.to(box.device)
        return torch.where(box, labels[partner], labels)

    images = torch.where(box[:, None], images[partner], images.float())
    mean = images.mean((2, 3), keepdim=True)
    contrast, brightness = torch.empty(2, n, 1, 1, 1).uniform_(0.8, 1.2)
    images = (mean + (images - mean) * contrast) * brightness
    return images, mix(point_labels), [(mix(labels), weight) for labels, weight in extras]


def unlabelled_targets(teacher, images, point_labels, precision, config, ramp):
    """The (target_labels, weight) pairs recipe.train_step adds for a batch: the teacher's sure
    pixels (--consistency) and the grown clicks (--grow), both weighted by `ramp`."""
    probabilities = teacher_view(teacher.model, images, precision)
    extras = []
    if config["consistency"]:
        labels = confident_labels(
            probabilities, point_labels, config["confidence"], config["sure_per_class"]
        )
        extras.append((labels, config["consistency"] * ramp))
    if config["grow"]:
        extras.append((grow_regions(probabilities, point_labels, config["confidence"]), ramp))
    return extras


def mean_teacher(model, config):
    """The mean teacher of `model` where the config asks for one (--ema, --consistency, --grow),
    else None."""
    if config["ema"] or config["consistency"] or config["grow"]:
        return MeanTeacher(model, config["ema_decay"])
    return None


def learn_unclicked(teacher, images, point_labels, extras, step, steps, precision, config):
    """The batch the student learns on with --consistency or --grow: `extras` and the teacher's
    targets (unlabelled_targets), weighted by the ramp at `step` of the run's `steps`; with
    --consistency all of it on the strong view. Returns (images, point labels, extras)."""
    ramp = ramp_up(step, steps)
    extras = extras + unlabelled_targets(teacher, images, point_labels, precision, config, ramp)
    if config["consistency"]:  # the student learns them on a strong view
        images, point_labels, extras = strong_view(images, point_labels, extras)
    return images, point_labels, extras
