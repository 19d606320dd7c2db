"""The CPU CRF's thread-count rule and the barrier its team of threads meets at
(csrc/permutohedral/crf_team.h), driven by a small C++ program compiled here: the header needs
neither ATen nor OpenMP."""
import os
import shutil
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

DRIVER = r"""
#include "permutohedral/crf_team.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

#include <unistd.h>

using namespace deeplab_caffe::permutohedral;

// Each round every thread publishes the round number, meets the others, checks that every one
// published it, and meets them again before the next round overwrites it.  Thread t naps for
// `nap_us` on the rounds r with r % every == t, so the others outwait the barrier's spin and
// sleep on the futex: a lost wake-up hangs the program.
static int barrier_rounds(int threads, long rounds, long every, int nap_us) {
  SpinBarrier barrier(threads);
  std::vector<std::atomic<long>> seen(threads);
  for (auto& s : seen) s.store(-1);
  std::atomic<long> bad{0};
  std::vector<std::thread> team;
  for (int t = 0; t < threads; ++t)
    team.emplace_back([&, t] {
      for (long r = 0; r < rounds; ++r) {
        if (every > 0 && r % every == t) usleep(nap_us);
        seen[t].store(r, std::memory_order_relaxed);
        barrier.wait();
        for (int u = 0; u < threads; ++u)
          if (seen[u].load(std::memory_order_relaxed) != r) bad.fetch_add(1);
        barrier.wait();
      }
    });
  for (auto& th : team) th.join();
  std::printf("rounds %ld bad %ld\n", rounds, bad.load());
  return 0;
}

int main(int argc, char** argv) {
  if (argc == 4 && !std::strcmp(argv[1], "counts")) {  // counts MOST CORES, others 0..2*CORES
    const int most = std::atoi(argv[2]);
    const long cores = std::atol(argv[3]);
    for (int others = 0; others <= 2 * cores; ++others) {
      const CrfThreadCounts n = threads_for_load(most, cores, others);
      std::printf("%d %d %d\n", others, n.small, n.big);
    }
    return 0;
  }
  if (argc == 6 && !std::strcmp(argv[1], "barrier"))  // barrier THREADS ROUNDS EVERY NAP_US
    return barrier_rounds(std::atoi(argv[2]), std::atol(argv[3]), std::atol(argv[4]),
                          std::atoi(argv[5]));
  std::fprintf(stderr, "usage: counts MOST CORES | barrier THREADS ROUNDS EVERY NAP_US\n");
  return 2;
}
"""


@pytest.fixture(scope="module")
def driver(tmp_path_factory):
    cxx = os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++")
    assert cxx, "no C++ compiler on PATH (the extension's build needs one too)"
    d = tmp_path_factory.mktemp("crf_team")
    src, exe = d / "driver.cpp", d / "driver"
    src.write_text(DRIVER)
    subprocess.run([cxx, "-std=c++17", "-O2", "-pthread", "-I", os.path.join(ROOT, "csrc"),
                    str(src), "-o", str(exe)], check=True, capture_output=True, timeout=300)
    return str(exe)


def run(driver, *args, timeout=120):
    out = subprocess.run([driver, *map(str, args)], capture_output=True, text=True,
                         timeout=timeout)
    assert out.returncode == 0, out.stderr
    return out.stdout


def counts(driver, most, cores):
    """{others: (small, big)}"""
    rows = [line.split() for line in run(driver, "counts", most, cores).splitlines()]
    return {int(o): (int(s), int(b)) for o, s, b in rows}


@pytest.mark.parametrize("most,cores,expected", [
    # quiet: every step on both threads; one core busy: one thread, which has the free core to
    # itself; every core busy: the small steps inline, the big ones still on two threads
    (2, 2, {0: (2, 2), 1: (1, 1), 2: (1, 2), 3: (1, 2), 4: (1, 2)}),
    (1, 2, {0: (1, 1), 1: (1, 1), 2: (1, 1), 3: (1, 1), 4: (1, 1)}),
    (4, 2, {0: (2, 2), 1: (1, 1), 2: (1, 2), 3: (1, 2), 4: (1, 2)}),
    (4, 8, {0: (4, 4), 4: (4, 4), 5: (3, 3), 7: (1, 1), 8: (1, 2), 16: (1, 2)}),
])
def test_thread_counts_follow_the_load(driver, most, cores, expected):
    got = counts(driver, most, cores)
    assert {o: got[o] for o in expected} == expected


@pytest.mark.parametrize("threads,rounds,every,nap_us", [
    (2, 50000, 0, 0),         # spinning: both threads busy, they meet within the spin
    (2, 2000, 10, 300),       # one thread naps past the spin: the other sleeps and is woken
    (3, 2000, 7, 200),        # a team of three on however many cores
    (4, 5000, 0, 0),          # more threads than this machine's cores: waiters must sleep
])
def test_barrier_loses_no_round_and_no_wake_up(driver, threads, rounds, every, nap_us):
    assert run(driver, "barrier", threads, rounds, every, nap_us).split() == \
        ["rounds", str(rounds), "bad", "0"]
