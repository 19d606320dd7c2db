"""deeplab-caffe: Caffe's ``caffe`` command line (tools/caffe.cpp), for DeepLab's scripts.

    deeplab-caffe <command> <args>        (or: python -m deeplab_caffe <command> <args>)

commands:
  train           train or finetune a model
  test            score a model
  device_query    show GPU diagnostic information
  time            benchmark model execution time
  save            load and save model (DeepLab's Caffe)

Flags are read as gflags reads them: ``-solver x``, ``--solver=x`` and ``--solver x``; a flag
given twice keeps the last value; flags may come before or after the command.

  -gpu          GPU ids separated by ',', 'all', or empty / -1 for the CPU.  Without the flag,
                train follows the solver's solver_mode and device_id; test and time use the CPU.
                test and time use the first GPU of a list.
  -solver       the solver prototxt (train)
  -model        the net prototxt (test, time)
  -weights      .caffemodel files to finetune from, separated by ',' (train); the weights to
                score (test, required)
  -snapshot     the .solverstate to resume from (train; not with -weights)
  -out_weights  where save writes the weights (.caffemodel; V1 for a net in V1 / DeepLab v1
                syntax, as DeepLab's Caffe writes them, else V2; or .pt)
  -iterations   forward passes of test, benchmark iterations of time (default 50); for train,
                when given, it replaces the solver's max_iter
  -level        the net state's level (default 0, replacing the solver's train_state level)
  -stage        net state stages, separated by ','
  -phase        TRAIN or TEST (time; default TRAIN)
  -sigint_effect / -sighup_effect   snapshot, stop or none (train; defaults stop / snapshot)
  -define       KEY=VALUE, fills ${KEY} in the prototxt files (ours; repeatable)

Logging is glog's: every line goes to stderr and, when $GLOG_log_dir is set, to glog's files
there (deeplab-caffe.<host>.<user>.log.INFO.<date-time>.<pid>, with a deeplab-caffe.INFO
symlink; likewise WARNING, ERROR).

Exit status, as Caffe's: 0 when the command is done (also for a missing command: usage is
printed, and for -version); 1 for a bad command line (unknown flag, flag without its value, a
bad number) and for -help; 134 (Caffe's abort) for a fatal error: a missing required flag, an
unknown command, a file that cannot be read, a net that cannot be built, a diverged loss.  The
error is logged as a glog ``F`` line first.
"""
import sys

import numpy as np
import torch

from ..errors import CaffeError
from ..log import GLog, fmt, init_logging, shutdown_logging
from ..proto.tokenizer import CaffeDefines
from .flags import devices_from_gpu, parse_defines

# The glog tags (caffe.cpp:N) point near the lines of BVLC's tools/caffe.cpp that print the same
# messages, so that a grep for caffe.cpp finds them; the numbers are approximate, as they moved
# between Caffe versions.
PROGRAM = "deeplab-caffe"
EXIT_USAGE, EXIT_FATAL = 1, 134
EFFECTS = ("stop", "snapshot", "none")
# name -> (type, default); gflags' DEFINE_string / DEFINE_int32 of tools/caffe.cpp.
FLAGS = {"gpu": (str, ""), "solver": (str, ""), "model": (str, ""), "phase": (str, ""),
         "level": (int, 0), "stage": (str, ""), "snapshot": (str, ""), "weights": (str, ""), "out_weights": (str, ""),
         "iterations": (int, 50), "sigint_effect": (str, "stop"),
         "sighup_effect": (str, "snapshot"), "define": (list, [])}
USAGE = __doc__[__doc__.index("    deeplab-caffe <command>"):__doc__.index("Flags are read")]


class UsageError(Exception):
    """A command line gflags would refuse (exit status 1)."""


class Fatal(Exception):
    """What Caffe reports with LOG(FATAL) or a failed CHECK (exit status 134)."""


def parse_command_line(argv):
    """(commands, flags, given): the words that are not flags, every flag's value (defaults
    filled in) and the names of the flags given."""
    flags = {k: (list(d) if t is list else d) for k, (t, d) in FLAGS.items()}
    given, words = set(), []
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if arg == "--":
            words.extend(argv[i:])
            break
        if not arg.startswith("-") or arg == "-":
            words.append(arg)
            continue
        name, eq, value = arg.lstrip("-").partition("=")
        if name in ("help", "helpfull", "helpshort"):
            raise UsageError(None)
        if name == "version":
            raise UsageError("version")
        if name not in FLAGS:
            raise UsageError(f"unknown command line flag '{name}'")
        if not eq:
            if i >= len(argv):
                raise UsageError(f"flag '{name}' is missing its argument")
            value = argv[i]
            i += 1
        kind = FLAGS[name][0]
        if kind is int:
            try:
                value = int(value)
            except ValueError:
                raise UsageError(f"illegal value '{value}' specified for int32 flag "
                                 f"'{name}'") from None
        if kind is list:
            flags[name].append(value)
        else:
            flags[name] = value
        given.add(name)
    return words, flags, given


