"""The RMSProp update rule: RMSPropSolver::ComputeUpdateValue (BVLC master, rmsprop_solver.cpp;
DeepLab v1's fork has no RMSProp).

On the gradient already normalized and regularized by SGDSolver::ApplyUpdate, with h the one
history blob per parameter (what the .solverstate stores):
    h = rms_decay * h + (1 - rms_decay) * diff^2
    update = local_rate * diff / (sqrt(h) + delta)
rms_decay (default 0.99) and delta (default 1e-8) come from the solver file.  Caffe refuses a
non-zero momentum and an rms_decay outside [0, 1).  Each step is rounded to float32 as Caffe's
separate powx / axpby / add_scalar / div calls round it.
"""
import numpy as np
import torch

from .update_rule import UpdateRule, refuse_momentum, register, running_average


@register
class RMSPropUpdate(UpdateRule):
    """RMSPropSolver::ComputeUpdateValue."""
    type = "RMSProp"

    @classmethod
    def constructor_sanity_check(cls, spec):
        refuse_momentum(spec, cls.type)
        if not 0 <= spec.rms_decay < 1:
            raise spec.error("rms_decay", f"rms_decay should lie between 0 and 1 (0 <= "
                             f"rms_decay < 1), got {spec.rms_decay}")

    def compute_update_value(self, diffs, history, local_rate, iter):
        h = history[0]
        running_average(h, torch._foreach_mul(diffs, diffs), np.float32(self.spec.rms_decay))
        update = torch._foreach_sqrt(h)
        torch._foreach_add_(update, float(np.float32(self.spec.delta)))
        update = torch._foreach_div(diffs, update)
        torch._foreach_mul_(update, local_rate)
        return update
