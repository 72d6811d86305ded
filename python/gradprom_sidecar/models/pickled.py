"""Reading a whole pickled model (``torch.save(model)``) as data, without importing or running anything it names.

Some published weights are whole pickled modules, not state dicts: ESTR saved its processing models
with ``torch.save`` of a ``DataParallel``-wrapped module under PyTorch 1.5 (the legacy, pre-zip
format). ``torch.load(weights_only=True)`` rightly refuses them: unpickling a module imports its
class and calls whatever the file names. :func:`read_pickled_model` reads them another way:

- a restricted unpickler whose ``find_class`` never imports: tensors, storages and plain containers
  (OrderedDict, set, frozenset) are rebuilt by this module's own functions, and every other name in
  the file becomes a fresh stand-in class (:class:`Recorded`) that only records the arguments and
  the state it is given: no ``__reduce__`` callable, ``__setstate__`` or constructor of the file's
  classes ever runs;
- both of ``torch.save``'s formats: the zip archive (PyTorch >= 1.6: ``<name>/data.pkl`` plus one
  ``<name>/data/<key>`` entry per storage) and the legacy stream (magic number, protocol version,
  system info, the object, the storage keys, then each storage's element count and bytes);
- parameters and buffers are collected under their dotted names from the recorded ``_parameters``,
  ``_buffers`` and ``_modules`` of each module (non-persistent buffers skipped), exactly the names
  ``module.state_dict()`` would give; ``checkpoint.read_state_dict`` then strips ``module.`` and the
  weights load strictly as any state dict.

Everything else in the file stays inert data. Storage sizes are checked against the file before any
memory is allocated, and a tensor must lie inside its storage.
"""

from __future__ import annotations

import collections
import io
import pickle
import zipfile
from pathlib import Path
from typing import Any, BinaryIO, Callable

import torch
from torch import Tensor

__all__ = ["Recorded", "is_zip", "load_restricted", "module_tensors", "read_pickled_model"]

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C  # the first pickle of a legacy torch.save stream
LEGACY_PROTOCOL = 1001
_STORAGE_DTYPES = {
    "FloatStorage": torch.float32,
    "DoubleStorage": torch.float64,
    "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16,
    "LongStorage": torch.int64,
    "IntStorage": torch.int32,
    "ShortStorage": torch.int16,
    "CharStorage": torch.int8,
    "ByteStorage": torch.uint8,
    "BoolStorage": torch.bool,
    "ComplexFloatStorage": torch.complex64,
    "ComplexDoubleStorage": torch.complex128,
    "UntypedStorage": torch.uint8,
}
_WRAPPER_KEYS = ("model", "state_dict", "module", "net")
_MAX_MODULES = 100_000  # modules visited in one file: more means a cycle or a hostile file


class Recorded:
    """Stand-in for an object of a class the file names: its arguments and state, kept as plain data.

    :func:`load_restricted` makes one subclass per name in the file (``module`` and ``name`` say
    which); constructing one, reducing to one or building one only stores what it is given.
    """

    module: str = ""
    name: str = ""

    def __new__(cls, *args: Any, **kwargs: Any) -> Recorded:
        obj = object.__new__(cls)
        obj.args, obj.kwargs, obj.state, obj.items = args, kwargs, None, []
        return obj

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """Nothing to do: :meth:`__new__` recorded the arguments."""

    def __setstate__(self, state: Any) -> None:
        self.state = state

    # A list or dict subclass in the file gets its items appended or set.
    def append(self, item: Any) -> None:
        self.items.append(item)

    def extend(self, items: Any) -> None:
        self.items.extend(items)

    def __setitem__(self, key: Any, value: Any) -> None:
        self.items.append((key, value))

    def __repr__(self) -> str:
        return f"<recorded {self.module}.{self.name}>"


class _StorageType:
    """What a storage class name (``torch.FloatStorage``, ``torch.cuda.HalfStorage``, …) stands for: its dtype."""

    def __init__(self, dtype: torch.dtype) -> None:
        self.dtype = dtype


def _rebuild_tensor(storage: Tensor, offset: int, size: Any, stride: Any, *_rest: Any) -> Tensor:
    """A tensor as a strided view of its storage (a flat tensor here), checked to lie inside it."""
    if not isinstance(storage, Tensor):
        raise ValueError(f"a tensor refers to {storage!r}, not a storage")
    size, stride = tuple(int(s) for s in size), tuple(int(s) for s in stride)
    if len(size) != len(stride) or int(offset) < 0 or any(s < 0 for s in size + stride):
        raise ValueError(f"bad tensor geometry: size {size}, stride {stride}, offset {offset}")
    last = int(offset) + sum((n - 1) * s for n, s in zip(size, stride)) if all(size) else int(offset) - 1
    if last >= storage.numel():
        raise ValueError(f"a tensor of size {size} reaches element {last} of a storage of {storage.numel()}")
    # The storage may itself be a slice of a larger one (legacy views): offsets count from its start.
    return storage.as_strided(size, stride, storage.storage_offset() + int(offset))


