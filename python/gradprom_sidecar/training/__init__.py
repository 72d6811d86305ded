"""The training core: one experiment's session and its two-pass step, flat gradients and the Gram,
optimisers, precision, the descent probe, checkpoints of a session, and torch.distributed ranks.

``config`` reads the resolved experiment config and ``device`` says where tensors live; both are used
by every other room.
"""