def defines_of(flags):
    """--define as CaffeDefines: a ``${NAME}`` nobody defines stays literal in strings, as the
    ``caffe`` binary (which has no placeholders) reads it."""
    return CaffeDefines(parse_defines(flags["define"]))


def need(flags, name, what):
    if not flags[name]:
        raise Fatal(f"Check failed: FLAGS_{name}.size() > 0 (0 vs. 0) {what}")


def stages_of(flags):
    return [s for s in flags["stage"].split(",") if s]


def signal_effect(value):
    if value not in EFFECTS:
        raise Fatal(f'Invalid signal effect "{value}" was specified')
    return value


def one_device(flags, log):
    """test / time: the first device of -gpu (Caffe's get_gpus, then one GPU only)."""
    devices = devices_from_gpu(flags["gpu"])
    for extra in reversed(devices[1:]):
        log.info("caffe.cpp:270", f"Not using GPU #{extra.split(':')[1]} for single-GPU "
                 "function")
    device = devices[0]
    if device == "cpu":
        log.info("caffe.cpp:284", "Use CPU.")
    else:
        log.info("caffe.cpp:276", f"Use GPU with device ID {device.split(':')[1]}")
        log.info("caffe.cpp:280", f"GPU device name: {torch.cuda.get_device_name(device)}")
    return torch.device(device)


def train(flags, given, log):
    from types import SimpleNamespace
    from .train_net import train as run_training
    need(flags, "solver", "Need a solver definition to train.")
    if flags["snapshot"] and flags["weights"]:
        raise Fatal("Check failed: !FLAGS_snapshot.size() || !FLAGS_weights.size() Give a "
                    "snapshot to resume training or weights to finetune but not both.")
    gpu = flags["gpu"] if "gpu" in given else None
    if gpu is not None and gpu.strip() in ("", "-1"):
        log.info("caffe.cpp:212", "Use CPU.")
    elif gpu is not None:
        log.info("caffe.cpp:219", f"Using GPUs {gpu}")
    args = SimpleNamespace(
        solver=flags["solver"], weights=flags["weights"] or None,
        snapshot=flags["snapshot"] or None, gpu=gpu, defines=defines_of(flags),
        iterations=flags["iterations"] if "iterations" in given else None,
        level=flags["level"], stage=stages_of(flags),
        sigint_effect=signal_effect(flags["sigint_effect"]),
        sighup_effect=signal_effect(flags["sighup_effect"]),
        workers=None, log=None, cpu_ranks=1)
    log.info("caffe.cpp:251", "Starting Optimization")
    status = run_training(args)
    if status == 0:
        log.info("caffe.cpp:262", "Optimization Done.")
    return status


def test(flags, given, log):
    """Caffe's test(): ``-iterations`` forward passes of the TEST net, each output element
    logged per batch, then the loss and each element's mean (times its loss weight when it has
    one)."""
    from ..net import Net
    need(flags, "model", "Need a model definition to score.")
    need(flags, "weights", "Need model weights to score.")
    device = one_device(flags, log)
    net = Net(flags["model"], phase="TEST", device=device, level=flags["level"],
              stages=stages_of(flags), defines=defines_of(flags))
    net.copy_from(flags["weights"])
    iterations = flags["iterations"]
    log.info("caffe.cpp:290", f"Running for {iterations} iterations.")
    weights = {t: w for tops, ws in zip(net._tops, net._loss_weights) for t, w in zip(tops, ws)}
    scores, names, loss = None, [], np.float32(0)
    with torch.no_grad():
        for i in range(iterations):
            outputs = net.forward()
            loss += np.float32(net.loss.item())
            values = [v.detach().float().cpu().reshape(-1).numpy() for v in outputs.values()]
            if scores is None:
                names = [n for n, v in zip(outputs, values) for _ in range(v.size)]
                scores = np.zeros(len(names), dtype=np.float32)
            flat = np.concatenate(values) if values else np.zeros(0, dtype=np.float32)
            scores += flat
            # f"{x:.6g}" prints a float as fmt does, without its per-call checks.
            log.info_lines("caffe.cpp:313", [f"Batch {i}, {name} = {score:.6g}"
                                             for name, score in zip(names, flat.tolist())])
    loss /= max(iterations, 1)
    log.info("caffe.cpp:318", f"Loss: {fmt(loss)}")
    means = (scores / np.float32(iterations)).tolist() if scores is not None else []
    log.info_lines("caffe.cpp:330", [mean_line(n, m, weights.get(n, 0.0))
                                     for n, m in zip(names, means)])
    return 0


def mean_line(name, mean, loss_weight):
    """Caffe's line for an output's mean score, with its weighted loss when it has a weight."""
    extra = (f" (* {fmt(loss_weight)} = {fmt(np.float32(loss_weight) * np.float32(mean))} loss)"
             if loss_weight else "")
    return f"{name} = {mean:.6g}{extra}"


