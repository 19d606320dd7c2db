"""A least-squares net for solver tests (as Caffe's test_gradient_based_solver): MemoryData
(N, C, 1, 1) -> InnerProduct(1) -> EuclideanLoss against the labels, and numpy references of
Caffe's solver types on it in closed form (float64), each written from the published
algorithm as Caffe states it, not from our code."""
import numpy as np

import deeplab_caffe as dc

C = 3
NUM = 8          # samples held by MemoryData (two batches of 4)


def ls_net(batch=4, w_lr=1.0, w_decay=1.0, b_lr=2.0, b_decay=0.5):
    return f"""
name: "LeastSquares"
layer {{ name: "data" type: "MemoryData" top: "data" top: "y"
  memory_data_param {{ batch_size: {batch} channels: {C} height: 1 width: 1 }} }}
layer {{ name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
  param {{ lr_mult: {w_lr} decay_mult: {w_decay} }}
  param {{ lr_mult: {b_lr} decay_mult: {b_decay} }}
  inner_product_param {{ num_output: 1
    weight_filler {{ type: "gaussian" std: 1 }} bias_filler {{ type: "gaussian" std: 1 }} }} }}
layer {{ name: "loss" type: "EuclideanLoss" bottom: "ip" bottom: "y" top: "loss" }}
"""


def ls_net_deeplab_v1(batch=4):
    """The same net in DeepLab v1's dialect (``strict_dim``, a field only its Caffe has, marks
    it), with the same parameters and multipliers as ``ls_net()``'s defaults."""
    return f"""
name: "LeastSquares"
layers {{ name: "data" type: MEMORY_DATA top: "data" top: "y"
  memory_data_param {{ batch_size: {batch} channels: {C} height: 1 width: 1 }} }}
layers {{ name: "ip" type: INNER_PRODUCT bottom: "data" top: "ip" strict_dim: true
  blobs_lr: 1 blobs_lr: 2 weight_decay: 1 weight_decay: 0.5
  inner_product_param {{ num_output: 1
    weight_filler {{ type: "gaussian" std: 1 }} bias_filler {{ type: "gaussian" std: 1 }} }} }}
layers {{ name: "loss" type: EUCLIDEAN_LOSS bottom: "ip" bottom: "y" top: "loss" }}
"""


