"""DeepLab-LargeFOV speed: our Net/SGDSolver against the same network written with torch.nn.

    python tools/bench_net.py [--device cuda] [--json out.json] [--quick] [--tf32] [--load K]
    python tools/bench_net.py --pipeline --load 2 [--rounds 5] [--stages train,test,...]

Cases (the issue's): forward at 513x513 with N=1 and N=10 (TEST phase, up to fc8), and one
training iteration at 321x321 with N=10 and N=30 (forward, SoftmaxLoss on the shrunk label,
backward, SGD update with momentum 0.9 and weight decay 5e-4).  Ours is
prototxt/DeepLab-LargeFOV/train.prototxt with an Input layer in place of ImageSegData, trained
by SGDSolver.step; the reference is F.conv2d / max_pool2d(ceil_mode) / avg_pool2d / dropout /
cross_entropy with torch.optim.SGD, holding the same weights (checked: same fc8 output).  Both
run in one process in the same precision (FP32; --tf32 lets both use TF32).  Prints a table
and writes JSON: images/s for each, and ours / reference.  A last case times ImageSegData alone
(synthetic JPEGs of VOC's sizes, crop 321, --workers loader processes): it must exceed the
training rate so that data never stalls the GPU.  --quick: tiny sizes for a CPU check.
--load K runs K busy processes for the whole benchmark (deeplab_caffe/bench/load.py).
--pipeline times our commands (train, test, segment, the demo) quiet and under --load K in
alternating rounds instead (deeplab_caffe/bench/pipeline.py).
"""
import argparse
import json
import os
import sys
import tempfile

import torch
import torch.nn.functional as F

from ..cli.flags import checkout_path
from ..data.synthetic import make_synthetic_voc
from ..log import GLog
from ..net import Net
from ..proto import parse_net
from ..proto.message import Message
from ..proto.spec import LayerSpec
from ..solver import NetSource, SGDSolver, load_solver
from .load import busy_processes, load_average
from .pipeline import STAGES, bench_pipeline, print_table
from .timing import timed

PROTOTXT = checkout_path("prototxt", "DeepLab-LargeFOV", "train.prototxt")
CONVS = ["conv1_1", "conv1_2", None, "conv2_1", "conv2_2", None, "conv3_1", "conv3_2",
         "conv3_3", None, "conv4_1", "conv4_2", "conv4_3", None, "conv5_1", "conv5_2",
         "conv5_3", None]
POOL_STRIDES = [2, 2, 2, 1, 1]


class LargeFOV(torch.nn.Module):
    """DeepLab-LargeFOV with plain torch ops, weights taken from a built Net."""

    def __init__(self, net, fc8):
        super().__init__()
        self.names = [c for c in CONVS if c] + ["fc6", "fc7", fc8]
        self.w = torch.nn.ParameterList()
        self.b = torch.nn.ParameterList()
        for n in self.names:
            w, b = net.params[n]
            self.w.append(torch.nn.Parameter(w.detach().clone()))
            self.b.append(torch.nn.Parameter(b.detach().clone()))

    def forward(self, x):
        k, pool = 0, 0
        for c in CONVS:
            if c is None:
                x = F.max_pool2d(x, 3, POOL_STRIDES[pool], 1, ceil_mode=True)
                pool += 1
                continue
            dil = 2 if c.startswith("conv5") else 1
            x = F.relu(F.conv2d(x, self.w[k], self.b[k], padding=dil, dilation=dil), inplace=True)
            k += 1
        x = F.avg_pool2d(x, 3, 1, 1, ceil_mode=True, count_include_pad=True)
        x = F.relu(F.conv2d(x, self.w[k], self.b[k], padding=12, dilation=12), inplace=True)
        x = F.dropout(x, 0.5, self.training)
        x = F.relu(F.conv2d(x, self.w[k + 1], self.b[k + 1]), inplace=True)
        x = F.dropout(x, 0.5, self.training)
        return F.conv2d(x, self.w[k + 2], self.b[k + 2])


