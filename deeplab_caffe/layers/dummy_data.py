"""DummyData: tops filled by fillers."""
import torch

from ..errors import CaffeError
from ..fillers import fill, filler_field
from .base import register
from .base_data import DataLayer, blob_shape


@register("DummyData")
class DummyDataLayer(DataLayer):
    """Tops filled by fillers (dummy_data_param).

    Shapes: ``shape`` (one BlobShape, or one per top), or the legacy num/channels/height/width
    lists (each of length 1 or one per top).  data_filler: none (constant 0), one for all tops,
    or one per top.  As in Caffe, a constant filler fills its tops once, any other filler
    refills them at every forward (``layer.generator``, a torch.Generator, seeds those; None
    uses torch's default one).
    """
    min_num_top = 1

    def layer_setup(self, bottom_shapes):
        p = self.param("dummy_data_param")
        num_top = len(self.spec.top)
        fillers = p.getlist("data_filler")
        if len(fillers) not in (0, 1, num_top):
            raise self.error(f"dummy_data_param has {len(fillers)} data_fillers for {num_top} "
                             "tops; give none, one, or one per top")
        self.fillers = fillers if fillers else [None]
        self.refill = [filler_field(f, "type") != "constant" for f in self.fillers]
        self.generator = getattr(self, "generator", None)
        self.shapes = self._shapes(p, num_top)
        for i, shape in enumerate(self.shapes):
            t = torch.zeros(shape, dtype=torch.float32, device=self.device)
            k = self._filler_index(i)
            try:
                if not self.refill[k]:
                    fill(t, self.fillers[k])
                else:
                    # Check the filler's parameters now rather than at the first forward.
                    fill(torch.empty(shape), self.fillers[k], generator=torch.Generator())
            except CaffeError as e:
                raise self.error(f"data_filler for top '{self.spec.top[i]}': {e}") from None
            self._set_top_buffer(i, t)
        return list(self.shapes)

    def _shapes(self, p, num_top):
        legacy = {k: [int(v) for v in p.getlist(k)] for k in ("num", "channels", "height", "width")}
        shapes = [blob_shape(s) for s in p.getlist("shape")]
        if any(legacy.values()):
            if shapes:
                raise self.error("dummy_data_param: both shape and legacy num/channels/height/"
                                 "width were given")
            for k, v in legacy.items():
                if len(v) not in (1, num_top):
                    raise self.error(f"dummy_data_param.{k} must have 1 or {num_top} values, "
                                     f"got {len(v)}")
            return [tuple(legacy[k][0] if len(legacy[k]) == 1 else legacy[k][i]
                          for k in ("num", "channels", "height", "width")) for i in range(num_top)]
        if len(shapes) not in (1, num_top):
            raise self.error(f"dummy_data_param needs 1 or {num_top} shapes, got {len(shapes)}")
        return [shapes[0] if len(shapes) == 1 else shapes[i] for i in range(num_top)]

    def _filler_index(self, i):
        return i if len(self.fillers) > 1 else 0

    def forward(self):
        tops = []
        for i in range(len(self.spec.top)):
            k = self._filler_index(i)
            if self.refill[k]:
                t = torch.empty(self.shapes[i], dtype=torch.float32, device=self.device)
                tops.append(fill(t, self.fillers[k], generator=self.generator))
            else:
                # A copy, so that an in-place consumer cannot change the constant for later.
                tops.append(self._top_buffer(i).clone())
        return tuple(tops)
