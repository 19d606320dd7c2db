"""Net: a Caffe net built layer by layer from a prototxt, pycaffe-shaped.

Caffe's rules: layers filtered by include/exclude NetStateRules (phase, level, stage); in-place
tops (a top named like its bottom replaces that blob); loss_weight defaults (1 for the first top
of *Loss layers); output blobs = blobs no later layer consumes; a blob consumed twice gets its
gradients summed (autograd does it); parameters shared by ``param { name }``; a layer type with
AutoTopBlobs gets anonymous tops up to the count it needs (a loss layer without a top still adds
its loss); a data layer's top carries its transform (``blob_transforms``) to the layers that read
it.
"""
import collections
import contextlib
import logging

import torch

from . import mode, net_sharing
from .errors import CaffeError, NetError
from .layers.base import get_layer_class
from .proto.spec import NetSpec

log = logging.getLogger("deeplab_caffe.net")

PHASES = ("TRAIN", "TEST")


def state_meets_rule(rule, phase, level, stages):
    """Caffe's Net::StateMeetsRule for one NetStateRule message."""
    if rule.has("phase") and rule.get("phase") != phase:
        return False
    if rule.has("min_level") and level < rule.get("min_level"):
        return False
    if rule.has("max_level") and level > rule.get("max_level"):
        return False
    if any(s not in stages for s in rule.getlist("stage")):
        return False
    if any(s in stages for s in rule.getlist("not_stage")):
        return False
    return True


def layer_included(spec, phase, level, stages):
    """Caffe's Net::FilterNet rule for one layer: its include or exclude rules."""
    if spec.include and spec.exclude:
        raise NetError("give include or exclude rules, not both", layer=spec.name,
                       where=spec.where)
    if spec.include:
        return any(state_meets_rule(r, phase, level, stages) for r in spec.include)
    return not any(state_meets_rule(r, phase, level, stages) for r in spec.exclude)


def included_layers(spec, phase, level, stages):
    """The LayerSpecs of a NetSpec that the net state (phase, level, stages) keeps."""
    return [s for s in spec.layers if layer_included(s, phase, level, stages)]


