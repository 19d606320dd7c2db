"""The AdaGrad update rule: AdaGradSolver::ComputeUpdateValue, the same in DeepLab v1's fork
(solver.cpp) and BVLC master (adagrad_solver.cpp).

On the gradient already normalized and regularized by SGDSolver::ApplyUpdate, with h the one
history blob per parameter (what the .solverstate stores):
    h += diff^2;  update = local_rate * diff / (sqrt(h) + delta)
delta is the solver file's ``delta`` (default 1e-8).  Both Caffes refuse a non-zero momentum
(constructor_sanity_check, run when the solver file is read).  Each step is rounded to float32
as Caffe's separate powx / add / add_scalar / div / axpby calls round it (no fused
multiply-add).
"""
import numpy as np
import torch

from .update_rule import UpdateRule, refuse_momentum, register


@register
class AdaGradUpdate(UpdateRule):
    """AdaGradSolver::ComputeUpdateValue."""
    type = "AdaGrad"

    @classmethod
    def constructor_sanity_check(cls, spec):
        # The same check in BVLC and in DeepLab v1's fork.
        refuse_momentum(spec, cls.type)

    def compute_update_value(self, diffs, history, local_rate, iter):
        h = history[0]
        torch._foreach_add_(h, torch._foreach_mul(diffs, diffs))
        update = torch._foreach_sqrt(h)
        torch._foreach_add_(update, float(np.float32(self.spec.delta)))
        update = torch._foreach_div(diffs, update)
        torch._foreach_mul_(update, local_rate)
        return update
