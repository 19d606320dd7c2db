"""pycaffe's NetSpec: write nets in Python (``n.conv1 = L.Convolution(n.data, ...)``) and get a
caffe_pb2.NetParameter (``n.to_proto()``).

``L.<Type>(*bottoms, ntop=1, in_place=False, **params)`` makes a Function; a keyword that ends in
``param`` (or names a LayerParameter field) goes to the LayerParameter, any other to the type's
own ``<type>_param``.  Tops are named by the NetSpec attribute they are assigned to, others
automatically (``Convolution1``); a layer is named after its first top.
"""
import collections

from .proto import caffe_pb2

# Types whose parameters live in another type's message (Caffe's layer sources read them there).
_SHARED_PARAMS = {"Deconvolution": "convolution"}


def param_name_dict():
    """Layer type -> its LayerParameter ``*_param`` field prefix (Convolution -> convolution)."""
    layer = caffe_pb2.LayerParameter()
    out = {}
    for f in layer.DESCRIPTOR.fields:
        if f.name.endswith("_param") and f.message_type is not None:
            type_name = f.message_type.name
            if type_name.endswith("Parameter"):
                out[type_name[:-len("Parameter")]] = f.name[:-len("_param")]
    out.update(_SHARED_PARAMS)
    return out


def assign_proto(proto, name, value):
    """Set field ``name`` of ``proto`` from a Python value: dicts fill sub-messages, lists fill
    repeated fields (a list of dicts adds one message each)."""
    is_repeated = hasattr(getattr(proto, name), "extend")
    if is_repeated and not isinstance(value, list):
        value = [value]
    if isinstance(value, list):
        if value and isinstance(value[0], dict):
            for item in value:
                msg = getattr(proto, name).add()
                for k, v in item.items():
                    assign_proto(msg, k, v)
        else:
            getattr(proto, name).extend(value)
    elif isinstance(value, dict):
        for k, v in value.items():
            assign_proto(getattr(proto, name), k, v)
    else:
        setattr(proto, name, value)


class Top:
    """The ``n``-th output of a Function."""

    def __init__(self, fn, n):
        self.fn, self.n = fn, n

    def to_proto(self):
        return to_proto(self)

    def _to_proto(self, layers, names, autonames):
        return self.fn._to_proto(layers, names, autonames)


class Function:
    """A layer not yet written: its type, bottoms (Tops) and parameters."""

    def __init__(self, type_name, inputs, params):
        self.type_name = type_name
        for index, top in enumerate(inputs):
            if not isinstance(top, Top):
                raise TypeError(f"{type_name} input {index} is not a Top (type is "
                                f"{type(top)})")
        self.inputs = inputs
        self.params = dict(params)
        self.ntop = self.params.pop("ntop", 1)
        self.in_place = self.params.pop("in_place", False)
        self.tops = tuple(Top(self, n) for n in range(self.ntop))

    def _auto_name(self, key, names, autonames):
        if key not in names:
            autonames[self.type_name] += 1
            names[key] = f"{self.type_name}{autonames[self.type_name]}"
        return names[key]

    def _get_name(self, names, autonames):
        if self not in names and self.ntop > 0:
            names[self] = self._auto_name(self.tops[0], names, autonames)
        return self._auto_name(self, names, autonames)

    def _to_proto(self, layers, names, autonames):
        if self in layers:
            return
        bottom_names = []
        for inp in self.inputs:
            inp._to_proto(layers, names, autonames)
            bottom_names.append(layers[inp.fn].top[inp.n])
        layer = caffe_pb2.LayerParameter()
        layer.type = self.type_name
        layer.bottom.extend(bottom_names)
        if self.in_place:
            layer.top.extend(layer.bottom)
        else:
            layer.top.extend(self._auto_name(top, names, autonames) for top in self.tops)
        layer.name = self._get_name(names, autonames)
        for k, v in self.params.items():
            self._assign(layer, k, v)
        layers[self] = layer

    def _assign(self, layer, key, value):
        if key.endswith("param") or key in layer.DESCRIPTOR.fields_by_name:
            assign_proto(layer, key, value)
            return
        prefix = param_name_dict().get(self.type_name)
        if prefix is None:
            raise AttributeError(f"layer type {self.type_name} has no parameter message for "
                                 f"'{key}'")
        assign_proto(getattr(layer, prefix + "_param"), key, value)


class NetSpec:
    """Named tops, in assignment order; ``to_proto()`` writes the layers they need."""

    def __init__(self):
        super().__setattr__("tops", collections.OrderedDict())

    def __setattr__(self, name, value):
        self.tops[name] = value

    def __getattr__(self, name):
        try:
            return self.tops[name]
        except KeyError:
            raise AttributeError(name) from None

    __setitem__ = __setattr__

    def __getitem__(self, item):
        return self.__getattr__(item)

    def __delitem__(self, name):
        del self.tops[name]

    def keys(self):
        return list(self.tops.keys())

    def vals(self):
        return list(self.tops.values())

    def to_proto(self):
        names = {v: k for k, v in self.tops.items()}
        autonames = collections.Counter()
        layers = collections.OrderedDict()
        for top in self.tops.values():
            top._to_proto(layers, names, autonames)
        net = caffe_pb2.NetParameter()
        net.layer.extend(layers.values())
        return net


def to_proto(*tops):
    """A NetParameter with the layers the given tops need."""
    layers, autonames = collections.OrderedDict(), collections.Counter()
    for top in tops:
        top.fn._to_proto(layers, {}, autonames)
    net = caffe_pb2.NetParameter()
    net.layer.extend(layers.values())
    return net


class Layers:
    """``L.<Type>(...)``: a Function's top (one top), its tops (several) or itself (none)."""

    def __getattr__(self, name):
        def layer_fn(*args, **kwargs):
            fn = Function(name, args, kwargs)
            if fn.ntop == 0:
                return fn
            return fn.tops[0] if fn.ntop == 1 else fn.tops
        return layer_fn


class Parameters:
    """``P.<Type>.<VALUE>``: the enum values of ``<Type>Parameter``."""

    def __getattr__(self, name):
        message = getattr(caffe_pb2, name + "Parameter")

        class Param:
            def __getattr__(self, param_name):
                return getattr(message, param_name)
        return Param()


layers = Layers()
params = Parameters()
