"""An environment's state as plain data, so a resumed run continues exactly without pickles.

A checkpoint that stored the environments as a pickle would run whatever code the pickle
names when a run is resumed, and a run directory is often someone else's (a colleague's, a
CI artifact, a download). So a snapshot holds only data, and restoring one never imports or
calls anything the file names.

What is captured. The vector env is walked layer by layer: its vector wrappers (each
layer's `env`), the vector env itself (e.g. `SyncVectorEnv`'s autoreset flags and buffers,
or a native vector env such as `CartPoleVectorEnv` with its whole batched state), and for a
`SyncVectorEnv` every sub-env's wrapper chain down to the unwrapped env. Of each layer the
instance attributes (`vars()`) are kept when they are data:

- None, bool, int, float, str; NumPy arrays of numbers, booleans or strings and NumPy
  scalars; lists, tuples, deques and dicts (keys: None, bool, int, float, str) of those;
- at the top of an attribute, random generators as their state: `np.random.Generator`
  (its bit generator's state), `np.random.RandomState`, `random.Random`.

Configuration is skipped, since a freshly built env has it already: Gymnasium spaces (the
trainer re-seeds them and never samples them; also a dict of them, a PettingZoo env's
spaces per agent), `EnvSpec`, enums (an autoreset mode),
anything callable, and the attributes `env_fns`, `metadata`, `_metadata`, `spec`,
`_cached_spec`, `_saved_kwargs`. A layer whose class defines
`townlet_get_state()` / `townlet_set_state(state)` is captured by those instead (its state
must be data as above); its inner layers are still walked.

Any other attribute (a Box2D world, MuJoCo data, a subprocess, a file) makes the env not
snapshot-able: `capture` raises `NotSnapshotable` naming the env and the attribute, and the
caller decides what to do (PPO then restarts episodes on resume and says so).

Encoding. `capture` returns a tree of dicts with str keys, lists, None/bool/int/float/str and
`bytes` (the raw contents of arrays), tagged with `"t"` where a value is not a JSON scalar.
A torch caller stores the `bytes` leaves as uint8 tensors (`map_bytes`), so
`torch.load(weights_only=True)` reads it; arrays round-trip bit for bit (dtype, shape, raw
bytes). Numbers as data also mean the file can hold any values: `restore` checks the whole
tree against the freshly built env (same layers, same classes, dtypes and sizes that add up,
generator kinds that match, no attribute that shadows a method) and raises `SnapshotError`
on anything that does not fit, before or instead of executing anything from the file.

Restoring = build the env the same way (`make_vector_env`), `reset(seed=...)` it, then
`restore(env, snapshot)`: arrays of the same shape and dtype are copied in place (so buffers
the env shares between attributes stay shared), generators get their state set in place.
"""

from __future__ import annotations

import enum
import random
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np

#: The version of the layout below; a snapshot of another format is refused.
FORMAT = "townlet-env-snapshot/1"

#: Attributes that describe how an env was built, not where it is.
CONFIG_ATTRIBUTES = frozenset(
    {"env_fns", "metadata", "_metadata", "spec", "_cached_spec", "_saved_kwargs"}
)
#: Attributes that hold the next layers down (walked as layers, not captured as values).
STRUCTURE_ATTRIBUTES = frozenset({"env", "envs"})
#: Array dtypes kept as data (no objects, no structured or void dtypes).
ARRAY_KINDS = frozenset("biufcUS")
#: Nesting deeper than this inside one attribute is not environment state.
MAX_DEPTH = 32

_SCALARS = (type(None), bool, int, float, str)


class NotSnapshotable(Exception):  # noqa: N818 (a condition callers handle, not an error)
    """An env holds state that is not plain data (`attribute` names where)."""

    def __init__(self, env: str, attribute: str, kind: str) -> None:
        super().__init__(
            f"environment {env} is not snapshot-able: {attribute} is a {kind}, not plain data"
        )
        self.env = env
        self.attribute = attribute
        self.kind = kind


