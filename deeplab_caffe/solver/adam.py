"""The Adam update rule: AdamSolver::ComputeUpdateValue (BVLC master, adam_solver.cpp; DeepLab
v1's fork has no Adam).

Two history blobs per parameter, in Caffe's history_ order: the n first moments m, then the n
second moments v (AdamPreSolve appends them after SGDSolver::PreSolve's); a .solverstate
stores all 2n in that order.  beta1 is the solver file's ``momentum``, beta2 its ``momentum2``
(default 0.999), eps its ``delta``; t = iter + 1:
    m = beta1 * m + (1 - beta1) * diff
    v = beta2 * v + (1 - beta2) * diff^2
    correction = sqrt(1 - beta2^t) / (1 - beta1^t)
    update = local_rate * correction * m / (sqrt(v) + eps)
The correction is computed in double (C++'s pow(float, int) is double) and stored as float, as
Caffe's ``const Dtype correction``; the rest is rounded to float32 at each of Caffe's calls.
Caffe makes no check of beta1, beta2 or eps.
"""
import math

import numpy as np
import torch

from .update_rule import UpdateRule, register, running_average


def bias_correction(beta1, beta2, iter):
    """Caffe's ``correction`` for iteration ``iter`` (t = iter + 1), as a float32 value."""
    t = iter + 1
    b1, b2 = float(np.float32(beta1)), float(np.float32(beta2))
    return np.float32(math.sqrt(1.0 - b2 ** t) / (1.0 - b1 ** t))


@register
class AdamUpdate(UpdateRule):
    """AdamSolver::ComputeUpdateValue."""
    type = "Adam"
    history_slots = 2

    def compute_update_value(self, diffs, history, local_rate, iter):
        m, v = history
        spec = self.spec
        running_average(m, diffs, np.float32(spec.momentum))
        running_average(v, torch._foreach_mul(diffs, diffs), np.float32(spec.momentum2))
        denom = torch._foreach_sqrt(v)
        torch._foreach_add_(denom, float(np.float32(spec.delta)))
        update = torch._foreach_div(m, denom)
        rate = np.float32(local_rate) * bias_correction(spec.momentum, spec.momentum2, iter)
        torch._foreach_mul_(update, float(rate))
        return update
