"""pycaffe's solvers over ours: ``SGDSolver(file)`` runs the file's ``type``; the typed classes
(``AdamSolver(file)`` ...) run their own type whatever the file says, as Caffe's C++ classes do;
``get_solver(file)`` follows the file (Caffe's SolverRegistry)."""
from .. import mode
from ..solver import SGDSolver as _CoreSolver
from ..solver import load_solver
from .net import Net


class _Solver:
    solver_type = None      # None: the solver file's type

    def __init__(self, filename):
        spec = load_solver(str(filename))
        if self.solver_type is not None:
            spec.type = self.solver_type
        device = mode.resolve_device() if mode.resolve_device().type == "cpu" else None
        self._core = _CoreSolver(spec, device=device)
        self.net = Net(None, "TRAIN", core=self._core.net)
        self.test_nets = [Net(None, "TEST", core=tn) for tn in self._core.test_nets]

    @property
    def iter(self):
        return self._core.iter

    @property
    def param(self):
        return self._core.spec

    def _nets(self):
        return [self.net] + self.test_nets

    def step(self, iters):
        for n in self._nets():
            n._push_host()
        self._core.step(int(iters))

    def solve(self, resume_file=None):
        for n in self._nets():
            n._push_host()
        self._core.solve(resume_file)

    def apply_update(self):
        self.net._push_host()
        self._core.apply_update()

    def restore(self, filename):
        self._core.restore(str(filename))

    def snapshot(self):
        self.net._push_host()
        self._core.snapshot()


def _typed(name, type_name):
    return type(name, (_Solver,), {"solver_type": type_name,
                                   "__doc__": f"Caffe's {name}: the {type_name} update rule."})


SGDSolver = _typed("SGDSolver", None)
NesterovSolver = _typed("NesterovSolver", "Nesterov")
AdaGradSolver = _typed("AdaGradSolver", "AdaGrad")
RMSPropSolver = _typed("RMSPropSolver", "RMSProp")
AdaDeltaSolver = _typed("AdaDeltaSolver", "AdaDelta")
AdamSolver = _typed("AdamSolver", "Adam")


def get_solver(filename):
    """The solver the file's ``type`` names (Caffe's SolverRegistry::CreateSolver)."""
    return SGDSolver(filename)
