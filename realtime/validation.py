"""Client events checked before any handler runs: the packet must be readable, its arguments
plain JSON of a sane size, and they must match the event's payload schema in
asyncapi/projectvoice.yaml. A failure is answered with one `error` event (the event's own code,
or `malformed_event` for what no event accepts) and nothing else happens; it is the client's
mistake, so nothing is logged above DEBUG.

Order: `GuardedPacket` turns a packet python-socketio could not decode (JSON nested past the
decoder's recursion limit, invalid JSON, an event that is not `[name, ...args]`) into the
internal event `UNREADABLE`; `check_event` then walks the arguments (depth, size, strings
without NUL or lone surrogates, no binary or non-finite numbers) and validates them with the
event's generated model (generated/event_args.py: strict pydantic models of the document's
schemas, regenerated with it); a signal, the one frequent event, is first checked by that model's
JSON Schema compiled by jsonschema-rs (about a microsecond).
"""
from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import jsonschema_rs
import yaml
from pydantic import BaseModel, ValidationError
from socketio import packet

from generated import event_args

log = logging.getLogger("projectvoice.realtime")

# The event an unreadable packet becomes (a client could send this name too: it gets the same answer).
UNREADABLE = "\x00unreadable"
MAX_DEPTH = 16        # our payloads nest 3 deep (a signal's sdp or candidate object)
MAX_NODES = 1000      # values and keys in all of one event's arguments

_DOC = Path(__file__).resolve().parent.parent / "asyncapi" / "projectvoice.yaml"


class Malformed(Exception):
    def __init__(self, message: str, code: str = "malformed_event") -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class GuardedPacket(packet.Packet):  # type: ignore[misc]  # (python-socketio publishes no types)
    """python-socketio's packet, except that a client packet it cannot decode or would refuse
    with an exception (python-socketio logs those with a traceback and answers nothing) becomes
    the event UNREADABLE: JSON it cannot read (nested past the decoder's recursion limit, cut
    short), an EVENT that is not a list starting with an event name, a packet type a client may
    not send (CONNECT_ERROR, unknown types). Unreadable CONNECT data is a connection without a token."""

    data: Any
    _FROM_CLIENTS = (packet.CONNECT, packet.DISCONNECT, packet.EVENT, packet.ACK,
                     packet.BINARY_EVENT, packet.BINARY_ACK)

    def __init__(self, packet_type: int = packet.EVENT, data: Any = None, namespace: str | None = None,
                 id: int | None = None, binary: bool | None = None, encoded_packet: Any = None) -> None:
        if encoded_packet and data is None and binary is None:
            # A received packet: Packet.__init__ would first look for bytes in its (empty) data.
            self.packet_type, self.data, self.namespace, self.id = packet_type, None, namespace, id
            self.attachments: list[Any] = []
            self.attachment_count = self.decode(encoded_packet) or 0
            return
        super().__init__(packet_type, data, namespace, id, binary, encoded_packet)

    def decode(self, encoded_packet: Any) -> int:
        ep = encoded_packet
        if type(ep) is str and ep[:1] == "2":
            # The usual client packet, an EVENT without ack id or attachments ("2[...]" or
            # "2/ns,[...]"), read as Packet.decode reads it but without its scans and copies of
            # the whole text; anything else takes Packet.decode.
            body = namespace = None
            if ep[1:2] == "[":
                body = ep[1:]
            elif ep[1:2] == "/" and (sep := ep.find(",")) != -1 and ep[sep + 1:sep + 2] == "[" \
                    and "?" not in (namespace := ep[1:sep]):
                body = ep[sep + 1:]
            if body is not None:
                self.packet_type, self.namespace = packet.EVENT, namespace
                try:
                    self.data = self.json.loads(body)
                except (ValueError, RecursionError, TypeError):
                    log.debug("socket packet could not be decoded", exc_info=True)
                    return self._unreadable()
                if not (isinstance(self.data, list) and self.data and isinstance(self.data[0], str)):
                    return self._unreadable()
                return 0
        try:
            count = super().decode(encoded_packet)
        except (ValueError, RecursionError, TypeError):
            log.debug("socket packet could not be decoded", exc_info=True)
            if self.packet_type == packet.CONNECT:
                self.data = None
                return 0
            return self._unreadable()
        if self.packet_type not in self._FROM_CLIENTS:
            return self._unreadable()
        if self.packet_type == packet.EVENT and not (
                isinstance(self.data, list) and self.data and isinstance(self.data[0], str)):
            return self._unreadable()
        return int(count)

    def _unreadable(self) -> int:
        self.packet_type = packet.EVENT
        self.data = [UNREADABLE]
        self.id = None
        return 0