def dataset(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((NUM, C, 1, 1)).astype(np.float32)
    y = rng.standard_normal(NUM).astype(np.float32)
    return x, y


def make_solver(tmp_path, extra="", batch=4, device="cpu", net_kw=None, seed=1, **kw):
    net_file = tmp_path / "ls.prototxt"
    net_file.write_text(ls_net(batch, **(net_kw or {})))
    text = f'net: "{net_file}"\nsnapshot_prefix: "{tmp_path}/ls"\nsolver_mode: CPU\n' \
           f"random_seed: {seed}\n" + extra
    solver_file = tmp_path / "solver.prototxt"
    solver_file.write_text(text)
    s = dc.SGDSolver(str(solver_file), device=device, log=dc.log.GLog(enabled=False), **kw)
    x, y = dataset()
    s.net.layer("data").set_input_arrays(x, y)
    return s


def _batch_gradient(w, b, x, y, batch, iter_size, k):
    """The gradient of |x w + b - y|^2 / (2 batch) averaged over iter_size batches from batch
    k on, and the next batch index."""
    nb = len(x) // batch
    gw, gb = np.zeros_like(w), 0.0
    for _ in range(iter_size):
        sl = slice((k % nb) * batch, (k % nb + 1) * batch)
        r = x[sl] @ w + b - y[sl]
        gw += x[sl].T @ r / batch
        gb += r.sum() / batch
        k += 1
    return gw / iter_size, gb / iter_size, k


def regularized(reg, weight_decay, w, b, gw, gb, wd, bd):
    """Caffe's Regularize on the weight blob w and the bias blob b, each on its own."""
    def term(v, mult):
        v = np.atleast_1d(np.asarray(v, np.float64))
        if reg == "L2":
            t = v
        elif reg == "L1":
            t = np.sign(v)
        else:       # DeepLab v1's L2sqrt: the gradient of |v|, the blob's own L2 norm
            t = v / max(np.sqrt(np.sum(v * v)), 1e-6)
        return weight_decay * mult * t
    return gw + term(w, wd), gb + float(term(b, bd)[0])


def _descend(rule, w, b, x, y, batch, iters, weight_decay, reg, iter_size, w_mults, b_mults,
             state, start_batch):
    """Run ``iters`` steps of a solver type in float64: gradients, Regularize, then
    ``rule(it, w, b, gw, gb, state) -> w, b, state`` with ``state`` the type's history."""
    w, b = np.array(w, np.float64).reshape(-1), float(np.asarray(b).reshape(()))
    x = x.reshape(len(x), -1).astype(np.float64)
    y = y.astype(np.float64)
    k = start_batch
    for it in range(iters):
        gw, gb, k = _batch_gradient(w, b, x, y, batch, iter_size, k)
        gw, gb = regularized(reg, weight_decay, w, b, gw, gb, w_mults[1], b_mults[1])
        w, b, state = rule(it, w, b, gw, gb, state)
    return w, b, state


def _one_history(hw, hb, w):
    return (np.zeros(np.size(w)) if hw is None else np.array(hw, np.float64).reshape(-1),
            0.0 if hb is None else float(np.asarray(hb).reshape(())))


def reference_adagrad(w, b, x, y, batch, iters, rates, delta, weight_decay=0.0, reg="L2",
                      iter_size=1, w_mults=(1.0, 1.0), b_mults=(2.0, 0.5), hw=None, hb=None,
                      start_batch=0):
    """Caffe's AdaGrad on the same loss, float64: h += g^2, x -= lr g / (sqrt(h) + delta).
    Returns w, b, hw, hb."""
    def rule(it, w, b, gw, gb, state):
        hw, hb = state
        hw, hb = hw + gw * gw, hb + gb * gb
        w = w - rates[it] * w_mults[0] * gw / (np.sqrt(hw) + delta)
        b = b - rates[it] * b_mults[0] * gb / (np.sqrt(hb) + delta)
        return w, b, (hw, hb)
    w, b, (hw, hb) = _descend(rule, w, b, x, y, batch, iters, weight_decay, reg, iter_size,
                              w_mults, b_mults, _one_history(hw, hb, w), start_batch)
    return w, b, hw, hb


def reference_sgd(w, b, x, y, batch, iters, rates, momentum, weight_decay, reg="L2",
                  iter_size=1, w_mults=(1.0, 1.0), b_mults=(2.0, 0.5), vw=None, vb=None,
                  start_batch=0, nesterov=False):
    """Caffe's SGD on loss = |x w + b - y|^2 / (2 batch), float64.  Returns w, b, vw, vb."""
    def rule(it, w, b, gw, gb, state):
        vw, vb = state
        pw, pb = vw.copy(), vb
        vw = momentum * vw + rates[it] * w_mults[0] * gw
        vb = momentum * vb + rates[it] * b_mults[0] * gb
        if nesterov:
            return (w - ((1 + momentum) * vw - momentum * pw),
                    b - ((1 + momentum) * vb - momentum * pb), (vw, vb))
        return w - vw, b - vb, (vw, vb)
    w, b, (vw, vb) = _descend(rule, w, b, x, y, batch, iters, weight_decay, reg, iter_size,
                              w_mults, b_mults, _one_history(vw, vb, w), start_batch)
    return w, b, vw, vb


def reference_rmsprop(w, b, x, y, batch, iters, rates, rms_decay, delta, weight_decay=0.0,
                      reg="L2", w_mults=(1.0, 1.0), b_mults=(2.0, 0.5)):
    """Caffe's RMSProp, float64: E[g^2] = d E[g^2] + (1 - d) g^2,
    x -= lr g / (sqrt(E[g^2]) + delta).  Returns w, b, (E_w, E_b)."""
    def rule(it, w, b, gw, gb, state):
        ew, eb = state
        ew = rms_decay * ew + (1 - rms_decay) * gw ** 2
        eb = rms_decay * eb + (1 - rms_decay) * gb ** 2
        return (w - rates[it] * w_mults[0] * gw / (np.sqrt(ew) + delta),
                b - rates[it] * b_mults[0] * gb / (np.sqrt(eb) + delta), (ew, eb))
    return _descend(rule, w, b, x, y, batch, iters, weight_decay, reg, 1, w_mults, b_mults,
                    (np.zeros(np.size(w)), 0.0), 0)


def reference_adadelta(w, b, x, y, batch, iters, rates, momentum, delta, weight_decay=0.0,
                       reg="L2", w_mults=(1.0, 1.0), b_mults=(2.0, 0.5)):
    """Zeiler's AdaDelta as Caffe runs it, float64, parameter by parameter:
    E[g^2] <- rho E[g^2] + (1 - rho) g^2; dx = g RMS[dx] / RMS[g] with RMS[z] = sqrt(E[z^2] +
    delta); E[dx^2] <- rho E[dx^2] + (1 - rho) dx^2; x -= lr dx.
    Returns w, b, ((E[g^2]_w, E[g^2]_b), (E[dx^2]_w, E[dx^2]_b))."""
    def one(g, eg, edx, rate):
        eg = momentum * eg + (1 - momentum) * g * g
        dx = g * np.sqrt(edx + delta) / np.sqrt(eg + delta)
        return rate * dx, eg, momentum * edx + (1 - momentum) * dx * dx

    def rule(it, w, b, gw, gb, state):
        (egw, egb), (edw, edb) = state
        uw, egw, edw = one(gw, egw, edw, rates[it] * w_mults[0])
        ub, egb, edb = one(gb, egb, edb, rates[it] * b_mults[0])
        return w - uw, b - ub, ((egw, egb), (edw, edb))
    zero = (np.zeros(np.size(w)), 0.0)
    return _descend(rule, w, b, x, y, batch, iters, weight_decay, reg, 1, w_mults, b_mults,
                    (zero, zero), 0)


def reference_adam(w, b, x, y, batch, iters, rates, beta1, beta2, eps, weight_decay=0.0,
                   reg="L2", w_mults=(1.0, 1.0), b_mults=(2.0, 0.5)):
    """Kingma & Ba's Adam in the form Caffe runs it (eps added to sqrt(v), not to the corrected
    sqrt(v_hat)), float64, with t counted from 1:
    m <- b1 m + (1 - b1) g; v <- b2 v + (1 - b2) g^2;
    x -= lr sqrt(1 - b2^t) / (1 - b1^t) m / (sqrt(v) + eps).
    Returns w, b, ((m_w, m_b), (v_w, v_b))."""
    def one(g, m, v, rate, t):
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        return rate * np.sqrt(1 - beta2 ** t) / (1 - beta1 ** t) * m / (np.sqrt(v) + eps), m, v

    def rule(it, w, b, gw, gb, state):
        (mw, mb), (vw, vb) = state
        uw, mw, vw = one(gw, mw, vw, rates[it] * w_mults[0], it + 1)
        ub, mb, vb = one(gb, mb, vb, rates[it] * b_mults[0], it + 1)
        return w - uw, b - ub, ((mw, mb), (vw, vb))
    zero = (np.zeros(np.size(w)), 0.0)
    return _descend(rule, w, b, x, y, batch, iters, weight_decay, reg, 1, w_mults, b_mults,
                    (zero, zero), 0)