class SnapshotError(ValueError):
    """A snapshot that does not fit the env it is restored into, or is not a snapshot."""


# ---------------------------------------------------------------------------- layers


def layers(env: Any) -> Iterator[tuple[str, Any]]:
    """Every layer of a vector env as (path, layer): its wrappers down to the vector env,
    then each sub-env's wrappers down to the unwrapped env (for a `SyncVectorEnv`)."""
    chain = list(_chain("env", env))
    yield from chain
    path, innermost = chain[-1]
    subs: Any = _own_vars(innermost).get("envs")
    if _is_env_list(subs):
        for index, sub in enumerate(subs):
            yield from _chain(f"{path}.envs[{index}]", sub)


def _chain(path: str, layer: Any) -> Iterator[tuple[str, Any]]:
    yield path, layer
    inner = _own_vars(layer).get("env")
    while _is_env(inner):
        path += ".env"
        yield path, inner
        layer, inner = inner, _own_vars(inner).get("env")


def _own_vars(layer: Any) -> dict[str, Any]:
    try:
        return dict(vars(layer))
    except TypeError:  # no __dict__ (slots): nothing to walk
        return {}


def _is_env(value: Any) -> bool:
    return value is not None and callable(getattr(value, "step", None)) and hasattr(value, "reset")


def _class_name(layer: Any) -> str:
    kind = type(layer)
    return f"{kind.__module__}.{kind.__qualname__}"


def describe(env: Any) -> str:
    """A short name of an env for messages: its id, else its class."""
    spec = getattr(env, "spec", None)
    env_id = getattr(spec, "id", None)
    return str(env_id) if env_id else type(env).__name__


def _is_config(name: str, value: Any) -> bool:
    if name in CONFIG_ATTRIBUTES:
        return True
    if isinstance(value, enum.Enum):
        return True
    from gymnasium.envs.registration import EnvSpec
    from gymnasium.spaces import Space

    if isinstance(value, (Space, EnvSpec)):
        return True
    if isinstance(value, dict) and value and all(isinstance(v, Space) for v in value.values()):
        return True  # a PettingZoo env's spaces, one per agent
    return callable(value) and not isinstance(value, (np.random.Generator, np.random.RandomState))


def _custom(layer: Any, method: str) -> Callable[..., Any] | None:
    """The layer's own `townlet_get_state` / `townlet_set_state`, looked up on its class so
    a wrapper never answers for the env inside it."""
    if getattr(type(layer), method, None) is None:
        return None
    found = getattr(layer, method)
    return found if callable(found) else None


# ---------------------------------------------------------------------------- capture


def capture(env: Any) -> dict[str, Any]:
    """The state of `env` (a vector env) as data, or NotSnapshotable."""
    name = describe(env)
    captured = []
    for path, layer in layers(env):
        entry: dict[str, Any] = {"path": path, "class": _class_name(layer)}
        getter = _custom(layer, "townlet_get_state")
        if getter is not None:
            entry["custom"] = _encode(getter(), name, f"{path}.townlet_get_state()", 0)
        else:
            entry["attrs"] = _capture_attributes(layer, path, name)
        captured.append(entry)
    return {"format": FORMAT, "env": name, "layers": captured}


def _capture_attributes(layer: Any, path: str, env_name: str) -> dict[str, Any]:
    attributes: dict[str, Any] = {}
    for attribute, value in _own_vars(layer).items():
        if attribute in STRUCTURE_ATTRIBUTES and (_is_env(value) or _is_env_list(value)):
            continue
        if _is_config(attribute, value):
            continue
        where = f"{path}.{attribute}"
        attributes[attribute] = _encode_attribute(value, env_name, where)
    return attributes


