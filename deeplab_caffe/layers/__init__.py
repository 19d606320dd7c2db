"""Caffe layer types, one module each, registered under their V2 type names."""
from .base import Layer, LAYER_REGISTRY, register, get_layer_class  # noqa: F401
