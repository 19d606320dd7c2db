"""Where each data layer of a net stands: the batches it has served, so that a resumed run (and
each rank of a distributed one) reads exactly the samples the uninterrupted one-process run
would read next.  ImageSegData's position is its CaffeOrder (seeded shuffle) advanced by the
batches served, sliced per rank by ShardedOrder; MemoryData's is an offset into its arrays."""
from ..data.image_seg_data import CaffeOrder


def data_layers(net):
    """(name, layer) for every layer that serves batches (no bottoms, a data type)."""
    kinds = ("ImageSegData", "MemoryData", "DummyData")
    return [(n, l) for n, l in zip(net.layer_names, net.layers) if l.type_name in kinds]


def seek_data(net, batches, seeds=None):
    """Put each data layer of ``net`` where it is after serving ``batches`` batches from setup."""
    seeds = seeds or {}
    for name, layer in data_layers(net):
        if layer.type_name == "ImageSegData":
            seed = seeds.get(name)
            if seed is not None:
                layer.seed = seed
            p = layer.param("image_data_param")
            base = CaffeOrder(len(layer.dataset), layer.batch_size,
                              shuffle=bool(p.get("shuffle", False)),
                              rand_skip=int(p.get("rand_skip", 0)), seed=layer.seed)
            for _ in range(batches):
                base.next_batch()
            shard = getattr(layer, "dc_shard", None)
            layer.order = ShardedOrder(base, *shard) if shard else base
            layer.close()
        elif layer.type_name == "MemoryData" and getattr(layer, "_data", None) is not None:
            layer._pos = (batches * layer.batch_size) % layer._data.shape[0]


def batches_from_iter(solver, iter):
    """Batches served by each net after ``iter`` updates in one uninterrupted run."""
    spec = solver.spec
    out = [iter * spec.iter_size]
    tests = 0
    if spec.test_interval:
        # Step tests at the top of the iteration, before the update: k = 0, ti, 2ti, ... < iter.
        tests = len([k for k in range(0, iter, spec.test_interval)
                     if k > 0 or spec.test_initialization])
    out += [tests * n for n in spec.test_iter]
    return out


class ShardedOrder:
    """Rank ``rank``'s slice of each batch of ``base`` (a CaffeOrder drawn with the same seed on
    every rank), so that the ranks together read exactly the one-process batch."""

    def __init__(self, base, rank, world_size):
        self.base, self.rank, self.world_size = base, rank, world_size
        self.batch_size = base.batch_size // world_size

    def next_batch(self):
        keys = self.base.next_batch()
        return keys[self.rank * self.batch_size:(self.rank + 1) * self.batch_size]

    def __iter__(self):
        while True:
            yield self.next_batch()