def _is_env_list(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and bool(value) and all(_is_env(v) for v in value)


def _encode_attribute(value: Any, env_name: str, where: str) -> Any:
    if isinstance(value, np.random.Generator):
        state = value.bit_generator.state
        return {"t": "generator", "state": _encode(state, env_name, where, 0)}
    if isinstance(value, np.random.RandomState):
        return {
            "t": "random_state",
            "state": _encode(value.get_state(legacy=False), env_name, where, 0),
        }
    if isinstance(value, random.Random):
        return {"t": "python_random", "state": _encode(value.getstate(), env_name, where, 0)}
    return _encode(value, env_name, where, 0)


def encode_data(value: Any, what: str = "value") -> Any:
    """`value` (plain data as described above, no generators) as a snapshot tree; for other
    state a caller saves beside an env (e.g. the observation a rollout continues from)."""
    return _encode(value, what, what, 0)


def _encode(value: Any, env_name: str, where: str, depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise NotSnapshotable(env_name, where, "structure nested too deeply")
    if type(value) in _SCALARS:  # exact types: a subclass (an IntEnum) is not data
        return value
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in ARRAY_KINDS or value.dtype.fields is not None:
            raise NotSnapshotable(env_name, where, f"array of dtype {value.dtype}")
        return {
            "t": "ndarray",
            "dtype": value.dtype.str,
            "shape": list(value.shape),
            "data": np.ascontiguousarray(value).tobytes(),
        }
    if isinstance(value, np.generic):
        if value.dtype.kind not in ARRAY_KINDS:
            raise NotSnapshotable(env_name, where, f"NumPy scalar of dtype {value.dtype}")
        return {"t": "scalar", "dtype": value.dtype.str, "data": value.tobytes()}
    if isinstance(value, (list, tuple, deque)):
        items = [_encode(v, env_name, f"{where}[{i}]", depth + 1) for i, v in enumerate(value)]
        if isinstance(value, deque):
            return {"t": "deque", "maxlen": value.maxlen, "items": items}
        return {"t": "list" if isinstance(value, list) else "tuple", "items": items}
    if isinstance(value, dict):
        keys = list(value)
        for key in keys:
            if type(key) not in _SCALARS:
                raise NotSnapshotable(env_name, where, f"dict with a {type(key).__name__} key")
        values = [_encode(value[k], env_name, f"{where}[{k!r}]", depth + 1) for k in keys]
        return {"t": "dict", "keys": keys, "values": values}
    raise NotSnapshotable(env_name, where, f"{type(value).__module__}.{type(value).__qualname__}")


# ---------------------------------------------------------------------------- decoding


def decode_data(tree: Any) -> Any:
    """A value from `encode_data`'s tree; SnapshotError if the tree is not one."""
    return _decode(tree, "value", 0)


def _decode(tree: Any, where: str, depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise SnapshotError(f"{where}: nested too deeply")
    if type(tree) in _SCALARS:
        return tree
    if type(tree) is not dict:
        raise SnapshotError(f"{where}: unexpected {type(tree).__name__} in a snapshot")
    tag = tree.get("t")
    if tag == "ndarray":
        return _decode_array(tree, where)
    if tag == "scalar":
        return _decode_scalar(tree, where)
    if tag in ("list", "tuple", "deque"):
        return _decode_sequence(tree, str(tag), where, depth)
    if tag == "dict":
        return _decode_dict(tree, where, depth)
    raise SnapshotError(f"{where}: unknown snapshot entry {str(tag)[:40]!r}")


def _decode_scalar(tree: dict[str, Any], where: str) -> Any:
    dtype = _dtype(tree.get("dtype"), where)
    data = tree.get("data")
    if not isinstance(data, bytes) or len(data) != dtype.itemsize:
        raise SnapshotError(f"{where}: scalar data does not match dtype {dtype}")
    return np.frombuffer(data, dtype=dtype)[0].copy()


def _decode_sequence(tree: dict[str, Any], tag: str, where: str, depth: int) -> Any:
    items = tree.get("items")
    if type(items) is not list:
        raise SnapshotError(f"{where}: {tag} without items")
    decoded = [_decode(v, f"{where}[{i}]", depth + 1) for i, v in enumerate(items)]
    if tag == "list":
        return decoded
    if tag == "tuple":
        return tuple(decoded)
    maxlen = tree.get("maxlen")
    if maxlen is not None and (type(maxlen) is not int or maxlen < 0):
        raise SnapshotError(f"{where}: deque maxlen {maxlen!r} is not a count")
    return deque(decoded, maxlen=maxlen)


def _decode_dict(tree: dict[str, Any], where: str, depth: int) -> dict[Any, Any]:
    keys, values = tree.get("keys"), tree.get("values")
    if type(keys) is not list or type(values) is not list or len(keys) != len(values):
        raise SnapshotError(f"{where}: dict keys and values do not pair up")
    if not all(type(k) in _SCALARS for k in keys):
        raise SnapshotError(f"{where}: dict keys must be None, bool, int, float or str")
    pairs = zip(keys, values, strict=True)
    return {k: _decode(v, f"{where}[{k!r}]", depth + 1) for k, v in pairs}


def _dtype(text: Any, where: str) -> np.dtype[Any]:
    if not isinstance(text, str) or len(text) > 16:
        raise SnapshotError(f"{where}: dtype {str(text)[:40]!r} is not a dtype string")
    try:
        dtype = np.dtype(text)
    except TypeError as exc:
        raise SnapshotError(f"{where}: dtype {text!r} is not a dtype ({exc})") from exc
    if dtype.kind not in ARRAY_KINDS or dtype.fields is not None or dtype.itemsize == 0:
        raise SnapshotError(f"{where}: dtype {text!r} is not plain data")
    return dtype


def _decode_array(tree: dict[str, Any], where: str) -> np.ndarray:
    dtype = _dtype(tree.get("dtype"), where)
    shape, data = tree.get("shape"), tree.get("data")
    if not isinstance(shape, list) or not all(type(n) is int and n >= 0 for n in shape):
        raise SnapshotError(f"{where}: array shape {shape!r} is not a list of sizes")
    if not isinstance(data, bytes):
        raise SnapshotError(f"{where}: array data is not raw bytes")
    count = 1
    for size in shape:
        count *= size
    if count * dtype.itemsize != len(data):
        raise SnapshotError(
            f"{where}: array of shape {tuple(shape)} and dtype {dtype} needs "
            f"{count * dtype.itemsize} bytes, the snapshot has {len(data)}"
        )
    return np.frombuffer(data, dtype=dtype).reshape(shape).copy()


# ---------------------------------------------------------------------------- restore


def restore(env: Any, snapshot: Any) -> None:
    """Set the state captured by `capture` on `env`, built and reset the same way.

    Everything is decoded and checked against `env` first (generator states on scratch
    generators); SnapshotError says what does not fit. Only then are values set, so a
    refused snapshot leaves `env` as it was reset (a layer's own `townlet_set_state` may
    still refuse its state while it is set).
    """
    if not isinstance(snapshot, dict) or snapshot.get("format") != FORMAT:
        found = snapshot.get("format") if isinstance(snapshot, dict) else type(snapshot).__name__
        raise SnapshotError(f"not an environment snapshot of format {FORMAT} ({found!r})")
    saved = snapshot.get("layers")
    current = list(layers(env))
    if not isinstance(saved, list) or len(saved) != len(current):
        count = len(saved) if isinstance(saved, list) else "no"
        raise SnapshotError(
            f"the environment has {len(current)} layers now, the snapshot {count}; it was "
            "built differently (other num_envs, wrappers or Gymnasium version)"
        )
    steps: list[Callable[[], None]] = []
    for (path, layer), entry in zip(current, saved, strict=True):
        steps.extend(_plan_layer(path, layer, entry))
    for step in steps:
        step()


def _plan_layer(path: str, layer: Any, entry: Any) -> list[Callable[[], None]]:
    if not isinstance(entry, dict) or entry.get("path") != path:
        raise SnapshotError(f"{path}: the snapshot's layers do not line up with the env's")
    if entry.get("class") != _class_name(layer):
        raise SnapshotError(
            f"{path}: the env has a {_class_name(layer)} here, the snapshot a "
            f"{str(entry.get('class'))[:100]}"
        )
    if "custom" in entry:
        setter = _custom(layer, "townlet_set_state")
        if setter is None:
            raise SnapshotError(f"{path}: {_class_name(layer)} has no townlet_set_state")
        value = _decode(entry["custom"], f"{path}.townlet_get_state()", 0)
        return [lambda: setter(value)]
    attributes = entry.get("attrs")
    if not isinstance(attributes, dict):
        raise SnapshotError(f"{path}: no attributes in the snapshot")
    present = _own_vars(layer)
    return [
        _plan_attribute(layer, f"{path}.{name}", name, present, tree)
        for name, tree in attributes.items()
    ]


def _plan_attribute(
    layer: Any, where: str, name: Any, present: Mapping[str, Any], tree: Any
) -> Callable[[], None]:
    if not isinstance(name, str) or not name.isidentifier() or name.startswith("__"):
        raise SnapshotError(f"{where}: {str(name)[:60]!r} is not an attribute name")
    if name in STRUCTURE_ATTRIBUTES or name in CONFIG_ATTRIBUTES:
        raise SnapshotError(f"{where}: the snapshot may not set {name}")
    if name in present:
        if _is_config(name, present[name]):
            raise SnapshotError(f"{where}: configuration, not state; the snapshot may not set it")
    elif hasattr(type(layer), name):
        raise SnapshotError(f"{where}: would hide the class's own {name}")
    current = present.get(name)
    tag = tree.get("t") if isinstance(tree, dict) else None
    generators = {
        "generator": np.random.Generator,
        "random_state": np.random.RandomState,
        "python_random": random.Random,
    }
    if tag in generators or isinstance(current, tuple(generators.values())):
        return _plan_generator(where, current, tag, tree, generators)
    value = _decode(tree, where, 0)
    if (
        isinstance(current, np.ndarray)
        and isinstance(value, np.ndarray)
        and current.shape == value.shape
        and current.dtype == value.dtype
        and current.flags.writeable
    ):
        return lambda: np.copyto(current, value)
    return lambda: setattr(layer, name, value)


def _plan_generator(
    where: str, current: Any, tag: Any, tree: Any, generators: Mapping[str, type]
) -> Callable[[], None]:
    """Check the saved state on a scratch generator of the same kind first, so setting it
    on the env's own generator (in place: layers may share it) cannot fail half-way."""
    kind = generators.get(str(tag))
    if kind is None or not isinstance(current, kind):
        raise SnapshotError(
            f"{where}: the env holds a {type(current).__name__} here, the snapshot a {tag!r}"
        )
    state = _decode(tree.get("state"), where, 0)
    apply: Callable[[Any], None]
    if isinstance(current, np.random.Generator):
        bit_generator = type(current.bit_generator)

        def apply(target: Any) -> None:
            target.bit_generator.state = state

        scratch: Any = np.random.Generator(bit_generator())
    elif isinstance(current, np.random.RandomState):

        def apply(target: Any) -> None:
            target.set_state(state)

        scratch = np.random.RandomState()
    else:

        def apply(target: Any) -> None:
            target.setstate(state)

        scratch = random.Random()
    try:
        apply(scratch)
    except (TypeError, ValueError, KeyError, OverflowError, IndexError) as exc:
        raise SnapshotError(f"{where}: not a valid generator state ({exc})") from exc
    return lambda: apply(current)


# ---------------------------------------------------------------------------- storage


def map_bytes(tree: Any, convert: Callable[[Any], Any], *, leaf: type = bytes) -> Any:
    """`tree` with every `leaf` value (by default the `bytes` of arrays) replaced by
    `convert(value)`: how a torch caller turns them into uint8 tensors and back."""
    if isinstance(tree, leaf):
        return convert(tree)
    if isinstance(tree, dict):
        return {k: map_bytes(v, convert, leaf=leaf) for k, v in tree.items()}
    if isinstance(tree, list):
        return [map_bytes(v, convert, leaf=leaf) for v in tree]
    return tree
