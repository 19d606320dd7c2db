"""Caffe's learning-rate policies (SGDSolver::GetLearningRate), same in BVLC and DeepLab v1.

``iter`` is the number of updates already applied (0 for the first).  Caffe stores the solver's
numbers as float and computes the rate in float, so the result is rounded to float32.

    fixed      base_lr
    step       base_lr * gamma ^ floor(iter / stepsize)
    exp        base_lr * gamma ^ iter
    inv        base_lr * (1 + gamma * iter) ^ (-power)
    multistep  base_lr * gamma ^ current_step; current_step goes up by one when
               iter >= stepvalue[current_step] (at most one step per iteration)
    poly       base_lr * (1 - iter / max_iter) ^ power
    sigmoid    base_lr / (1 + exp(-gamma * (iter - stepsize)))
"""
import math

import numpy as np

from ..errors import CaffeError

POLICIES = ("fixed", "step", "exp", "inv", "multistep", "poly", "sigmoid")

# The fields each policy reads besides base_lr (checked when a solver file is loaded).
REQUIRED_FIELDS = {
    "fixed": (),
    "step": ("gamma", "stepsize"),
    "exp": ("gamma",),
    "inv": ("gamma", "power"),
    "multistep": ("gamma", "stepvalue"),
    "poly": ("power", "max_iter"),
    "sigmoid": ("gamma", "stepsize"),
}


def _f32(x):
    return float(np.float32(x))


def learning_rate(policy, iter, base_lr, gamma=0.0, power=0.0, stepsize=0, stepvalue=(),
                  max_iter=0, current_step=0):
    """(rate, current_step) for update number ``iter``.

    ``current_step`` is the multistep position carried between calls (and stored in the
    .solverstate); the step policy sets it to floor(iter / stepsize) as Caffe does."""
    base_lr, gamma, power = _f32(base_lr), _f32(gamma), _f32(power)
    if policy == "fixed":
        rate = base_lr
    elif policy == "step":
        if stepsize <= 0:
            raise CaffeError(f"lr_policy 'step' needs stepsize > 0, got {stepsize}")
        current_step = iter // stepsize
        rate = base_lr * gamma ** current_step
    elif policy == "exp":
        rate = base_lr * gamma ** iter
    elif policy == "inv":
        rate = base_lr * _f32(1.0 + _f32(gamma * iter)) ** (-power)
    elif policy == "multistep":
        if current_step < len(stepvalue) and iter >= stepvalue[current_step]:
            current_step += 1
        rate = base_lr * gamma ** current_step
    elif policy == "poly":
        if max_iter <= 0:
            raise CaffeError(f"lr_policy 'poly' needs max_iter > 0, got {max_iter}")
        rate = base_lr * _f32(1.0 - _f32(_f32(iter) / _f32(max_iter))) ** power
    elif policy == "sigmoid":
        rate = base_lr * _f32(1.0 / (1.0 + math.exp(-gamma * _f32(iter - stepsize))))
    else:
        raise CaffeError(f"unknown lr_policy '{policy}' (known: {', '.join(POLICIES)})")
    return _f32(rate), int(current_step)
