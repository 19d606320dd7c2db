"""Layer base class and the registry of layer types.

A layer module holds one Caffe layer type: its parameter defaults, its output-shape rule, its
forward and (where autograd does not already give it) its backward.  Modules register their class
under the V2 type name; ``upgrade.py`` maps V1 / DeepLab v1 enum names to V2 names first.

Contract used by ``net.py``:
  * ``cls(spec, phase)``: ``spec`` is a ``LayerSpec``, ``phase`` is "TRAIN" or "TEST".
  * ``layer.setup(bottom_shapes) -> top_shapes`` (Caffe's Layer::SetUp): called once while the
    net is built, with the shapes (tuples) of the bottoms.  The base class checks the bottom and
    top counts the type declares (Caffe's CheckBlobCounts), then calls the type's
    ``layer_setup(bottom_shapes)`` (Caffe's LayerSetUp + Reshape), which checks the parameters,
    creates the learnable blobs in ``layer.blobs`` (Caffe's order and shapes, filled with the
    spec's fillers) and returns ``self.num_top`` top shapes.  Raise ``layer.error(...)`` for bad
    parameters or shapes.
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
        from ..proto.bvlc_names import unsupported_type_note
        message = unsupported_type_note(type_name)
        if message is None:
            close = difflib.get_close_matches(type_name, LAYER_REGISTRY, n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            message = f"unknown layer type '{type_name}'{hint}"
        raise NetError(message, layer=getattr(spec, "name", None),
                       where=getattr(spec, "where", None))
    return cls


class Layer(torch.nn.Module):
    """Base of every layer type.

    Blob counts, as Caffe's layer.hpp declares them per type (None = Caffe's -1, not checked):
    exact/min/max number of bottoms and tops; ``equal_num_bottom_top`` (one top per bottom);
    ``auto_top_blobs``: when the prototxt lists fewer tops than the type needs (the larger of
    min_num_top and exact_num_top), the net adds anonymous ones (net.cpp's AppendTop with no
    name), e.g. a loss layer written without a top still adds its loss."""
    type_name = None
    exact_num_bottom = None
    min_num_bottom = None
    max_num_bottom = None
    exact_num_top = None
    min_num_top = None
    max_num_top = None
    equal_num_bottom_top = False
    auto_top_blobs = False

    def __init__(self, spec, phase="TEST"):
        super().__init__()
        self.spec = spec
        self.phase = phase
        self.blobs = torch.nn.ParameterList()
        self.bottom_transforms = []

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

    @property
    def num_top(self):
        """How many tops the layer produces: the listed ones, plus anonymous ones when the type
        has auto_top_blobs."""
        listed = len(self.spec.top)
        if not self.auto_top_blobs:
            return listed
        return max(listed, self.min_num_top or 0, self.exact_num_top or 0)

    def check_blob_counts(self, num_bottom, num_top):
        """Caffe's Layer::CheckBlobCounts: the counts the type declares, with the layer named."""
        def check(n, exact, lo, hi, what):
            if exact is not None and n != exact:
                raise self.error(f"{self.type_name} takes {exact} {what} blob(s), got {n}")
            if lo is not None and n < lo:
                raise self.error(f"{self.type_name} takes at least {lo} {what} blob(s), got {n}")
            if hi is not None and n > hi:
                raise self.error(f"{self.type_name} takes at most {hi} {what} blob(s), got {n}")
        check(num_bottom, self.exact_num_bottom, self.min_num_bottom, self.max_num_bottom,
              "bottom")
        check(num_top, self.exact_num_top, self.min_num_top, self.max_num_top, "top")
        if self.equal_num_bottom_top and num_bottom != num_top:
            raise self.error(f"{self.type_name} takes one top per bottom, got {num_bottom} "
                             f"bottom(s) and {num_top} top(s)")

    def top_transforms(self):
        """Per top, the SegTransform that made it from 8-bit images (data layers), else None:
        the metadata the Net keeps per blob (``net.blob_transforms``) and hands to consumers
        (``self.bottom_transforms``)."""
        return [None] * self.num_top

    @property
    def is_loss(self):
        return self.type_name is not None and self.type_name.endswith("Loss")

    def default_loss_weight(self, top_index):
        """Caffe: loss layers weigh their first top 1, everything else 0."""
        return 1.0 if (self.is_loss and top_index == 0) else 0.0

    # -- set-up ------------------------------------------------------------------------------
    def setup(self, bottom_shapes, bottom_transforms=None):
        """Caffe's Layer::SetUp: the blob counts, then the type's own layer_setup.

        bottom_transforms: per bottom, the SegTransform its producer declared (or None); kept as
        ``self.bottom_transforms`` for layers that need the 8-bit image back."""
        self.check_blob_counts(len(bottom_shapes), self.num_top)
        self.bottom_transforms = list(bottom_transforms or [None] * len(bottom_shapes))
        return self.layer_setup(bottom_shapes)

    # -- to override -------------------------------------------------------------------------
    def layer_setup(self, bottom_shapes):
        raise NotImplementedError

    def forward(self, *bottoms):
        raise NotImplementedError
