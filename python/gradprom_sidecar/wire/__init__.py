"""The wire: the ROUTER loop (``server``), frames <-> tensors (``protocol``), op name -> handler
(``registry``) and the shared memory region that carries gradient vectors (``region``).

Only this room and ``__main__`` need pyzmq and msgpack.
"""
