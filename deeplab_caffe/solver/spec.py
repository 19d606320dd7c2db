"""Solver files: a SolverParameter prototxt read, checked and resolved into a ``SolverSpec``.

Syntax errors are the parser's PrototxtErrors (file:line:col).  A value that makes no sense (an
unknown lr_policy, step without stepsize, test_iter missing for a test net, a solver type with
no registered update rule) is a PrototxtError at the field's position when the solver came from
a file, else a CaffeError naming the field.

Net files (net, train_net, test_net) are looked up as Caffe does, from the working directory,
and, when not found there, relative to the solver file's folder.  ``${NAME}`` placeholders in the
solver file are filled from ``defines``; the same defines are passed on to the nets.
"""
import os

from ..errors import CaffeError, PrototxtError
from ..proto import parse, parse_file, upgrade_net
from ..proto.message import Message
from ..proto.text_format import read_text
from ..proto.tokenizer import tokenize
from .lr_policy import POLICIES, REQUIRED_FIELDS
from .update_rule import SOLVER_TYPE_NAMES, UPDATE_RULES

# Caffe's defaults for the fields the solver reads (proto defaults; unset numbers are 0).
DEFAULTS = dict(test_interval=0, test_compute_loss=False, test_initialization=True, base_lr=0.0,
                display=0, average_loss=1, max_iter=0, iter_size=1, lr_policy="", gamma=0.0,
                power=0.0, momentum=0.0, weight_decay=0.0, regularization_type="L2",
                stepsize=0, clip_gradients=-1.0, snapshot=0, snapshot_prefix="",
                snapshot_diff=False, snapshot_format="BINARYPROTO", solver_mode="GPU",
                device_id=0, random_seed=-1, type="SGD", delta=1e-8, momentum2=0.999,
                rms_decay=0.99, snapshot_after_train=True,
                debug_info=False)

# What ``path`` says of a solver given as prototxt text rather than as a file.
TEXT_PATH = "<string>"

# Caffe's Regularize: BVLC has L1 and L2; DeepLab v1's fork adds "L2sqrt" to its SGDSolver only
# (its Nesterov and AdaGrad solvers stop with "Unknown regularization type").
REGULARIZATION_TYPES = ("L1", "L2", "L2sqrt")


class NetSource:
    """One net the solver builds: ``source`` is a file path or a NetSpec; ``state`` the NetState
    message (phase/level/stage) or None; ``what`` names it in messages ("train net")."""

    def __init__(self, source, phase, state=None, what="net"):
        self.source, self.phase, self.state, self.what = source, phase, state, what

    @property
    def level(self):
        return int(self.state.get("level", 0)) if self.state is not None else 0

    @property
    def stages(self):
        return tuple(self.state.getlist("stage")) if self.state is not None else ()

    def __repr__(self):
        return f"NetSource({self.what}: {self.source!r}, {self.phase})"