class Net(torch.nn.Module):
    """A Caffe net.

    Net(prototxt, weights=None, phase="TEST", device=None, defines=None, level=0, stages=())
      prototxt: a path, prototxt text, or a NetSpec; defines fill ``${NAME}`` placeholders;
      weights: a .caffemodel or .pt file copied in by layer name (``copy_from``).
    After ``forward``, ``blobs`` maps every blob name to its tensor; ``params`` maps each layer
    with learnable blobs to its list of Parameters (Caffe shapes and order).
    """

    def __init__(self, prototxt, weights=None, phase="TEST", device=None, defines=None, level=0,
                 stages=()):
        super().__init__()
        phase = phase.upper() if isinstance(phase, str) else phase
        if phase not in PHASES:
            raise CaffeError(f"phase must be 'TRAIN' or 'TEST', got {phase!r}")
        self.phase, self.level, self.stages = phase, int(level), tuple(stages)
        if isinstance(prototxt, NetSpec):
            spec = prototxt
        else:
            from .proto import parse_net
            spec = parse_net(str(prototxt) if not isinstance(prototxt, str) else prototxt,
                             defines=defines)
        self.spec = spec
        self.name = spec.name
        # Caffe's Net(file, phase, level, stages) adds the given stages to the file's own
        # ``state { stage }`` (phase and level are set outright).
        if spec.state is not None:
            self.stages = tuple(spec.state.getlist("stage")) + self.stages
        # Caffe's force_backward; settable, so that a caller can ask for a backward on any net
        # (pycaffe's net.backward()) before its forward.
        self.force_backward = bool(spec.force_backward)
        self.layers = torch.nn.ModuleList()
        self._build(spec, mode.resolve_device(device))
        self.train(phase == "TRAIN")
        if weights is not None:
            self.copy_from(weights)

    # -- building ----------------------------------------------------------------------------
    def _build(self, spec, device):
        """Caffe's Net::Init: the layers that meet the net state, each checked, set up, wired,
        its params shared, in prototxt order; then the net's outputs and inputs."""
        self.layer_names, self._bottoms, self._tops, self._loss_weights = [], [], [], []
        self._propagate = []
        self._param_specs = []       # per layer: [ParamSpec or None per learnable blob]
        self._shared_mults = {}      # (layer, blob) of a shared owner -> merged multipliers
        self.blob_shapes = {}        # blob name -> shape after the layers so far
        self.blob_transforms = {}    # blob name -> SegTransform of its data layer, or None
        producer = {}                # blob name -> name of the layer that produced it
        shared = {}                  # param name -> (owner layer index, blob index)
        build_ctx = torch.device(device) if device.type == "meta" else None
        for s in included_layers(spec, self.phase, self.level, self.stages):
            self._check_wiring(s, producer)
            layer, top_shapes = self._set_up_layer(s, build_ctx)
            for t, shp, transform in zip(s.top, top_shapes, layer.top_transforms()):
                self.blob_shapes[t] = tuple(shp)
                self.blob_transforms[t] = transform
                producer[t] = s.name
            self._append_layer(s, layer, len(top_shapes))
            net_sharing.share_params(self, layer, s, shared)
        self._find_outputs_and_inputs()
        self.blobs = collections.OrderedDict()
        self._recorded = False
        if device.type != "meta" or build_ctx is None:
            self.to(device)

    def _check_wiring(self, s, producer):
        """Caffe's AppendBottom / AppendTop checks.  Layer names need not be unique (Caffe's
        name index keeps the last one); a top is in place only when it names the bottom at the
        same index, any other top naming an existing blob is "produced by multiple sources"."""
        for i, b in enumerate(s.bottom):
            if b not in self.blob_shapes:
                raise NetError(f"unknown bottom blob '{b}' (bottom {i}); no earlier layer "
                               "produces it", layer=s.name, where=s.where)
        for i, t in enumerate(s.top):
            in_place = i < len(s.bottom) and s.bottom[i] == t
            if not in_place and (t in self.blob_shapes or t in s.top[:i]):
                by = f"layer '{producer[t]}'" if t in producer else "this layer"
                raise NetError(f"top blob '{t}' (top {i}) is already produced by {by}: "
                               "duplicate blobs produced by multiple sources (a top is in place "
                               "only when it names the bottom at the same index)",
                               layer=s.name, where=s.where)

    def _set_up_layer(self, s, build_ctx):
        """(layer, top shapes): the layer constructed and set up (Caffe's Layer::SetUp) with its
        bottoms' shapes and transforms; on the meta device when build_ctx is given."""
        cls = get_layer_class(s.type, s)
        bottom_shapes = [self.blob_shapes[b] for b in s.bottom]
        bottom_transforms = [self.blob_transforms[b] for b in s.bottom]
        try:
            with build_ctx if build_ctx is not None else contextlib.nullcontext():
                layer = cls(s, self.phase)
                top_shapes = layer.setup(bottom_shapes, bottom_transforms)
        except NetError:
            raise
        except CaffeError as e:
            raise NetError(str(e), layer=s.name, where=s.where) from None
        if len(top_shapes) != layer.num_top:
            raise NetError(f"{s.type} produces {len(top_shapes)} top(s) but {len(s.top)} "
                           "are listed", layer=s.name, where=s.where)
        return layer, top_shapes

    def _append_layer(self, s, layer, num_top):
        """Record the layer and its wiring; tops past the listed ones are anonymous
        (AutoTopBlobs): no blob holds them, but their loss counts."""
        if len(s.loss_weight) > num_top:
            raise NetError(f"{len(s.loss_weight)} loss_weight values for {num_top} tops",
                           layer=s.name, where=s.where)
        self.layers.append(layer)
        self.layer_names.append(s.name)
        self._bottoms.append(list(s.bottom))
        self._tops.append(list(s.top))
        self._loss_weights.append([
            float(s.loss_weight[i] if i < len(s.loss_weight) else layer.default_loss_weight(i))
            for i in range(num_top)])
        self._propagate.append([s.propagate_down[i] if i < len(s.propagate_down) else True
                                for i in range(len(s.bottom))])
        self._param_specs.append([s.param[i] if i < len(s.param) else None
                                  for i in range(len(layer.blobs))])

    def _find_outputs_and_inputs(self):
        # Caffe: a blob no layer consumes (after in-place rewrites) is a net output; Caffe keeps
        # them in a std::set, so pycaffe lists them sorted by name.
        consumed = {b for bottoms in self._bottoms for b in bottoms}
        final = {t for tops in self._tops for t in tops}
        self.outputs = sorted(t for t in final
                              if t not in consumed or self._last_writer_in_place(t))
        self.inputs = [t for l, tops in zip(self.layers, self._tops)
                       if l.type_name == "Input" for t in tops]

    def _last_writer_in_place(self, blob):
        # An in-place top (relu1 on conv1) is consumed only by itself: still an output if no
        # later layer reads it.
        last_read = max((i for i, b in enumerate(self._bottoms) if blob in b), default=-1)
        last_write = max(i for i, t in enumerate(self._tops) if blob in t)
        return last_write >= last_read and blob in self._bottoms[last_write]

    # -- parameter sharing (net_sharing.py) ---------------------------------------------------
    def share_trained_layers_with(self, other):
        """Caffe's Net::ShareTrainedLayersWith: each layer of ``other`` whose name this net also
        has lends it its blobs (the same Parameters, as the solver's test nets use the training
        net's weights); layers this net lacks are skipped."""
        net_sharing.share_trained_layers(self, other)

    # -- pycaffe-shaped accessors --------------------------------------------------------------
    @property
    def params(self):
        """layer name -> list of its learnable Parameters, in Caffe's order and shapes (pycaffe's
        OrderedDict: a duplicate name keeps the first one's position and the last one's blobs)."""
        out = collections.OrderedDict()
        for name, layer in zip(self.layer_names, self.layers):
            if len(layer.blobs):
                out[name] = list(layer.blobs)
        return out

    def layer(self, name):
        """Caffe's layer_by_name: with duplicate names, the last layer of that name (its
        layer_names_index_ map is filled in order, so later layers overwrite earlier ones)."""
        i = self.last_layer_index(name)
        if i is None:
            raise CaffeError(f"net '{self.name}' has no layer '{name}'")
        return self.layers[i]

    def last_layer_index(self, name):
        """The index of the last layer named ``name`` (None if none): Caffe's
        layer_names_index_ entry, which layer_by_name and CopyTrainedLayersFromHDF5 use."""
        for i in range(len(self.layer_names) - 1, -1, -1):
            if self.layer_names[i] == name:
                return i
        return None

    def first_layer_index(self, name):
        """The index of the first layer named ``name`` (None if none): the target Caffe's
        CopyTrainedLayersFrom and ShareTrainedLayersWith find by scanning layer_names_ from the
        start."""
        return self.layer_names.index(name) if name in self.layer_names else None

    def learnable_params(self):
        """(Parameter, lr_mult, decay_mult, layer name, blob index), shared blobs once (owner),
        in Caffe's learnable_params order; a shared blob's multipliers as AppendParam merged
        them."""
        seen, out = set(), []
        for li, (name, layer) in enumerate(zip(self.layer_names, self.layers)):
            specs = self._param_specs[li]
            for i, p in enumerate(layer.blobs):
                if id(p) in seen:
                    continue
                seen.add(id(p))
                ps = specs[i] if i < len(specs) else None
                lr = ps.lr_mult if ps is not None else 1.0
                decay = ps.decay_mult if ps is not None else 1.0
                merged = self._shared_mults.get((li, i))
                if merged is not None:
                    lr, decay = merged["lr_mult"][0], merged["decay_mult"][0]
                out.append((p, lr, decay, name, i))
        return out

    @property
    def device(self):
        for p in self.parameters():
            return p.device
        for b in self.buffers():
            return b.device
        return torch.device("cpu")

    # -- running -----------------------------------------------------------------------------
    @property
    def records_backward(self):
        """Whether ``forward`` records the autograd graph a backward needs: a TRAIN-phase net
        (the solver's) or ``force_backward``; a TEST-phase net otherwise runs without it (no
        outputs with requires_grad, no memory held for a backward)."""
        return self.phase == "TRAIN" or self.force_backward

    def forward(self, start=None, end=None, **inputs):
        """Run the layers (optionally from layer ``start`` to ``end``, by name) and return the
        output blobs as a dict.  Keyword arguments feed Input layers' tops by blob name.
        ``self.loss`` is the weighted sum of the loss tops (a 0-d tensor, 0 if none).
        Gradients are recorded only when ``records_backward``."""
        unknown = set(inputs) - set(self.inputs)
        if unknown:
            raise CaffeError(f"forward got {sorted(unknown)}, but the net's inputs are "
                             f"{self.inputs}")
        # A caller's own torch.no_grad() still wins on a net that records.
        grad = contextlib.nullcontext() if self.records_backward else torch.no_grad()
        with grad:
            return self._forward_layers(start, end, inputs)

    def backward(self, **top_diffs):
        """pycaffe's ``net.backward()``: gradients of the last forward's loss (plus
        ``sum(top * diff)`` for each ``blob=diff`` given) into the parameters' ``.grad``.  The
        forward must have recorded them: a TRAIN net, or ``force_backward`` set before it."""
        if not self._recorded:
            raise CaffeError(f"net '{self.name}' ({self.phase} phase) recorded no gradients in "
                             "its last forward: set net.force_backward = True (or "
                             "force_backward: true in the prototxt) before forward()")
        tensors, grads = [], []
        if self.loss.requires_grad:
            tensors.append(self.loss)
            grads.append(torch.ones_like(self.loss))
        for name, diff in top_diffs.items():
            if name not in self.blobs:
                raise CaffeError(f"backward: no blob '{name}' in net '{self.name}'")
            blob = self.blobs[name]
            if blob.requires_grad:
                tensors.append(blob)
                grads.append(torch.as_tensor(diff, dtype=blob.dtype, device=blob.device))
        if tensors:
            torch.autograd.backward(tensors, grads)

    def _forward_layers(self, start, end, inputs):
        i0 = self.layer_names.index(start) if start else 0
        i1 = self.layer_names.index(end) + 1 if end else len(self.layers)
        blobs = self.blobs if i0 > 0 else collections.OrderedDict()
        dev = self.device
        loss = None
        for li in range(i0, i1):
            layer, bottoms, tops = self.layers[li], self._bottoms[li], self._tops[li]
            if layer.type_name == "Input" and any(t in inputs for t in tops):
                args = [torch.as_tensor(inputs[t], dtype=torch.float32, device=dev)
                        if t in inputs else blobs.get(t) for t in tops]
                outs = layer(*args)
            else:
                args = []
                for bi, b in enumerate(bottoms):
                    x = blobs[b]
                    args.append(x if self._propagate[li][bi] else x.detach())
                outs = layer(*args)
            if not isinstance(outs, (tuple, list)):
                outs = (outs,)
            for k, (v, w) in enumerate(zip(outs, self._loss_weights[li])):
                if k < len(tops):
                    blobs[tops[k]] = v
                if w:
                    term = w * v.sum()
                    loss = term if loss is None else loss + term
        self.blobs = blobs
        self.loss = loss if loss is not None else torch.zeros((), device=dev)
        self._recorded = torch.is_grad_enabled()
        return collections.OrderedDict((t, blobs[t]) for t in self.outputs if t in blobs)

    def train(self, mode=True):
        """TRAIN-phase behaviour (Dropout active) when True; a TEST net can be switched too."""
        return super().train(mode)

    # -- weights -----------------------------------------------------------------------------
    def copy_from(self, path, allow_reshape=False, schema="auto"):
        """Copy weights by layer name from a .caffemodel, a .caffemodel.h5 (Caffe's HDF5 layout,
        told by content) or a .pt, as Caffe's CopyTrainedLayersFrom.

        Layers of the file that the net lacks are skipped (logged).  A blob whose shape differs is
        an error naming the layer and both shapes, unless the layer has DeepLab v1's
        ``strict_dim: false`` or ``allow_reshape`` is set and the element counts match."""
        from .net_weights import copy_trained_layers_from
        return copy_trained_layers_from(self, path, allow_reshape=allow_reshape, schema=schema)

    def save(self, path, format="v2", diffs=None):
        """Write the learnable blobs as a .caffemodel (format "v2" or "v1"), in Caffe's HDF5
        layout (format "hdf5", or a name ending in .h5) or as a .pt state dict (.pt / .pth);
        ``diffs`` ({id(parameter): tensor}) adds the blobs' diffs, as Caffe's snapshot_diff."""
        from .net_weights import save_net_weights
        return save_net_weights(self, path, format=format, diffs=diffs)

    def __repr__(self):
        return f"Net({self.name!r}, phase={self.phase}, {len(self.layers)} layers)"
