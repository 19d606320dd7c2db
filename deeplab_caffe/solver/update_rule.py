"""The solver types (Caffe's solver registry, solver_factory.hpp), as update rules.

Every Caffe solver type (SGD, Nesterov, AdaGrad, RMSProp, AdaDelta, Adam) derives from SGDSolver
and replaces only ComputeUpdateValue: the learning rate, gradient clipping, iter_size
normalization and weight decay are SGDSolver's for all of them.  So a solver type here is one
small UpdateRule class, registered under Caffe's ``type`` name; old files name it with the
``solver_type`` enum instead, which SOLVER_TYPE_NAMES translates as Caffe's UpgradeSolverType.
"""
import numpy as np
import torch

# Caffe's UpgradeSolverType: solver_type enum name -> type name (every type Caffe has, so that
# a type we do not implement yet is named in the error).
SOLVER_TYPE_NAMES = {"SGD": "SGD", "NESTEROV": "Nesterov", "ADAGRAD": "AdaGrad",
                     "RMSPROP": "RMSProp", "ADADELTA": "AdaDelta", "ADAM": "Adam"}

# type name -> UpdateRule subclass.  The rule modules register themselves when the solver
# package is imported (as Caffe's REGISTER_SOLVER_CLASS does), before any solver file is read.
UPDATE_RULES = {}


def register(cls):
    """Class decorator: ``cls.type`` names the solver type the rule implements."""
    if cls.type not in SOLVER_TYPE_NAMES.values():
        raise ValueError(f"'{cls.type}' is not one of Caffe's solver types")
    UPDATE_RULES[cls.type] = cls
    return cls


class UpdateRule:
    """One solver type's ComputeUpdateValue.

    It works on a group of parameters that share (local_rate, local_decay), the gradients
    already clipped, normalized and regularized: ``diffs`` is a list of gradients,
    ``history[k]`` the list of their k-th history blobs (``history_slots`` per parameter, each
    shaped like it; Caffe's history_ order: slot k of parameter i is history blob k * n + i),
    ``iter`` the solver's iteration (Adam's bias correction reads it).  It updates the history
    in place and returns the values that Net::Update subtracts from the parameters."""

    type = None
    history_slots = 1

    @classmethod
    def constructor_sanity_check(cls, spec):
        """The solver type's own checks of the solver file (Caffe's constructor_sanity_check):
        raise ``spec.error(field, message)`` for a value the type refuses."""

    def __init__(self, spec):
        # Read at every update, as Caffe reads param_ (a SolverSpec can be edited between steps).
        self.spec = spec

    def compute_update_value(self, diffs, history, local_rate, iter):
        raise NotImplementedError(f"solver type '{self.type}' has no compute_update_value")


def refuse_momentum(spec, solver_type):
    """The check AdaGrad and RMSProp share: Caffe's CHECK_EQ(0, momentum)."""
    if spec.momentum != 0:
        raise spec.error("momentum", f"momentum cannot be used with {solver_type} (got "
                         f"{spec.momentum})")


def running_average(history, values, decay):
    """history = decay * history + (1 - decay) * values, in place on lists of tensors, as
    Caffe's caffe_cpu_axpby(1 - decay, values, decay, history) with float32 ``decay``: scale
    first, then add (RMSProp's h, AdaDelta's two averages, Adam's m and v)."""
    decay = np.float32(decay)
    torch._foreach_mul_(history, float(decay))
    torch._foreach_add_(history, torch._foreach_mul(values, float(np.float32(1) - decay)))
