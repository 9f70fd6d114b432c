"""--average-last K: the model tested is the mean of the weights after each of the run's last K
epochs (stochastic weight averaging, Izmailov et al. 2018; SWAD, Cha et al. 2021, for shifted
domains), not the epoch that happened to score best on a small val split.

On real tiles validation mIoU jumps from epoch to epoch (a few tens of val tiles, a class or two
that a handful of pixels decide), so the epoch chosen by it is partly a draw. The average of the
last epochs' weights sits in the middle of the region they wander through: it swings less, and
on shifted imagery it tends to hold up better than any one of them. Averaged weights no longer
match the batch-norm statistics any single epoch collected, so those are computed again, in one
pass over a fixed set of training crops (their own random stream: the run's crops are the same
with and without averaging) after each averaged epoch; the average is validated then, and its
mIoU recorded beside the epoch's own.
"""

import torch
from torch.optim.swa_utils import AveragedModel

from lib.device import memory_format


class WeightAverage:
    """The running mean of `model`'s weights over the epochs from `first` on, with batch-norm
    statistics recomputed after each update on the training crops `crops()` gives (a DataLoader,
    the same crops each time)."""

    def __init__(self, model, first, crops):
        self.average = AveragedModel(model)
        self.first, self.crops = first, crops

    def update(self, model, epoch):
        """Take in the weights after `epoch`, if it is one of the averaged; whether it was."""
        if epoch < self.first:
            return False
        self.average.update_parameters(model)
        self.recompute_batch_norm()
        return True

    @torch.no_grad()
    def recompute_batch_norm(self):
        """Each batch-norm layer's running mean and variance, as the cumulative average over the
        crops (momentum None), in train mode and fp32."""
        model = self.average.module
        norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
        momenta = {norm: norm.momentum for norm in norms}
        for norm in norms:
            norm.reset_running_stats()
            norm.momentum = None
        was_training = model.training
        model.train()
        device = next(model.parameters()).device
        # the crops' positions and turns come from torch's global generator (lib/crops.py): the
        # pass draws its own and leaves the run's random stream as it found it
        with torch.random.fork_rng(devices=[]):
            for images, *_ in self.crops():
                model(images.to(device, memory_format=memory_format(model)))
        for norm in norms:
            norm.momentum = momenta[norm]
        model.train(was_training)

    @property
    def model(self):
        """The averaged network, as the run validates, tests and saves it."""
        return self.average.module

    def state_dict(self):
        return self.average.state_dict()

    def load_state_dict(self, state):
        self.average.load_state_dict(state)


def weight_average(model, config, crops):
    """The average --average-last K asks for (over epochs E - K + 1 .. E), else None."""
    if not config["average_last"]:
        return None
    return WeightAverage(model, config["epochs"] - config["average_last"] + 1, crops)
