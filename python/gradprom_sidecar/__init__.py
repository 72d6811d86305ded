"""The gradprom sidecar: PyTorch models, data and autograd behind a ZeroMQ ROUTER.

The rooms, from the wire inwards (only ``wire`` and ``__main__`` need pyzmq and msgpack):

- ``__main__``: the process (flags, token, parent watch); ``defaults.json``: the config defaults,
  generated from src/config/defaults.ts (the sidecar has none of its own).
- ``wire/``: ``server`` (the ROUTER loop and its I/O thread), ``protocol`` (frames <-> tensors),
  ``registry`` (op name -> handler), ``region`` (the shared memory region for gradient vectors).
- ``ops/``: every op the sidecar serves, one module per subject (listed in ``ops.OPS``).
- ``training/``: ``session`` (one experiment's data, networks, optimisers, RNG), ``step`` (the
  pipelined step: ``PipelinedStep`` and its states), ``pretrain`` (VR on clean images), ``grads`` (flat gradients, the Gram, applying a decision), ``descent`` (the descent
  probe), ``optim`` (optimisers, schedule, sampler), ``precision`` (autocast, loss scaling),
  ``snapshot`` (a session in and out of a checkpoint), ``distributed`` (one rank's share),
  ``config`` (reading the resolved config), ``device`` (where tensors live).
- ``evaluation/``: ``evaluate`` (the one evaluation path), ``metrics``, ``per_image``, ``enhance``
  (images, files, volumes), ``cross_table`` (several IPs × VRs: ESTR's table), ``streaming`` (a
  file-based split read batch by batch, never held whole), ``bench`` (the measurement of it).
- ``data/``: data sets, readers, ``split`` (the seeded, stratified split), storage, the feed, the disk cache and ``degrade`` (degradations).
- ``models/``: the networks (torchvision's state-dict names), ``checkpoint`` (safe weight files),
  ``pickled`` (whole pickled models, read without running them).
- ``tools/``: not served by the sidecar: ``reference`` + ``policies`` (the in-process oracle of the
  TypeScript-driven loop), ``bench`` + ``bench_ops`` (the Python side of ``npm run bench``),
  ``gpucheck/``, ``introspect`` (doctor and inspect, through pythonia), ``tbwriter`` (a run's
  TensorBoard writer, a process of its own fed the run's records on stdin).
"""

PROTOCOL_VERSION = 1
__version__ = "0.1.0"
