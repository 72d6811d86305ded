"""Tools that the sidecar does not serve: the in-process reference loop and its policy oracle,
the bench's Python side and its bench-only ops, gpu-check, doctor/inspect introspection (through
pythonia) and the TensorBoard writer (a process of its own).
"""
