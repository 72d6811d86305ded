"""The gradprom sidecar: PyTorch models, data and autograd behind a ZeroMQ ROUTER.

The rooms, from the wire inwards (only the first three need pyzmq and msgpack):

- ``__main__``: the process (flags, token, parent watch), ``server``: the ROUTER loop and its I/O
  thread, ``protocol``: frames <-> tensors.
- ``registry``: op name -> handler; ``ops/``: every op, one module per subject (listed in ``ops.OPS``).
- ``session``: one experiment's data, networks, optimisers and RNG, and the two-pass step;
  ``optim``: optimisers, learning-rate schedule, sampler; ``evaluate``: the one evaluation path;
  ``enhance``: enhancing images, files and volumes; ``snapshot``: a session in and out of a checkpoint.
- ``grads``: flat gradients, the Gram, applying a decision; ``models/``, ``data/``, ``degrade``,
  ``metrics``: networks, data sets, degradations, scores; ``checkpoint``: safe weight files.
- ``config``: resolving and reading the experiment config (defaults.json, generated from
  src/config/defaults.ts: the sidecar has no defaults of its own); ``device``: where tensors live.
- ``distributed``: a session's share on one rank of several (torch.distributed).
- ``reference`` + ``policies``: the in-process oracle of the TypeScript-driven loop; ``bench``:
  the Python side of ``npm run bench``; ``introspect``: doctor and inspect, through pythonia.
- ``tbwriter``: not part of the sidecar process: a run's TensorBoard writer, a process of its own
  fed the run's records on stdin.
"""

PROTOCOL_VERSION = 1
__version__ = "0.1.0"
