"""Performance at paper scale: a synthetic data generator and a speed and memory benchmark.

* ``python -m recbole_slmrec.perf.generate`` writes a dataset with the statistics of Tiktok,
  Kwai or Movielens (or a fraction of one) in the MMGCN release layout;
* ``python -m recbole_slmrec.perf.bench`` converts it, loads it, times training, propagation and
  evaluation, and measures memory, each figure beside the ratio it is judged by.

See ``docs/PERFORMANCE.md``.
"""