def _bad_string(value: str) -> str | None:
    if "\x00" in value:
        return "Strings in events must not contain NUL characters"
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return "Strings in events must be valid Unicode (no lone surrogates)"
    return None


def _walk(value: Any, depth: int = 0, budget: int = MAX_NODES) -> int:
    """Plain JSON only, at most MAX_DEPTH deep and MAX_NODES values and keys in all, strings
    without NUL or lone surrogates. Returns the budget left; recursion stops at MAX_DEPTH, so no
    payload can exhaust the stack (what python-socketio's decoder accepts is bounded by its own
    recursion limit first)."""
    budget -= 1
    t = type(value)
    if t is str:
        problem = _bad_string(value)
        if problem:
            raise Malformed(problem)
    elif t is dict or t is list:
        if depth >= MAX_DEPTH:
            raise Malformed(f"The event's arguments nest too deeply (at most {MAX_DEPTH} levels)")
        if len(value) > budget:
            raise Malformed(f"The event's arguments are too large (more than {MAX_NODES} values)")
        if t is dict:
            for k, v in value.items():
                problem = _bad_string(k)
                if problem:
                    raise Malformed(problem)
                budget = _walk(v, depth + 1, budget - 1)
        else:
            for v in value:
                budget = _walk(v, depth + 1, budget)
        if budget < 0:
            raise Malformed(f"The event's arguments are too large (more than {MAX_NODES} values)")
    elif t is int:
        if not -2**63 <= value < 2**63:
            raise Malformed("Numbers in events must fit in 64 bits")
    elif t is float:
        if not math.isfinite(value):
            raise Malformed("Numbers in events must be finite")
        if not -2.0**63 <= value < 2.0**63:  # (a codec may read a huge integer as a float)
            raise Malformed("Numbers in events must fit in 64 bits")
    elif not (value is None or t is bool):
        raise Malformed("Events carry JSON only (no binary attachments)")
    return budget


def _plainly_small(payload: dict[str, Any]) -> bool:
    """True when `payload` certainly passes _walk: an object nesting at most two levels of ASCII
    strings without NUL, 64-bit integers, booleans and nulls, at most 16 keys per object (so at
    most 546 values and keys, under MAX_NODES): a signal's payload. Only a shortcut to accept:
    anything else, acceptable or not, is walked."""
    if len(payload) > 16:
        return False
    for key, value in payload.items():
        t = type(value)
        if t is str:
            if not (value.isascii() and "\x00" not in value):
                return False
        elif t is dict:
            if len(value) > 16:
                return False
            for k, v in value.items():
                t = type(v)
                if t is str:
                    if not (v.isascii() and "\x00" not in v):
                        return False
                elif t is int:
                    if not -2**63 <= v < 2**63:
                        return False
                elif not (v is None or t is bool):
                    return False
                if not (k.isascii() and "\x00" not in k):
                    return False
        elif t is int:
            if not -2**63 <= value < 2**63:
                return False
        elif not (value is None or t is bool):
            return False
        if not (key.isascii() and "\x00" not in key):
            return False
    return True


def _resolve(doc: dict[str, Any], ref: str) -> Any:
    node: Any = doc
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return node


def _model(pointer: str) -> type[BaseModel]:
    """The generated model (generated/event_args.py) of the document's schema at `pointer`."""
    model: type[BaseModel] = getattr(event_args, pointer.rsplit("/", 1)[1])
    return model


def _where(payload: object, loc: tuple[int | str, ...]) -> str:
    """A pydantic error location as a path in the payload (`.sdp.sdp`, `[0]`), without the
    steps that name a model or a branch of a union rather than a key or an index."""
    where = ""
    for step in loc:
        if isinstance(payload, dict) and isinstance(step, str) and step in payload:
            payload, where = payload[step], f"{where}.{step}"
        elif isinstance(payload, list) and isinstance(step, int) and 0 <= step < len(payload):
            payload, where = payload[step], f"{where}[{step}]"
    return where