class SolverSpec:
    """A checked solver file.  Every SolverParameter field is an attribute (Caffe's default when
    absent); ``stepvalue``, ``test_iter`` and ``weights`` are lists; ``train_net`` is a
    NetSource and ``test_nets`` a list of NetSource with ``test_iter`` aligned to it."""

    def __init__(self, msg, path=None, defines=None, field_tokens=None):
        self.message, self.path = msg, path
        self.defines = type(defines)(defines) if isinstance(defines, dict) else dict(defines or {})
        self._tokens = field_tokens or {}
        for name, default in DEFAULTS.items():
            setattr(self, name, msg.get(name, default))
        self.stepvalue = [int(v) for v in msg.getlist("stepvalue")]
        self.test_iter = [int(v) for v in msg.getlist("test_iter")]
        self.weights = [str(v) for v in msg.getlist("weights")]
        self._check()
        self._resolve_nets()

    # -- errors ------------------------------------------------------------------------------
    def error(self, field, message):
        tok = self._tokens.get(field)
        if self.path is not None and tok is not None:
            return PrototxtError(message, self.path, tok[0], tok[1])
        if self.path is not None:
            return PrototxtError(f"solver field '{field}': {message}", self.path)
        return CaffeError(f"solver field '{field}': {message}")

    # -- checks ------------------------------------------------------------------------------
    def _check(self):
        msg = self.message
        if msg.has("solver_type") and msg.has("type"):
            # Caffe's UpgradeSolverType refuses the pair rather than pick one.
            raise self.error("solver_type", "give the solver type once: the old solver_type "
                             "(enum) and the new type (string) cannot both be set")
        if msg.has("solver_type"):
            self.type = SOLVER_TYPE_NAMES[msg.get("solver_type")]
        if self.type not in UPDATE_RULES:
            field = "type" if msg.has("type") else "solver_type"
            raise self.error(field, f"solver type '{self.type}' is not supported (supported: "
                             f"{', '.join(UPDATE_RULES)})")
        if not msg.has("lr_policy"):
            raise self.error("lr_policy", "lr_policy is required (one of "
                             f"{', '.join(POLICIES)})")
        if self.lr_policy not in POLICIES:
            raise self.error("lr_policy", f"unknown lr_policy '{self.lr_policy}' (known: "
                             f"{', '.join(POLICIES)})")
        for need in REQUIRED_FIELDS[self.lr_policy]:
            if not msg.has(need):
                raise self.error("lr_policy", f"lr_policy '{self.lr_policy}' needs '{need}'")
        if self.lr_policy in ("step",) and self.stepsize <= 0:
            raise self.error("stepsize", f"stepsize must be positive, got {self.stepsize}")
        if self.lr_policy == "poly" and self.max_iter <= 0:
            raise self.error("max_iter", "lr_policy 'poly' needs max_iter > 0")
        if any(b <= a for a, b in zip(self.stepvalue, self.stepvalue[1:])):
            raise self.error("stepvalue", f"stepvalue must increase, got {self.stepvalue}")
        if not msg.has("base_lr"):
            raise self.error("base_lr", "base_lr is required")
        self._check_update_rule()
        for field, low in (("iter_size", 1), ("max_iter", 0), ("display", 0), ("snapshot", 0),
                           ("test_interval", 0), ("average_loss", 1), ("stepsize", 0)):
            if getattr(self, field) < low:
                raise self.error(field, f"{field} must be >= {low}, got {getattr(self, field)}")
        if any(t <= 0 for t in self.test_iter):
            raise self.error("test_iter", f"test_iter must be positive, got {self.test_iter}")

    def _check_update_rule(self):
        if self.regularization_type not in REGULARIZATION_TYPES:
            raise self.error("regularization_type", "regularization_type must be one of "
                             f"{', '.join(REGULARIZATION_TYPES)}, got "
                             f"'{self.regularization_type}'")
        if self.regularization_type == "L2sqrt" and self.type != "SGD":
            raise self.error("regularization_type", "regularization_type 'L2sqrt' (DeepLab v1's)"
                             f" exists for the SGD solver only, not for '{self.type}'")
        UPDATE_RULES[self.type].constructor_sanity_check(self)

    # -- nets --------------------------------------------------------------------------------
    def _net_path(self, field, value):
        value = os.fspath(value)
        if os.path.exists(value) or self.path is None or os.path.isabs(value):
            return value
        beside = os.path.join(os.path.dirname(os.path.abspath(self.path)), value)
        return beside if os.path.exists(beside) else value

    def _inline(self, m):
        return upgrade_net(m, path=self.path or "<solver>")

    def _resolve_nets(self):
        msg = self.message
        train = [(f, msg.get(f)) for f in ("train_net", "train_net_param", "net", "net_param")
                 if msg.has(f)]
        if not train:
            raise self.error("net", "the solver must name a train net with one of train_net, "
                             "train_net_param, net, net_param")
        if len(train) > 1:
            raise self.error(train[1][0], "give only one of train_net, train_net_param, net, "
                             f"net_param (got {', '.join(f for f, _ in train)})")
        field, value = train[0]
        source = self._inline(value) if isinstance(value, Message) else \
            self._net_path(field, value)
        self.train_net = NetSource(source, "TRAIN", msg.get("train_state"), "train net")

        generic = None
        if msg.has("net"):
            generic = self._net_path("net", msg.get("net"))
        elif msg.has("net_param"):
            generic = self.train_net.source
        sources = [self._inline(m) for m in msg.getlist("test_net_param")]
        sources += [self._net_path("test_net", p) for p in msg.getlist("test_net")]
        if generic is not None:
            if len(self.test_iter) < len(sources):
                raise self.error("test_iter", "test_iter must be given for each test net "
                                 f"({len(sources)} test nets, {len(self.test_iter)} test_iter)")
            sources += [generic] * (len(self.test_iter) - len(sources))
        elif len(self.test_iter) != len(sources):
            raise self.error("test_iter", "test_iter must be given once for each test net "
                             f"({len(sources)} test nets, {len(self.test_iter)} test_iter)")
        states = msg.getlist("test_state")
        if states and len(states) != len(sources):
            raise self.error("test_state", "test_state must be absent or given once per test "
                             f"net ({len(sources)} test nets, {len(states)} test_state)")
        self.test_nets = [NetSource(s, "TEST", states[i] if states else None, f"test net #{i}")
                          for i, s in enumerate(sources)]
        if self.test_nets and self.test_interval <= 0:
            raise self.error("test_interval" if msg.has("test_interval") else "test_iter",
                             "test nets are given, so test_interval must be "
                             "positive")

    def snapshot_prefix_for(self, deeplab_v1):
        """The prefix of the snapshot files.  DeepLab v1's fork uses snapshot_prefix as written
        (none: ``_iter_N.caffemodel`` in the working directory).  BVLC master's
        UpgradeSnapshotPrefixProperty, for a solver read from a file: no prefix -> the file's
        path without extension; a prefix naming a directory -> that directory / the file's
        stem.  A solver given as a message or as text has no file, so its prefix stays as is."""
        prefix = self.snapshot_prefix
        if deeplab_v1 or self.path in (None, TEXT_PATH):
            return prefix
        if not self.message.has("snapshot_prefix"):
            return os.path.splitext(self.path)[0]
        if os.path.isdir(prefix):
            return os.path.join(prefix, os.path.splitext(os.path.basename(self.path))[0])
        return prefix

    def __repr__(self):
        return (f"SolverSpec({self.path!r}, type={self.type}, lr_policy={self.lr_policy}, "
                f"base_lr={self.base_lr}, max_iter={self.max_iter})")


