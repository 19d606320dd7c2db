"""The AdaDelta update rule: AdaDeltaSolver::ComputeUpdateValue (BVLC master,
adadelta_solver.cpp; DeepLab v1's fork has no AdaDelta).

Two history blobs per parameter, in Caffe's history_ order: the n running averages of the
squared gradients first (SGDSolver::PreSolve's), then the n running averages of the squared
updates (AdaDeltaPreSolve's); a .solverstate stores all 2n in that order.  With diff the
gradient already normalized and regularized, momentum the decay of both averages and delta
the solver file's ``delta``:
    h_g = momentum * h_g + (1 - momentum) * diff^2
    step = diff * sqrt((h_u + delta) / (h_g + delta))
    h_u = momentum * h_u + (1 - momentum) * step^2
    update = local_rate * step
The learning rate enters only at the end: the update history holds the unscaled steps (BVLC's
AdaDelta example runs base_lr 1.0).  Each step is rounded to float32 as Caffe's separate calls
round it.
"""
import numpy as np
import torch

from .update_rule import UpdateRule, register, running_average


@register
class AdaDeltaUpdate(UpdateRule):
    """AdaDeltaSolver::ComputeUpdateValue."""
    type = "AdaDelta"
    history_slots = 2

    def compute_update_value(self, diffs, history, local_rate, iter):
        grad_avg, update_avg = history
        momentum = np.float32(self.spec.momentum)
        delta = float(np.float32(self.spec.delta))
        running_average(grad_avg, torch._foreach_mul(diffs, diffs), momentum)
        ratio = torch._foreach_div(torch._foreach_add(update_avg, delta),
                                   torch._foreach_add(grad_avg, delta))
        step = torch._foreach_mul(diffs, torch._foreach_sqrt(ratio))
        running_average(update_avg, torch._foreach_mul(step, step), momentum)
        torch._foreach_mul_(step, local_rate)
        return step