def time(flags, given, log):
    """Caffe's time(): a clean forward and backward, then ``-iterations`` of layer-by-layer
    forward and backward, each layer timed."""
    import time as clock
    from ..net import Net
    from .time_net import time_layers
    need(flags, "model", "Need a model definition to time.")
    phase = flags["phase"] or "TRAIN"
    if phase not in ("TRAIN", "TEST"):
        raise Fatal('phase must be "TRAIN" or "TEST"')
    device = one_device(flags, log)
    net = Net(flags["model"], phase=phase, device=device, level=flags["level"],
              stages=stages_of(flags), defines=defines_of(flags))
    iterations = flags["iterations"]
    log.info("caffe.cpp:352", "*** Benchmark begins ***")
    log.info("caffe.cpp:353", f"Testing for {iterations} iterations.")
    start = clock.perf_counter()
    rows, fwd, bwd, whole = time_layers(
        net, iterations, device,
        on_iteration=lambda j, ms: log.info(
            "caffe.cpp:381", f"Iteration: {j} forward-backward time: {fmt(ms)} ms."))
    total = (clock.perf_counter() - start) * 1e3
    log.info("caffe.cpp:384", "Average time per layer: ")
    for r in rows:
        log.info("caffe.cpp:387", f"{r['layer']:>10}\tforward: {fmt(r['forward_ms'])} ms.")
        log.info("caffe.cpp:390", f"{r['layer']:>10}\tbackward: {fmt(r['backward_ms'])} ms.")
    log.info("caffe.cpp:395", f"Average Forward pass: {fmt(fwd)} ms.")
    log.info("caffe.cpp:397", f"Average Backward pass: {fmt(bwd)} ms.")
    log.info("caffe.cpp:399", f"Average Forward-Backward: {fmt(whole)} ms.")
    log.info("caffe.cpp:401", f"Total Time: {fmt(total)} ms.")
    log.info("caffe.cpp:402", "*** Benchmark ends ***")
    return 0


def save(flags, given, log):
    """DeepLab's ``caffe save``: the TRAIN net of -model with -weights copied in, written to
    -out_weights."""
    from ..net import Net
    from ..net_weights import native_format
    need(flags, "model", "Need a model definition that specifies the arch for the model to "
                         "save.")
    need(flags, "weights", "Need model weights to get the parameters from.")
    need(flags, "out_weights", "Give filename where to save the network parameters + "
                               "weights.")
    net = Net(flags["model"], phase="TRAIN", device="cpu", level=flags["level"],
              stages=stages_of(flags), defines=defines_of(flags))
    net.copy_from(flags["weights"])
    log.info("caffe.cpp:261", f"Snapshotting to {flags['out_weights']}")
    net.save(flags["out_weights"], format=native_format(net))
    return 0


def device_query(flags, given, log):
    log.info("caffe.cpp:117", f"Querying GPUs {flags['gpu']}")
    for device in devices_from_gpu(flags["gpu"]):
        if device == "cpu":
            continue
        p = torch.cuda.get_device_properties(device)
        for label, value in (
                ("Device id", device.split(":")[1]), ("Major revision number", p.major),
                ("Minor revision number", p.minor), ("Name", p.name),
                ("Total global memory", p.total_memory),
                ("Multiprocessor count", p.multi_processor_count)):
            log.info("common.cpp:178", f"{label + ':':<31}{value}")
    return 0


COMMANDS = {"device_query": device_query, "save": save, "test": test, "time": time,
            "train": train}


def run_command(words, flags, given, log):
    """The exit status of one command; a Fatal or CaffeError is logged as glog's F line."""
    from ..solver import DivergedError
    try:
        if words[0] not in COMMANDS:
            log.error("caffe.cpp:84", "Available caffe actions:")
            for name in sorted(COMMANDS):
                log.error("caffe.cpp:87", f"\t{name}")
            raise Fatal(f"Unknown action: {words[0]}")
        return COMMANDS[words[0]](flags, given, log)
    except (Fatal, CaffeError, OSError) as e:
        log.fatal("caffe.cpp:84", str(e))
        return EXIT_FATAL
    except DivergedError as e:
        log.fatal("solver.cpp:222", str(e) or "the loss diverged")
        return EXIT_FATAL


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        words, flags, given = parse_command_line(argv)
    except UsageError as e:
        if e.args[0] == "version":
            from .. import __version__
            print(f"{PROGRAM} version {__version__}")
            return 0
        if e.args[0]:
            print(f"ERROR: {e.args[0]}", file=sys.stderr)
        else:
            print(f"{PROGRAM}: command line brew\nusage:\n{USAGE}", file=sys.stdout)
        return EXIT_USAGE
    if len(words) != 1:
        print(f"{PROGRAM}: command line brew\nusage:\n{USAGE}", file=sys.stderr)
        return 0
    init_logging(PROGRAM)
    log = GLog()
    try:
        return run_command(words, flags, given, log)
    finally:
        shutdown_logging()


if __name__ == "__main__":
    sys.exit(main())
