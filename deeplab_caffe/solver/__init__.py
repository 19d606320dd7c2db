"""Caffe's solvers: the training loop shared by every solver type (base.py), the SGD family's
update (sgd.py), solver files (spec.py), learning-rate policies (lr_policy.py), snapshots and
resume (state.py), multi-process training (distributed.py) and the per-process entry of the
training command (run.py)."""
from .base import DivergedError, SGDSolver  # noqa: F401
from .spec import NetSource, SolverSpec, load_solver  # noqa: F401