def net_spec(n, size, num_labels, prototxt):
    spec = parse_net(prototxt, defines={"NUM_LABELS": num_labels, "EXP": "voc12",
                                        "NET_ID": "DeepLab-LargeFOV", "DATA_ROOT": ".",
                                        "TRAIN_SET": "train_aug"})
    shapes = [Message("BlobShape", {"dim": [n, 3, size, size]}),
              Message("BlobShape", {"dim": [n, 1, size, size]})]
    data = LayerSpec(name="data", type="Input", top=["data", "label"], message=Message(
        "LayerParameter", {"input_param": Message("InputParameter", {"shape": shapes})}))
    spec.layers = [data] + [l for l in spec.layers if l.type != "ImageSegData"]
    return spec


def he_init(net, seed=0):
    """The prototxt has no fillers below fc8 (weights come from the init model): fill every
    weight with N(0, 2 / fan_in) so that the outputs compared are not all zero."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for w, b in net.params.values():
            fan_in = w[0].numel()
            w.copy_(torch.randn(w.shape, generator=g) * (2.0 / fan_in) ** 0.5)
            b.copy_(torch.randn(b.shape, generator=g) * 0.01)


def inputs(n, size, num_labels, device, seed=0):
    g = torch.Generator().manual_seed(seed)
    data = torch.randn(n, 3, size, size, generator=g) * 50
    label = torch.randint(0, num_labels, (n, 1, size, size), generator=g).float()
    label[:, :, :size // 8] = 255
    return data.to(device), label.to(device)


def bench_forward(n, size, device, args):
    spec = net_spec(n, size, args.num_labels, args.prototxt)
    net = Net(spec, phase="TEST", device=device)
    he_init(net)
    fc8 = [l for l in net.layer_names if l.startswith("fc8")][0]
    ref = LargeFOV(net, fc8).to(device).eval()
    data, label = inputs(n, size, args.num_labels, device)
    with torch.no_grad():
        net.forward(end=fc8, data=data, label=label)
        ours = net.blobs[fc8].clone()
        theirs = ref(data)
        err = float((ours - theirs).abs().max() / theirs.abs().max().clamp_min(1e-12))
        t_ours = timed(lambda: net.forward(end=fc8, data=data, label=label), device,
                       args.iters, args.warmup)
        t_ref = timed(lambda: ref(data), device, args.iters, args.warmup)
    return dict(case=f"forward {size}x{size} N={n}", ours_img_s=n / t_ours,
                torch_img_s=n / t_ref, ratio=t_ref / t_ours, max_rel_diff=err)


def bench_train(n, size, device, args):
    spec = net_spec(n, size, args.num_labels, args.prototxt)
    solver_spec = load_solver('net: "bench"\nbase_lr: 0.001\nlr_policy: "fixed"\n'
                              'momentum: 0.9\nweight_decay: 0.0005\nsolver_mode: CPU\n')
    solver_spec.train_net = NetSource(spec, "TRAIN", None, "train net")
    solver = SGDSolver(solver_spec, device=device, log=GLog(enabled=False))
    he_init(solver.net)
    fc8 = [l for l in solver.net.layer_names if l.startswith("fc8")][0]
    ref = LargeFOV(solver.net, fc8).to(device).train()
    data, label = inputs(n, size, args.num_labels, device)
    solver.net.layer("data").forward(data, label)
    opt = torch.optim.SGD(ref.parameters(), lr=0.001, momentum=0.9, weight_decay=0.0005)
    target = label[:, 0, ::8, ::8].long()

    def ref_step():
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(ref(data), target, ignore_index=255)
        loss.backward()
        opt.step()
        return loss.item()

    t_ours = timed(lambda: solver.step(1), device, args.iters, args.warmup)
    t_ref = timed(ref_step, device, args.iters, args.warmup)
    return dict(case=f"train {size}x{size} N={n}", ours_img_s=n / t_ours, torch_img_s=n / t_ref,
                ratio=t_ref / t_ours)


def bench_data(n, crop, workers, device, args):
    """ImageSegData on the synthetic VOC-style set (JPEG images of VOC's sizes), with
    ``workers`` loader processes and pinned memory on CUDA: images/s delivered to the device."""
    root = tempfile.mkdtemp(prefix="bench_data_")
    size = ((100, 140), (100, 140)) if args.quick else ((330, 500), (330, 500))
    make_synthetic_voc(root, num_train=4 * n, num_val=1, size=size, seed=0)
    net = Net(f"""name: "data"
layer {{ name: "data" type: "ImageSegData" top: "data" top: "label"
  image_data_param {{ root_folder: "{root}" source: "{root}/list/train_aug.txt"
    label_type: PIXEL batch_size: {n} shuffle: true }}
  transform_param {{ mean_value: 104.008 mean_value: 116.669 mean_value: 122.675
    crop_size: {crop} mirror: true }} }}""", phase="TRAIN", device=device)
    layer = net.layer("data")
    layer.num_workers, layer.pin_memory = workers, device.type == "cuda"
    t = timed(lambda: net.forward(), device, args.iters * 2, args.warmup)
    layer.close()
    return dict(case=f"data {crop}x{crop} N={n} workers={workers}", ours_img_s=n / t,
                torch_img_s=None, ratio=None)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--json", help="write the results here")
    p.add_argument("--quick", action="store_true", help="tiny sizes (CPU check)")
    p.add_argument("--tf32", action="store_true", help="allow TF32 in both")
    p.add_argument("--iters", type=int, default=None)
    p.add_argument("--warmup", type=int, default=None)
    p.add_argument("--num-labels", dest="num_labels", type=int, default=21)
    p.add_argument("--prototxt", default=PROTOTXT)
    p.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1),
                   help="loader processes for the data case")
    p.add_argument("--load", type=int, default=0, help="busy background processes (default 0)")
    p.add_argument("--pipeline", action="store_true",
                   help="time our commands quiet and under --load K instead")
    p.add_argument("--rounds", type=int, default=5, help="--pipeline: rounds (default 5)")
    p.add_argument("--stages", default=",".join(STAGES),
                   help=f"--pipeline: comma list of {', '.join(STAGES)}")
    p.add_argument("--keep", help="--pipeline: work in this folder and keep it")
    args = p.parse_args(argv)
    if args.load < 0:
        p.error(f"--load must be >= 0, got {args.load}")
    if args.pipeline:
        return pipeline_main(p, args)
    with busy_processes(args.load):
        return cases_main(args)


def pipeline_main(p, args):
    stages = [s for s in args.stages.split(",") if s]
    bad = [s for s in stages if s not in STAGES]
    if bad or not stages:
        p.error(f"--stages takes a comma list of {', '.join(STAGES)}, got {args.stages!r}")
    try:
        info = bench_pipeline(args.load, args.rounds, stages, args.keep)
    except ValueError as e:
        p.error(str(e))
    info["torch"] = torch.__version__
    print_table(info)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(info, f, indent=2)
    return 0


def cases_main(args):
    device = torch.device(args.device)
    torch.backends.cudnn.allow_tf32 = args.tf32
    torch.backends.cuda.matmul.allow_tf32 = args.tf32
    torch.backends.cudnn.benchmark = True
    if args.quick:
        fwd, train = [(1, 65), (2, 65)], [(2, 65)]
        args.iters, args.warmup = args.iters or 2, args.warmup or 1
    else:
        fwd, train = [(1, 513), (10, 513)], [(10, 321), (30, 321)]
        args.iters, args.warmup = args.iters or 10, args.warmup or 3
    results = [bench_forward(n, s, device, args) for n, s in fwd]
    results += [bench_train(n, s, device, args) for n, s in train]
    results.append(bench_data(train[0][0], train[0][1], args.workers, device, args))
    info = dict(device=torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
                torch=torch.__version__, tf32=args.tf32, iters=args.iters, load=args.load,
                load_average=load_average(), results=results)
    print(f"device: {info['device']}, tf32: {args.tf32}")
    print(f"{'case':<26} {'ours img/s':>11} {'torch img/s':>12} {'ours/torch':>10}")
    for r in results:
        if r["ratio"] is None:
            print(f"{r['case']:<26} {r['ours_img_s']:11.2f} {'-':>12} {'-':>10}")
            continue
        print(f"{r['case']:<26} {r['ours_img_s']:11.2f} {r['torch_img_s']:12.2f} "
              f"{r['ratio']:10.3f}" + (f"   (fc8 max rel diff {r['max_rel_diff']:.1e})"
                                       if "max_rel_diff" in r else ""))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(info, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
