"""SGDSolver: Caffe's SGDSolver::ApplyUpdate (sgd_solver.cpp), shared by every solver type, and
the SGD and Nesterov update rules (sgd_solver.cpp, nesterov_solver.cpp).

ApplyUpdate: rate from lr_policy; clip the global L2 norm to clip_gradients; per parameter
diff /= iter_size (Normalize), diff += local_decay * w (L2), * sign(w) (L1) or, DeepLab v1's
"L2sqrt", * w / max(|w|, 1e-6) with |w| the blob's own L2 norm (Regularize: the gradient of
local_decay * |w|), the type's ComputeUpdateValue, w -= update (Net::Update), where
local_rate = rate * lr_mult and local_decay = weight_decay * decay_mult.  (DeepLab v1's fork
has no clip_gradients or iter_size: with their defaults both steps do nothing.)
SGD:      v = momentum * v + local_rate * diff; update = v (the rate sits inside the momentum
          buffer: not torch.optim.SGD, whose buffer does not scale with a changing rate).
Nesterov: v_new as SGD's; update = (1 + momentum) * v_new - momentum * v_old.
"""
import math

import numpy as np
import torch

from ..log import fmt
from .base import Solver
from .lr_policy import learning_rate
from .update_rule import UPDATE_RULES, UpdateRule, register


class SGDSolver(Solver):
    """Caffe's SGDSolver, running the solver file's ``type`` (or ``solver_type``).  Caffe's
    other types derive from SGDSolver and differ only in the update rule, so this one class
    runs every registered type (update_rule.py).  Arguments: see Solver."""

    def pre_solve(self):
        self.update_rule = UPDATE_RULES[self.spec.type](self.spec)
        return [torch.zeros_like(p, memory_format=torch.contiguous_format)
                for _ in range(self.update_rule.history_slots) for p, *_ in self._params]

    def learning_rate(self):
        s = self.spec
        return learning_rate(s.lr_policy, self.iter, s.base_lr, s.gamma, s.power, s.stepsize,
                             s.stepvalue, s.max_iter, self.current_step)

    @torch.no_grad()
    def apply_update(self):
        """SGDSolver::ApplyUpdate on the accumulated gradients (``p.grad``, None = zero)."""
        spec = self.spec
        rate, step = self.learning_rate()
        if spec.lr_policy == "multistep" and step != self.current_step:
            self.log.info("multistep", f"MultiStep Status: Iteration {self.iter}, step = {step}")
        self.current_step = step
        if spec.display and self.iter % spec.display == 0:
            self.log.info("lr", f"Iteration {self.iter}, lr = {fmt(rate)}")
        grads = [p.grad if p.grad is not None else torch.zeros_like(p)
                 for p, *_ in self._params]
        self._clip_gradients(grads)
        for (local_rate, local_decay), (ps, gs, hs) in self._groups(rate, grads).items():
            if spec.iter_size > 1:
                torch._foreach_div_(gs, float(spec.iter_size))
            if local_decay:
                _regularize(spec.regularization_type, ps, gs, local_decay)
            updates = self.update_rule.compute_update_value(gs, hs, local_rate, self.iter)
            torch._foreach_sub_(ps, updates)
            if spec.snapshot_diff:
                # Caffe's diffs hold the update values after ApplyUpdate: what it snapshots.
                self.param_diffs.update((id(p), u.detach().clone()) for p, u in zip(ps, updates))

    def _clip_gradients(self, grads):
        clip = self.spec.clip_gradients
        if clip < 0 or not grads:
            return
        norm = math.sqrt(sum(float(g.double().pow(2).sum()) for g in grads))
        if norm > clip:
            scale = clip / norm
            self.log.info("clip", f"Gradient clipping: scaling down gradients (L2 norm "
                          f"{fmt(norm)} > {fmt(clip)}) by scale factor {fmt(scale)}")
            for g in grads:
                g.mul_(scale)

    def _groups(self, rate, grads):
        """{(local_rate, local_decay): (params, grads, history slots)}.  Parameters that share
        both are updated together by foreach kernels (a few launches instead of several per
        blob); the arithmetic is the same as blob by blob."""
        n, slots = len(self._params), self.update_rule.history_slots
        groups = {}
        for i, ((p, lr_mult, decay_mult, *_), g) in enumerate(zip(self._params, grads)):
            local_rate = float(np.float32(rate) * np.float32(lr_mult))
            local_decay = float(np.float32(self.spec.weight_decay) * np.float32(decay_mult))
            ps, gs, hs = groups.setdefault((local_rate, local_decay),
                                           ([], [], [[] for _ in range(slots)]))
            ps.append(p)
            gs.append(g)
            for k in range(slots):
                hs[k].append(self.history[k * n + i])
        return groups


def _regularize(kind, params, diffs, local_decay):
    """Caffe's Regularize on a group of parameters that share local_decay."""
    if kind == "L2":
        torch._foreach_add_(diffs, params, alpha=local_decay)
    elif kind == "L1":
        torch._foreach_add_(diffs, torch._foreach_sign(params), alpha=local_decay)
    else:
        # DeepLab v1's L2sqrt, in float as its caffe_cpu_dot / sqrt / std::max.
        decay, floor = np.float32(local_decay), np.float32(1e-6)
        scales = [float(decay / max(np.float32(math.sqrt(float(torch.dot(
            p.detach().reshape(-1).float(), p.detach().reshape(-1).float())))), floor))
            for p in params]
        torch._foreach_add_(diffs, torch._foreach_mul(params, scales))


@register
class SGDUpdate(UpdateRule):
    """SGDSolver::ComputeUpdateValue."""
    type = "SGD"

    def compute_update_value(self, diffs, history, local_rate, iter):
        v = history[0]
        torch._foreach_mul_(v, float(np.float32(self.spec.momentum)))
        torch._foreach_add_(v, diffs, alpha=local_rate)
        return v


@register
class NesterovUpdate(SGDUpdate):
    """NesterovSolver::ComputeUpdateValue: step back by the old history, then over-step by the
    new one."""
    type = "Nesterov"

    def compute_update_value(self, diffs, history, local_rate, iter):
        momentum = float(np.float32(self.spec.momentum))
        prev = [v.clone() for v in history[0]]
        v = super().compute_update_value(diffs, history, local_rate, iter)
        return torch._foreach_sub(torch._foreach_mul(v, 1 + momentum),
                                  torch._foreach_mul(prev, momentum))
