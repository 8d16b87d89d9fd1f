"""orjson as python-socketio's (and engine.io's) `json` module (realtime/server.py).

python-socketio calls `json.dumps(data, separators=(",", ":"))` to encode a packet and
`json.loads(text)` to decode one. orjson does both several times faster and already writes the
compact form. What orjson refuses and the standard module accepts (integers beyond 64 bits and
non-string dict keys on output, NaN/Infinity on input) falls back to the standard module, so a
payload the server accepted before is still accepted. One difference remains: an integer beyond
64 bits in a client's event is read as a float (no field of the contract can hold one).
"""
from __future__ import annotations

import json as _std
from typing import Any

import orjson

JSONDecodeError = _std.JSONDecodeError


def dumps(obj: Any, *args: Any, **kwargs: Any) -> str:
    try:
        return orjson.dumps(obj).decode()
    except TypeError:
        kwargs.setdefault("separators", (",", ":"))
        return _std.dumps(obj, *args, **kwargs)


def size(obj: Any) -> int:
    """Bytes of dumps(obj) in UTF-8, as it goes on the wire (without decoding orjson's bytes)."""
    try:
        return len(orjson.dumps(obj))
    except TypeError:
        return len(dumps(obj).encode())


def loads(s: str | bytes, *args: Any, **kwargs: Any) -> Any:
    try:
        return orjson.loads(s)
    except orjson.JSONDecodeError:
        return _std.loads(s, *args, **kwargs)
