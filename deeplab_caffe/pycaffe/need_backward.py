"""What a pycaffe backward computes, as Caffe's Net::Init decides it once for the net: which
layers run their backward (layer_need_backward_), which bottoms they propagate to
(bottom_need_backward_) and which params get diffs (param_propagate_down).

Our Net inserts no Split layers, so where Caffe asks whether a split copy is skipped, the
question here is whether every layer that reads the blob skips it.
"""


class NeedBackward:
    """``layer[li]``, ``bottom[li][bi]``, ``param[li][j]``: Caffe's flags for ``core`` (our Net)."""

    def __init__(self, core):
        self.layer, self.bottom, self.param = [], [], []
        self._forward_pass(core)
        self._loss_pass(core)
        if core.force_backward:
            self.layer = [True] * len(self.layer)
            self.bottom = [[True] * len(b) for b in self.bottom]

    def _forward_pass(self, core):
        """A layer needs a backward when a bottom needs one or a param learns (its own
        ``param { lr_mult }`` not 0); its tops then need one.  propagate_down false drops a
        bottom."""
        blob_need = {}
        for li, layer in enumerate(core.layers):
            bottoms, specs = core._bottoms[li], core._param_specs[li]
            learns = [p.requires_grad and (j >= len(specs) or specs[j] is None
                                           or specs[j].lr_mult != 0)
                      for j, p in enumerate(layer.blobs)]
            need = any(blob_need.get(b, False) for b in bottoms) or any(learns)
            self.layer.append(need)
            self.bottom.append([blob_need.get(b, False) and core._propagate[li][bi]
                                for bi, b in enumerate(bottoms)])
            self.param.append(learns)
            for t in core._tops[li]:
                blob_need[t] = blob_need.get(t, False) or need

    def _loss_pass(self, core):
        """From the last layer back: a layer that contributes to no loss (no loss-weighted top,
        no top read by a contributing layer), or whose every top is skipped by its readers,
        needs no backward and propagates to none of its bottoms."""
        under_loss, read, needed = set(), set(), set()
        for li in range(len(core.layers) - 1, -1, -1):
            tops, weights = core._tops[li], core._loss_weights[li]
            contributes = any(weights) or any(t in under_loss for t in tops)
            # An anonymous top (beyond the listed ones) is read by nobody: never skipped.
            skipped = len(weights) <= len(tops) and \
                all(t in read and t not in needed for t in tops)
            if skipped or not contributes:
                self.layer[li] = False
                self.bottom[li] = [False] * len(self.bottom[li])
            for bi, b in enumerate(core._bottoms[li]):
                if contributes:
                    under_loss.add(b)
                read.add(b)
                if self.bottom[li][bi]:
                    needed.add(b)