def _rebuild_parameter(data: Any, *_rest: Any) -> Any:
    """A parameter is its data (requires_grad, hooks and extra state are not needed to read weights)."""
    return data


def _rebuild_from_type(func: Callable[..., Any], _new_type: Any, args: Any, _state: Any = None) -> Any:
    """A tensor subclass: rebuilt by ``func``, which the file named and :meth:`_Unpickler.find_class` made safe."""
    return func(*args)


_SAFE: dict[tuple[str, str], Any] = {
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("torch._tensor", "_rebuild_from_type_v2"): _rebuild_from_type,
    ("torch._utils", "_rebuild_from_type"): _rebuild_from_type,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch", "Size"): tuple,
}
_CONTAINERS = {"set": set, "frozenset": frozenset}  # builtins (__builtin__ in protocol-2 pickles)


class _Unpickler(pickle.Unpickler):
    """Resolves every global to one of this module's functions or a :class:`Recorded` stand-in; imports nothing."""

    def __init__(self, f: BinaryIO, storage: Callable[[tuple], Tensor | type[Recorded]]) -> None:
        super().__init__(f)
        self._storage = storage
        self._stand_ins: dict[tuple[str, str], type[Recorded]] = {}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _SAFE:
            return _SAFE[(module, name)]
        if module in ("builtins", "__builtin__") and name in _CONTAINERS:
            return _CONTAINERS[name]
        if module in ("torch", "torch.cuda") and name in _STORAGE_DTYPES:
            return _StorageType(_STORAGE_DTYPES[name])
        key = (module, name)
        if key not in self._stand_ins:
            self._stand_ins[key] = type(name, (Recorded,), {"module": module, "name": name, "__module__": __name__})
        return self._stand_ins[key]

    def persistent_load(self, pid: Any) -> Any:
        if not isinstance(pid, tuple) or not pid:
            raise ValueError(f"unexpected persistent id {pid!r}")
        if pid[0] == "module" and len(pid) >= 2:  # legacy format: a module class, with its source for a check we skip
            return pid[1]
        if pid[0] == "storage":
            return self._storage(pid[1:])
        raise ValueError(f"unknown persistent id type {pid[0]!r}")


def _dtype_of(storage_type: Any) -> torch.dtype:
    if not isinstance(storage_type, _StorageType):
        raise ValueError(f"unsupported storage type {storage_type!r}")
    return storage_type.dtype


def _from_bytes(data: bytes, dtype: torch.dtype, little_endian: bool) -> Tensor:
    """A flat tensor of ``dtype`` over a copy of ``data`` (byte-swapped when the file is big-endian)."""
    size = torch.empty((), dtype=dtype).element_size()
    if len(data) % size:
        raise ValueError(f"{len(data)} bytes do not hold whole {dtype} elements")
    if not data:
        return torch.empty(0, dtype=dtype)
    raw = torch.frombuffer(bytearray(data), dtype=torch.uint8)
    if not little_endian and size > 1:
        raw = raw.view(-1, size).flip(1).reshape(-1)
    return raw.view(dtype)


def is_zip(path: Path) -> bool:
    """True for a zip archive (PyTorch >= 1.6's format), judged by its first bytes."""
    with open(path, "rb") as f:
        return f.read(4) == b"PK\x03\x04"


def _load_zip(path: Path) -> Any:
    with zipfile.ZipFile(path) as z:
        pkls = [n for n in z.namelist() if n.endswith("/data.pkl") and n.count("/") == 1]
        if len(pkls) != 1:
            raise ValueError("not a torch.save archive (no single <name>/data.pkl)")
        root = pkls[0][: -len("data.pkl")]
        order = z.read(root + "byteorder").decode().strip() if root + "byteorder" in z.namelist() else "little"
        tensors: dict[str, Tensor] = {}

        def storage(args: tuple) -> Tensor:
            storage_type, key, _location, numel = args[:4]
            dtype = _dtype_of(storage_type)
            if key not in tensors:
                info = z.getinfo(f"{root}data/{key}")  # KeyError: the archive lacks it
                expected = int(numel) * torch.empty((), dtype=dtype).element_size()
                if info.file_size != expected:
                    raise ValueError(f"storage {key}: {info.file_size} bytes, expected {expected}")
                tensors[key] = _from_bytes(z.read(info), dtype, order == "little")
            return tensors[key]

        return _Unpickler(io.BytesIO(z.read(pkls[0])), storage).load()


def _no_storage(_args: tuple) -> Tensor:
    raise ValueError("a storage outside the object pickle")