class _Rule:
    """An event's payload, validated with its generated model, and the `error` code for each
    argument that breaks it. An argument list (a schema of type array) is checked for its length
    by its own model and argument by argument by the models of its `prefixItems` (which the
    generator leaves out of the list's model)."""

    def __init__(self, doc: dict[str, Any], pointer: str, codes: tuple[str, ...], hot: bool = False):
        self.name = pointer.rsplit("/", 1)[1]
        schema = _resolve(doc, pointer)
        self.model = _model(pointer)
        self.is_array = schema.get("type") == "array"
        self.items = [_model(item["$ref"]) for item in schema.get("prefixItems", [])]
        self.codes = codes
        # A hot event (a signal, per WebRTC candidate) is first checked by the model's own JSON
        # Schema compiled by jsonschema-rs (a microsecond; pydantic's nested root models take
        # ten): the same rules, except that a JSON Schema integer also takes 1.0 (handlers read
        # numbers as they come); a failure is explained by the model.
        self.fast = jsonschema_rs.validator_for(self.model.model_json_schema()) if hot else None

    def check(self, event: str, args: list[Any]) -> None:
        if self.is_array:
            try:
                self.model.__pydantic_validator__.validate_python(args)
            except ValidationError:
                few = len(args) < len(self.items)
                code = self.codes[0] if few else self.codes[-1]
                raise Malformed(f"{event}: {len(args)} argument(s) do not match the documented {self.name}",
                                code) from None
            for index, (model, arg) in enumerate(zip(self.items, args, strict=False)):
                self._validate(model, arg, event, index)
            return
        if len(args) > 1:
            raise Malformed(f"{event} takes one argument, not {len(args)}", self.codes[0])
        payload = args[0] if args else None
        if self.fast is not None and self.fast.is_valid(payload):
            return
        self._validate(self.model, payload, event, None)

    def _validate(self, model: type[BaseModel], payload: object, event: str, index: int | None) -> None:
        try:
            model.__pydantic_validator__.validate_python(payload)
            if self.fast is None:
                return
            where = ""  # (the compiled schema refused what the model takes: refused all the same)
        except ValidationError as e:
            where = _where(payload, e.errors()[0]["loc"])
        if index is None:
            raise Malformed(f"{event}: the payload{where} does not match the documented {self.name}", self.codes[0])
        code = self.codes[min(index, len(self.codes) - 1)]
        raise Malformed(f"{event}: argument {index + 1}{where} does not match the documented {model.__name__} "
                        f"of {self.name}", code)


# Per event: the code of a bad argument, by position (the last one also covers extra arguments).
_CODES = {
    "join-room": ("invalid_room_id", "invalid_argument"),
    "leave-room": ("invalid_room_id",),
    "signal": ("invalid_signal",),
    "toggle-mic": ("invalid_argument",),
    "subscribe-channel": ("invalid_channel_id", "invalid_argument"),
    "unsubscribe-channel": ("invalid_channel_id",),
    "typing": ("invalid_channel_id",),
}
# Per event: checked first by a compiled schema (see _Rule).
_HOT = ("signal",)


def _load_rules() -> dict[str, _Rule]:
    doc = yaml.safe_load(_DOC.read_text())
    rules: dict[str, _Rule] = {}
    for op in doc["operations"].values():
        if op["action"] != "receive":
            continue
        for ref in op["messages"]:
            node = _resolve(doc, ref["$ref"])
            if "$ref" in node:
                node = _resolve(doc, node["$ref"])
            event = node["name"]
            rules[event] = _Rule(doc, node["payload"]["$ref"], _CODES.get(event, ("invalid_argument",)),
                                 hot=event in _HOT)
    return rules


RULES = _load_rules()


def check_event(event: str | None, args: tuple[Any, ...]) -> list[Any]:
    """The event's arguments, checked (trailing nulls dropped: an optional argument a JavaScript
    client sent as null or undefined); raises Malformed."""
    if event == UNREADABLE:
        raise Malformed("The event could not be read: send [name, ...arguments] as JSON nesting at most "
                        f"{MAX_DEPTH} levels")
    out = list(args)
    while out and out[-1] is None:
        out.pop()
    # One object argument (a signal's): checked in one pass when plainly small (see _plainly_small).
    if not (len(out) == 1 and type(out[0]) is dict and _plainly_small(out[0])):
        _walk(out)
    rule = RULES.get(event) if event is not None else None
    if rule is not None and event is not None:
        rule.check(event, out)
    return out
