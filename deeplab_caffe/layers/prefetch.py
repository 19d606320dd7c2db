"""Caffe's BasePrefetchingDataLayer: a background thread fills a queue of batches while the net
runs (``data_param.prefetch``, default 4, for every subclass here).

A subclass implements ``load_batch() -> tuple of numpy arrays`` (called on the prefetch thread,
in order, so a seeded layer gives the same batches whatever the timing).  An error in the thread
is raised by the forward that would have received that batch, naming the layer.  ``close()``
stops the thread (a daemon thread: it never keeps the process alive).
"""
import queue
import threading
import weakref

import numpy as np
import torch

from ..errors import CaffeError
from .base_data import DataLayer

DEFAULT_PREFETCH = 4


class PrefetchingDataLayer(DataLayer):
    prefetch = DEFAULT_PREFETCH

    def __init__(self, spec, phase="TEST"):
        super().__init__(spec, phase)
        self.seed = None
        self._queue = None
        self._thread = None
        self._stop = threading.Event()

    def make_rng(self):
        """The layer's numpy Generator: from ``layer.seed`` when set before setup, else drawn
        from torch's default generator (the solver's random_seed makes runs repeatable)."""
        if self.seed is None:
            self.seed = int(torch.randint(0, 2 ** 62, (), device="cpu").item())
        return np.random.default_rng(self.seed)

    def load_batch(self):
        raise NotImplementedError

    @staticmethod
    def _run(layer_ref, stop, batches):
        # The thread holds the layer only while loading a batch, so a net that is dropped
        # without close() is collected, and its thread ends.
        while not stop.is_set():
            layer = layer_ref()
            if layer is None:
                return
            try:
                item = layer.load_batch()
            except Exception as e:  # handed to the consumer, which raises it with context
                item = e
            del layer
            while not stop.is_set() and layer_ref() is not None:
                try:
                    batches.put(item, timeout=0.1)
                    break
                except queue.Full:
                    continue
            if isinstance(item, Exception):
                return

    def _start(self):
        self._stop = threading.Event()
        self._queue = queue.Queue(maxsize=max(1, int(self.prefetch)))
        self._thread = threading.Thread(target=self._run, name=f"prefetch:{self.name}",
                                        args=(weakref.ref(self), self._stop, self._queue),
                                        daemon=True)
        self._thread.start()

    def close(self):
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
        self._thread = self._queue = None

    def next_batch(self):
        """The next batch (numpy arrays), from the prefetch queue."""
        if self._thread is None:
            self._start()
        item = self._queue.get()
        if isinstance(item, Exception):
            self._thread = self._queue = None
            if isinstance(item, CaffeError):
                raise self.error(str(item)) from None
            raise item
        return item

    def forward(self):
        return tuple(torch.from_numpy(a).to(self.device, non_blocking=True)
                     for a in self.next_batch())
