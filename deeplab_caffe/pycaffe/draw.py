"""pycaffe's draw: a caffe_pb2.NetParameter as a pydot graph (layers as boxes, blobs as
octagons, in-place layers folded onto their blob), rendered by Graphviz.  Needs ``pydot``
(imported on use) and Graphviz's ``dot`` to render."""
from .proto import caffe_pb2

LAYER_STYLE_DEFAULT = {"shape": "record", "fillcolor": "#6495ED", "style": "filled"}
NEURON_LAYER_STYLE = {"shape": "record", "fillcolor": "#90EE90", "style": "filled"}
BLOB_STYLE = {"shape": "octagon", "fillcolor": "#E0E0E0", "style": "filled"}


def _pydot():
    try:
        import pydot
    except ImportError as e:
        raise ImportError("caffe.draw needs the pydot package (pip install pydot)") from e
    return pydot


def _phase_name(phase):
    return caffe_pb2.Phase.Name(phase)


def get_layer_label(layer, rankdir, display_lrm=False):
    """The node label: name and type, with kernel/stride/pad for convolution and pooling."""
    separator = " " if rankdir in ("TB", "BT") else "\\n"
    descriptor = f"{layer.name}{separator}({layer.type})"
    if layer.type in ("Convolution", "Deconvolution", "Pooling"):
        p = layer.pooling_param if layer.type == "Pooling" else layer.convolution_param

        def first(values, default):
            values = list(values) if hasattr(values, "__len__") else [values]
            return values[0] if values else default
        kernel = first(p.kernel_size, 1) if layer.type != "Pooling" else p.kernel_size
        stride = first(p.stride, 1) if layer.type != "Pooling" else p.stride
        pad = first(p.pad, 0) if layer.type != "Pooling" else p.pad
        descriptor += f"{separator}kernel size: {kernel}{separator}stride: {stride}" \
                      f"{separator}pad: {pad}"
    if display_lrm:
        lr = [str(p.lr_mult) for p in layer.param] or ["1.0"]
        descriptor += f"{separator}lr mult: {', '.join(lr)}"
    return descriptor


def _layer_included(layer, phase):
    if phase is None:
        return True
    included = not layer.include
    for rule in layer.include:
        included = included or rule.phase == phase
    for rule in layer.exclude:
        if rule.phase == phase:
            included = False
    return included


def get_pydot_graph(caffe_net, rankdir, label_edges=True, phase=None, display_lrm=False):
    """The net as a pydot.Dot graph; ``phase`` keeps only the layers of that phase."""
    pydot = _pydot()
    graph = pydot.Dot(caffe_net.name if caffe_net.name else "Net", graph_type="digraph",
                      rankdir=rankdir)
    nodes, edges = {}, []
    for layer in caffe_net.layer:
        if not _layer_included(layer, phase):
            continue
        node_name = f"{layer.name}_{layer.type}"
        in_place = len(layer.bottom) == 1 and len(layer.top) == 1 and \
            layer.bottom[0] == layer.top[0]
        style = NEURON_LAYER_STYLE if in_place else LAYER_STYLE_DEFAULT
        nodes[node_name] = pydot.Node(node_name, label=get_layer_label(layer, rankdir,
                                                                       display_lrm), **style)
        for bottom in layer.bottom:
            nodes.setdefault(f"{bottom}_blob", pydot.Node(f"{bottom}_blob", label=bottom,
                                                          **BLOB_STYLE))
            edges.append((f"{bottom}_blob", node_name, None))
        for top in layer.top:
            nodes.setdefault(f"{top}_blob", pydot.Node(f"{top}_blob", label=top,
                                                       **BLOB_STYLE))
            edges.append((node_name, f"{top}_blob", top if label_edges else None))
    for node in nodes.values():
        graph.add_node(node)
    for src, dst, label in edges:
        kwargs = {"label": f'"{label}"'} if label else {}
        graph.add_edge(pydot.Edge(src, dst, **kwargs))
    return graph


def draw_net(caffe_net, rankdir, ext="png", phase=None, display_lrm=False):
    """The net drawn in format ``ext`` (bytes), by Graphviz."""
    return get_pydot_graph(caffe_net, rankdir, phase=phase,
                           display_lrm=display_lrm).create(format=ext)


def draw_net_to_file(caffe_net, filename, rankdir="LR", phase=None, display_lrm=False):
    """Write the drawing; the format follows the file's extension."""
    ext = filename[filename.rfind(".") + 1:]
    with open(filename, "wb") as fid:
        fid.write(draw_net(caffe_net, rankdir, ext, phase, display_lrm))
