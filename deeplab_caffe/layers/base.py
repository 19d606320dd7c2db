"""Layer base class and the registry of layer types.

A layer module holds one Caffe layer type: its parameter defaults, its output-shape rule, its
forward and (where autograd does not already give it) its backward.  Modules register their class
under the V2 type name; ``upgrade.py`` maps V1 / DeepLab v1 enum names to V2 names first.

Contract used by ``net.py``:
  * ``cls(spec, phase)``: ``spec`` is a ``LayerSpec``, ``phase`` is "TRAIN" or "TEST".
  * ``layer.setup(bottom_shapes) -> top_shapes``: called once while the net is built, with the
    shapes (tuples) of the bottoms; checks the parameters and bottom counts, creates the learnable
    blobs in ``layer.blobs`` (Caffe's order and shapes, filled with the spec's fillers) and returns
    the top shapes.  Raise ``layer.error(...)`` for bad parameters or shapes.
  * ``layer(*bottoms) -> tuple of tops``: the forward.  Shapes may differ from setup's (Caffe's
    Reshape); layers must compute from the actual input.
  * data layers (no bottoms) take no arguments and produce their batch.
"""
import torch

from ..errors import CaffeError, NetError

LAYER_REGISTRY = {}


def register(type_name):
    """Class decorator: ``@register("Pooling")``."""
    def deco(cls):
        if type_name in LAYER_REGISTRY and LAYER_REGISTRY[type_name] is not cls:
            raise RuntimeError(f"layer type {type_name} registered twice")
        cls.type_name = type_name
        LAYER_REGISTRY[type_name] = cls
        return cls
    return deco


def get_layer_class(type_name, spec=None):
    from . import _all  # noqa: F401  (imports every layer module so they register)
    cls = LAYER_REGISTRY.get(type_name)
    if cls is None:
        import difflib
        close = difflib.get_close_matches(type_name, LAYER_REGISTRY, n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise NetError(f"unknown layer type '{type_name}'{hint}",
                       layer=getattr(spec, "name", None), where=getattr(spec, "where", None))
    return cls


class Layer(torch.nn.Module):
    type_name = None
    # Bottom/top count checks done by check_counts(); None = not checked.
    exact_num_bottom = None
    min_num_bottom = None
    max_num_bottom = None
    exact_num_top = None
    min_num_top = None
    max_num_top = None

    def __init__(self, spec, phase="TEST"):
        super().__init__()
        self.spec = spec
        self.phase = phase
        self.blobs = torch.nn.ParameterList()

    # -- helpers -------------------------------------------------------------------------------
    @property
    def name(self):
        return self.spec.name

    def error(self, message):
        return NetError(message, layer=self.spec.name, where=self.spec.where)

    def param(self, name):
        """The named ``*_param`` sub-message (an empty Message when absent)."""
        return self.spec.param_message(name)

    def filled_blob(self, shape, param_msg, which):
        """A new learnable blob of ``shape`` filled by ``param_msg.<which>`` (a FillerParameter;
        absent = Caffe's default, constant 0)."""
        from ..fillers import fill
        t = torch.empty(shape)
        try:
            fill(t, param_msg.get(which))
        except CaffeError as e:
            raise self.error(f"{which}: {e}") from None
        return torch.nn.Parameter(t)

    def check_counts(self, num_bottom, num_top):
        def chk(n, exact, lo, hi, what):
            if exact is not None and n != exact:
                raise self.error(f"{self.type_name} takes {exact} {what} blob(s), got {n}")
            if lo is not None and n < lo:
                raise self.error(f"{self.type_name} takes at least {lo} {what} blob(s), got {n}")
            if hi is not None and n > hi:
                raise self.error(f"{self.type_name} takes at most {hi} {what} blob(s), got {n}")
        chk(num_bottom, self.exact_num_bottom, self.min_num_bottom, self.max_num_bottom, "bottom")
        chk(num_top, self.exact_num_top, self.min_num_top, self.max_num_top, "top")

    @property
    def is_loss(self):
        return self.type_name is not None and self.type_name.endswith("Loss")

    def default_loss_weight(self, top_index):
        """Caffe: loss layers weigh their first top 1, everything else 0."""
        return 1.0 if (self.is_loss and top_index == 0) else 0.0

    # -- to override -------------------------------------------------------------------------
    def setup(self, bottom_shapes):
        raise NotImplementedError

    def forward(self, *bottoms):
        raise NotImplementedError
