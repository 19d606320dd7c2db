"""AdaptiveBiasChannel (DeepLab v1 ADAPTIVE_BIAS_CHANNEL): the adaptive E-step of weakly
supervised training (Papandreou et al. 2015, "EM-Adapt"): per image, biases the score maps of the
present classes so that each wins on at least a set portion of the image.

``adaptive_bias_channel_param { num_iter (1) bg_portion (0.2) fg_portion (0.2) suppress_others
(true) margin_others (1e-5) }``.  Bottoms: scores (N, C, H, W), C > 1, and a label list
(N, L, 1, 1) (UniqueLabel's; -1 entries are skipped, others must be in [0, C)).  Per image with
at least one label, as the fork's C++ (its last version, with the mean-preserving shift):
  1. suppress_others: where an absent class scores above the minimum over present classes, its
     score becomes that minimum - margin_others;
  2. m = pointwise max over present classes; mean0 = mean(m) (in double);
  3. num_iter times: the present labels sorted, background (if present) first and the others in
     random order; for each label l: d = m - s_l, s_l += the nth smallest d with
     nth = int(portion * H * W) (bg_portion for l = 0), m = max(m, s_l);
  4. every channel shifted by mean0 - mean(m), so the mean of the maximum score is kept.
A label listed twice is visited twice.  The shuffle draws from torch's generator (the C++ uses
std::random_shuffle).  No gradient (Caffe's Backward is empty).
"""
import torch

from ._grad import detached
from ._params import scalar
from .base import Layer, register
from .bias_channel import check_label_list


@register("AdaptiveBiasChannel")
class AdaptiveBiasChannelLayer(Layer):
    exact_num_bottom = 2
    exact_num_top = 1

    def __init__(self, spec, phase="TEST"):
        super().__init__(spec, phase)
        p = self.param("adaptive_bias_channel_param")
        self.num_iter = int(scalar(p, "num_iter", 1))
        if self.num_iter <= 0:
            raise self.error(f"num_iter must be positive, got {self.num_iter}")
        self.suppress_others = bool(scalar(p, "suppress_others", True))
        self.margin_others = float(scalar(p, "margin_others", 1e-5))
        if self.margin_others < 0:
            raise self.error(f"margin_others must not be negative, got {self.margin_others}")
        self.portion = {}
        for what, default in (("bg_portion", 0.2), ("fg_portion", 0.2)):
            v = float(scalar(p, what, default))
            if not 0 <= v <= 1:
                raise self.error(f"{what} must be in [0, 1], got {v}")
            self.portion[what] = v

    def layer_setup(self, bottom_shapes):
        check_label_list(self, tuple(bottom_shapes[0]), tuple(bottom_shapes[1]))
        if bottom_shapes[0][1] <= 1:
            raise self.error(f"the scores need more than one channel, got {bottom_shapes[0][1]}")
        return [tuple(bottom_shapes[0])]

    def present_labels(self, row, i, num_channels):
        labels = []
        for v in row:
            lab = int(v)
            if lab == -1:
                continue
            if not 0 <= lab < num_channels:
                raise self.error(f"unexpected label {lab} in image {i} (scores have "
                                 f"{num_channels} channels)")
            labels.append(lab)
        return sorted(labels)

    def nth(self, label, spatial):
        # The C++ computes Dtype(portion) * spatial_dim and truncates; portion 1 would read one
        # past the end there: the largest difference is used instead.
        p = self.portion["bg_portion" if label == 0 else "fg_portion"]
        k = int(torch.tensor(p, dtype=torch.float32) * spatial)
        return min(k, spatial - 1)

    def adapt(self, s, labels):
        """s: (C, H*W) scores of one image, changed in place."""
        present = torch.zeros(s.shape[0], dtype=torch.bool, device=s.device)
        present[labels] = True
        if self.suppress_others:
            low = s[present].min(0).values
            clip = (~present)[:, None] & (s > low)
            s[clip] = (low - self.margin_others).expand_as(s)[clip]
        m = s[labels].max(0).values
        mean0 = m.double().mean()
        bg = 1 if labels[0] == 0 else 0
        for _ in range(self.num_iter):
            order = labels[:bg] + [labels[bg + j]
                                   for j in torch.randperm(len(labels) - bg).tolist()]
            labels = order
            for lab in labels:
                d = m - s[lab]
                shift = torch.sort(d).values[self.nth(lab, s.shape[1])]
                s[lab] += shift
                m = torch.maximum(m, s[lab])
        s += (mean0 - m.double().mean()).to(s.dtype)

    @torch.no_grad()
    def forward(self, scores, labels):
        check_label_list(self, tuple(scores.shape), tuple(labels.shape))
        n, c = scores.shape[:2]
        out = scores.detach().clone()
        flat = out.view(n, c, -1)
        for i, row in enumerate(labels.reshape(n, -1).cpu().tolist()):
            present = self.present_labels(row, i, c)
            if present:
                self.adapt(flat[i], present)
        return detached(out)
