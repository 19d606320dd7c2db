"""Naive references for the CRF tests: a dict-based permutohedral lattice written from Adams et al.
and densecrf's description, a brute-force O(P^2) Gaussian filter, and an exact mean-field."""
import math

import numpy as np
import torch


def naive_lattice_filter(features, values, reverse=False):
    """densecrf's Permutohedral compute on (P, d) float32 features and (P, C) values, with Python
    loops and a dict as the hash table (float32 arithmetic like the kernel)."""
    f32 = np.float32
    P, d = features.shape
    inv_std = f32(math.sqrt(2.0 / 3.0) * (d + 1))
    scale = [f32(1.0 / math.sqrt((i + 2) * (i + 1)) * inv_std) for i in range(d)]
    verts, corners = {}, []
    for p in range(P):
        el = [f32(0)] * (d + 1)
        sm = f32(0)
        for j in range(d, 0, -1):
            cf = f32(features[p, j - 1]) * scale[j - 1]
            el[j] = sm - f32(j) * cf
            sm = sm + cf
        el[0] = sm
        v = [f32(np.rint(f32(1.0 / (d + 1)) * e)) for e in el]
        rem0 = [int(x) * (d + 1) for x in v]
        total = int(sum(int(x) for x in v))
        res = [el[i] - f32(rem0[i]) for i in range(d + 1)]
        rank = [0] * (d + 1)
        for i in range(d):
            for j in range(i + 1, d + 1):
                if res[i] < res[j]:
                    rank[i] += 1
                else:
                    rank[j] += 1
        for i in range(d + 1):
            rank[i] += total
            if rank[i] < 0:
                rank[i] += d + 1
                rem0[i] += d + 1
            elif rank[i] > d:
                rank[i] -= d + 1
                rem0[i] -= d + 1
        b = [f32(0)] * (d + 2)
        for i in range(d + 1):
            t = (el[i] - f32(rem0[i])) * f32(1.0 / (d + 1))
            b[d - rank[i]] += t
            b[d - rank[i] + 1] -= t
        b[0] += f32(1) + b[d + 1]
        row = []
        for r in range(d + 1):
            key = tuple(rem0[i] + (r if rank[i] <= d - r else r - d - 1) for i in range(d))
            row.append((verts.setdefault(key, len(verts)), b[r]))
        corners.append(row)
    keys = list(verts)
    M, C = len(keys), values.shape[1]
    lat = np.zeros((M, C), np.float64)
    for p in range(P):
        for vtx, w in corners[p]:
            lat[vtx] += float(w) * values[p].astype(np.float64)
    axes = range(d, -1, -1) if reverse else range(d + 1)
    for j in axes:
        new = lat.copy()
        for vi, key in enumerate(keys):
            n1 = [k - 1 for k in key]
            n2 = [k + 1 for k in key]
            if j < d:
                n1[j], n2[j] = key[j] + d, key[j] - d
            for n in (tuple(n1), tuple(n2)):
                if n in verts:
                    new[vi] += 0.5 * lat[verts[n]]
        lat = new
    alpha = 1.0 / (1.0 + 2.0 ** (-d))
    out = np.zeros((P, C), np.float64)
    for p in range(P):
        for vtx, w in corners[p]:
            out[p] += float(w) * alpha * lat[vtx]
    return out, M


def gaussian_matrix(features):
    """Exact kernel exp(-|f_i - f_j|^2 / 2) (P, P) in float64, self term included."""
    f = torch.as_tensor(features, dtype=torch.float64)
    return torch.exp(-0.5 * torch.cdist(f, f) ** 2)


def exact_meanfield(unary, kernels, max_iter):
    """unary (P, L) float64; kernels: list of (K (P, P), w) Potts terms normalised after (per-row
    sums), densecrf's update Q <- softmax(-U + sum_k w_k (K_k Q) / (K_k 1))."""
    U = torch.as_tensor(unary, dtype=torch.float64)
    q = torch.softmax(-U, 1)
    for _ in range(max_iter):
        acc = -U.clone()
        for K, w in kernels:
            acc += w * (K @ q) / K.sum(1, keepdim=True)
        q = torch.softmax(acc, 1)
    return q