def _top_level_tokens(tokens):
    """field name -> (line, col) of its first top-level occurrence."""
    out, depth = {}, 0
    for i, tok in enumerate(tokens):
        if tok.kind == "sym" and tok.value in "{<":
            depth += 1
        elif tok.kind == "sym" and tok.value in "}>":
            depth -= 1
        elif tok.kind == "word" and depth == 0 and i + 1 < len(tokens):
            nxt = tokens[i + 1]
            if nxt.kind == "sym" and nxt.value in ":{<":
                out.setdefault(tok.value, (tok.line, tok.col))
    return out


def load_solver(solver, defines=None):
    """A SolverSpec from a solver file path, solver prototxt text, a SolverParameter Message or
    a SolverSpec (returned as is)."""
    if isinstance(solver, SolverSpec):
        return solver
    if isinstance(solver, Message):
        return SolverSpec(solver, None, defines)
    solver = os.fspath(solver)
    is_text = "\n" in solver or "{" in solver or (":" in solver and not os.path.exists(solver))
    if is_text:
        path, text = TEXT_PATH, solver
        msg = parse(text, "SolverParameter", "bvlc", path, defines)
    else:
        path = solver
        text = read_text(path)
        msg = parse_file(path, "SolverParameter", "bvlc", defines)
    tokens = _top_level_tokens(tokenize(text, path, defines))
    return SolverSpec(msg, path, defines, tokens)
