"""A least-squares net for solver tests (as Caffe's test_gradient_based_solver): MemoryData
(N, C, 1, 1) -> InnerProduct(1) -> EuclideanLoss against the labels, and a numpy reference of
Caffe's SGD on it in closed form (float64)."""
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


def reference_sgd(w, b, x, y, batch, iters, rates, momentum, weight_decay, reg="L2",
                  iter_size=1, w_mults=(1.0, 1.0), b_mults=(2.0, 0.5), vw=None, vb=None,
                  start_batch=0, nesterov=False):
    """Caffe's SGD on loss = |x w + b - y|^2 / (2 batch), float64.  Returns w, b, vw, vb."""
    w, b = np.array(w, np.float64).reshape(-1), float(np.asarray(b).reshape(()))
    x = x.reshape(len(x), -1).astype(np.float64)
    y = y.astype(np.float64)
    vw = np.zeros_like(w) if vw is None else np.array(vw, np.float64).reshape(-1)
    vb = 0.0 if vb is None else float(np.asarray(vb).reshape(()))
    nb = len(x) // batch
    k = start_batch
    for it in range(iters):
        gw, gb = np.zeros_like(w), 0.0
        for _ in range(iter_size):
            sl = slice((k % nb) * batch, (k % nb + 1) * batch)
            r = x[sl] @ w + b - y[sl]
            gw += x[sl].T @ r / batch
            gb += r.sum() / batch
            k += 1
        gw, gb = gw / iter_size, gb / iter_size
        (wl, wd), (bl, bd) = w_mults, b_mults
        if reg == "L2":
            gw, gb = gw + weight_decay * wd * w, gb + weight_decay * bd * b
        else:
            gw, gb = gw + weight_decay * wd * np.sign(w), gb + weight_decay * bd * np.sign(b)
        pw, pb = vw.copy(), vb
        vw = momentum * vw + rates[it] * wl * gw
        vb = momentum * vb + rates[it] * bl * gb
        if nesterov:
            w = w - ((1 + momentum) * vw - momentum * pw)
            b = b - ((1 + momentum) * vb - momentum * pb)
        else:
            w, b = w - vw, b - vb
    return w, b, vw, vb
