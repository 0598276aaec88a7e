"""Identity keys for caches: hashing a frozen ``ModelConfig`` walks every nested field (tens of
microseconds), too slow for a sweep of millions of plans. Cached cost functions key on
``ident(model)`` instead and fetch the object back with ``obj``; the registry keeps each object
alive so its id is never reused while cached."""

from __future__ import annotations

_KEEP: dict[int, object] = {}


def ident(obj_: object) -> int:
    key = id(obj_)
    if _KEEP.get(key) is not obj_:
        _KEEP[key] = obj_
    return key


def obj(key: int):
    return _KEEP[key]