def _load_legacy(path: Path) -> Any:
    file_size = path.stat().st_size
    with open(path, "rb") as f:

        def plain() -> Any:
            return _Unpickler(f, _no_storage).load()

        if plain() != LEGACY_MAGIC:
            raise ValueError("not a torch.save file (no zip archive, no legacy magic number)")
        if plain() != LEGACY_PROTOCOL:
            raise ValueError("unsupported legacy protocol version")
        info = plain()
        little = not isinstance(info, dict) or info.get("little_endian", True)
        roots: dict[str, Tensor] = {}
        declared = 0

        def storage(args: tuple) -> Tensor:
            nonlocal declared
            storage_type, key, _location, numel = args[:4]
            view = args[4] if len(args) > 4 else None
            dtype = _dtype_of(storage_type)
            if key not in roots:
                declared += int(numel) * torch.empty((), dtype=dtype).element_size()
                if int(numel) < 0 or declared > file_size:
                    raise ValueError("storages declare more bytes than the file holds")
                roots[key] = torch.empty(int(numel), dtype=dtype)  # filled once the object pickle is read
            if view is not None:  # (view key, offset, size): a slice of the root storage
                _view_key, offset, size = view
                return roots[key][int(offset) : int(offset) + int(size)]
            return roots[key]

        obj = _Unpickler(f, storage).load()
        keys = plain()
        if not isinstance(keys, list):
            raise ValueError("no storage key list after the object")
        for key in keys:
            if key not in roots:
                raise ValueError(f"storage {key!r} has data but no tensor uses it")
            head = f.read(8)
            if len(head) != 8:
                raise ValueError(f"truncated before storage {key!r}")
            numel = int.from_bytes(head, "little" if little else "big", signed=True)
            target = roots[key]
            if numel != target.numel():
                raise ValueError(f"storage {key!r}: {numel} elements on disk, {target.numel()} declared")
            nbytes = numel * target.element_size()
            data = f.read(nbytes)
            if len(data) != nbytes:
                raise ValueError(f"truncated inside storage {key!r}")
            target.copy_(_from_bytes(data, target.dtype, little))
        return obj


def load_restricted(path: str | Path) -> Any:
    """The object graph of a ``torch.save`` file, rebuilt with nothing imported or run (see the module docstring).

    :param path: the file, zip or legacy format.
    :raises ValueError: a malformed file (the message says what is wrong, not where: callers name the file).
    """
    path = Path(path)
    try:
        return _load_zip(path) if is_zip(path) else _load_legacy(path)
    except (pickle.UnpicklingError, EOFError, KeyError, RuntimeError, TypeError, zipfile.BadZipFile, RecursionError) as e:
        raise ValueError(f"{type(e).__name__}: {e}") from e


def _module_state(obj: Any) -> dict | None:
    """The recorded ``__dict__`` of a pickled ``nn.Module`` (it has ``_parameters`` and ``_modules``), else None."""
    if not isinstance(obj, Recorded):
        return None
    state = obj.state
    if isinstance(state, tuple) and len(state) == 2 and isinstance(state[0], dict):
        state = state[0]  # (dict state, slots state)
    if isinstance(state, dict) and isinstance(state.get("_parameters"), dict) and isinstance(state.get("_modules"), dict):
        return state
    return None


def module_tensors(obj: Any) -> dict[str, Tensor] | None:
    """Parameters and persistent buffers of a recorded module, by dotted name, in ``state_dict()`` order; None if not a module.

    :param obj: what :func:`load_restricted` returned (or part of it).
    """
    if _module_state(obj) is None:
        return None
    out: dict[str, Tensor] = {}
    pending: list[tuple[str, Any]] = [("", obj)]
    visited = 0
    while pending:  # depth-first, children in order, without recursion (a file may nest deeply)
        prefix, node = pending.pop()
        state = _module_state(node)
        if state is None:
            continue
        visited += 1
        if visited > _MAX_MODULES:
            raise ValueError(f"more than {_MAX_MODULES} modules (a cycle?)")
        skip = state.get("_non_persistent_buffers_set")
        skip = skip if isinstance(skip, (set, frozenset, list, tuple)) else ()
        for name, value in state["_parameters"].items():
            if isinstance(value, Tensor):
                out[prefix + str(name)] = value
        for name, value in (state.get("_buffers") or {}).items():
            if isinstance(value, Tensor) and name not in skip:
                out[prefix + str(name)] = value
        children = [(f"{prefix}{name}.", child) for name, child in state["_modules"].items()]
        pending.extend(reversed(children))
    return out


def read_pickled_model(path: str | Path, part: str | None = None) -> dict[str, Tensor] | None:
    """The tensors of a whole pickled module in ``path`` (also under a ``model``/``state_dict``/``part`` key), or None.

    None means the file holds no pickled module (a dict of other objects, say): the caller keeps its
    own refusal. Names keep any ``module.`` prefix (``checkpoint.read_state_dict`` strips it).

    :param path: a ``torch.save`` file, zip or legacy.
    :param part: a key whose value may be the module, e.g. ``"ip"``.
    :raises ValueError: a malformed file.
    """
    obj = load_restricted(path)
    found = module_tensors(obj)
    if found is None and isinstance(obj, dict):
        for key in ((part,) if part else ()) + _WRAPPER_KEYS:
            found = module_tensors(obj.get(key))
            if found is not None:
                break
    return found
