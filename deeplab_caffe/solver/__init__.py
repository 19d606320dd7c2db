"""Caffe's solvers: the training loop shared by every solver type (base.py), the solver types
as update rules in a registry (update_rule.py), SGDSolver's update with the SGD and Nesterov
rules (sgd.py), the AdaGrad, RMSProp, AdaDelta and Adam rules (adagrad.py, rmsprop.py,
adadelta.py, adam.py), solver files (spec.py), learning-rate policies (lr_policy.py), snapshots
and resume (state.py), multi-process training (distributed.py) and the per-process entry of
the training command (run.py)."""
from .base import DivergedError, Solver  # noqa: F401
from .sgd import NesterovUpdate, SGDSolver, SGDUpdate  # noqa: F401
from .adagrad import AdaGradUpdate  # noqa: F401
from .rmsprop import RMSPropUpdate  # noqa: F401
from .adadelta import AdaDeltaUpdate  # noqa: F401
from .adam import AdamUpdate  # noqa: F401
from .update_rule import UPDATE_RULES, UpdateRule  # noqa: F401
from .spec import NetSource, SolverSpec, load_solver  # noqa: F401
