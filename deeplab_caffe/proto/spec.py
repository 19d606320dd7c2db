"""The normalized net description every Caffe dialect is upgraded to.

``upgrade.py`` turns a parsed NetParameter (BVLC V2, BVLC V1 or DeepLab v1) into a ``NetSpec``:
V2 type names ("Convolution", "Interp", "SoftmaxWithLoss"), ``param`` entries with lr_mult and
decay_mult, ``dilation`` instead of DeepLab's ``hole``, and an ``Input`` layer for the deprecated
``input``/``input_dim``/``input_shape`` fields.  ``net.py`` builds layers from it.
"""
from dataclasses import dataclass, field
from typing import List, Optional

from .message import Message


@dataclass
class ParamSpec:
    """One learnable blob's settings (Caffe's ParamSpec).  ``has_lr_mult`` / ``has_decay_mult``:
    whether the file gave the value (Caffe's has_lr_mult()), which decides how shared
    parameters merge their multipliers (Net::AppendParam)."""
    name: str = ""            # sharing name; "" = not shared
    lr_mult: float = 1.0
    decay_mult: float = 1.0
    share_mode: str = "STRICT"
    has_lr_mult: bool = False
    has_decay_mult: bool = False


@dataclass
class LayerSpec:
    name: str
    type: str                           # V2 type name, e.g. "Convolution"
    bottom: List[str] = field(default_factory=list)
    top: List[str] = field(default_factory=list)
    param: List[ParamSpec] = field(default_factory=list)
    loss_weight: List[float] = field(default_factory=list)
    include: List[Message] = field(default_factory=list)   # NetStateRule messages
    exclude: List[Message] = field(default_factory=list)
    propagate_down: List[bool] = field(default_factory=list)
    strict_dim: bool = True             # DeepLab v1: False = load blobs by element count
    # The layer's whole normalized LayerParameter; the *_param sub-messages are read from it,
    # e.g. spec.message.get("pooling_param") -> Message or None.
    message: Message = field(default_factory=lambda: Message("LayerParameter"))
    where: Optional[str] = None         # "file:line:col" of the layer's declaration
    phase: Optional[str] = None         # legacy per-layer phase field ("TRAIN"/"TEST"), if set
    # The file's dialect ("v2", "v1", "deeplab_v1"): where BVLC master and DeepLab's 2015 fork
    # differ, a layer follows the fork for DeepLab v1 files and master otherwise.
    dialect: str = "v2"

    def param_message(self, name):
        """The ``<name>`` sub-message (e.g. "convolution_param"), or an empty one."""
        m = self.message.get(name)
        return m if m is not None else Message(name)


@dataclass
class NetSpec:
    name: str = ""
    layers: List[LayerSpec] = field(default_factory=list)
    force_backward: bool = False
    state: Optional[Message] = None     # NetState from the file, if any
    dialect: str = "v2"                 # "v2", "v1" (BVLC) or "deeplab_v1": what the file was
    path: str = "<string>"
