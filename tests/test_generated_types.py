"""generated/ earns its place: every type generated from the documents is used by the application
(so mypy checks the code that builds that payload against the document), and the client-event
models validate what the documents say they do."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
APP = ["core", "models", "realtime", "handlers", "projectvoice"]

# Payloads still built as plain dicts (issue 16): none left, every builder takes its generated type.
# A name listed here fails the test once it is used as a type, so the list can only shrink.
NOT_YET_TYPED = {
    "rest": set(),
    "events": set(),
}


def _names(text: str) -> list[str]:
    return [a or b for a, b in re.findall(r"^(?:class (\w+)|(\w+)(?:: TypeAlias)? =)", text, re.M)]


def _app_source() -> str:
    return "\n".join(p.read_text() for d in APP for p in (ROOT / d).rglob("*.py")
                     if "migrations" not in p.parts)


@pytest.mark.parametrize("module", ["rest", "events"])
def test_every_generated_typeddict_is_used(module):
    text = (ROOT / "generated" / f"{module}.py").read_text()
    source = _app_source()
    names = _names(text)
    direct = {n for n in names if re.search(rf"\b{module}\.{n}\b|from generated\.{module} import [^\n]*\b{n}\b", source)}
    pending = NOT_YET_TYPED[module]
    assert not direct & pending, f"typed now, take them off NOT_YET_TYPED: {sorted(direct & pending)}"
    unused = set(names) - _closure(text, direct | pending)
    assert not unused, f"generated but unused: {sorted(unused)}"


def _closure(text: str, used: set[str]) -> set[str]:
    """`used` and the generated types their definitions use (Styles in Info, MessageAuthor in
    Message, RoomId1 in RoomId), transitively."""
    names = set(_names(text))
    todo = set(used)
    while todo:
        body = _definition(text, todo.pop())
        found = {n for n in names - used if re.search(rf"\b{n}\b", body)}
        used |= found
        todo |= found
    return used


def _definition(text: str, name: str) -> str:
    """The source of one top-level definition of a generated module."""
    m = re.search(rf"^(class {name}\b|{name}\b)", text, re.M)
    assert m is not None
    start = text.index("\n", m.end()) + 1
    end = re.search(r"^\S", text[start:], re.M)
    return text[m.start(): start + (end.start() if end else len(text))]


def test_every_client_event_model_is_used_by_validation():
    """Each model in generated/event_args.py is an event's payload, an argument of one, or a
    branch of such a model's union (RoomId1, RoomId2: a number or a string)."""
    from realtime.validation import RULES

    text = (ROOT / "generated" / "event_args.py").read_text()
    direct = {r.model.__name__ for r in RULES.values()} | {m.__name__ for r in RULES.values() for m in r.items}
    assert set(_names(text)) - _closure(text, direct) == set()


@pytest.mark.parametrize("payload,ok", [
    ({"to": "a", "type": "offer", "sdp": "v=0"}, True),
    ({"to": "a", "type": "answer", "sdp": {"type": "answer", "sdp": "v=0"}}, True),
    ({"to": "a", "type": "candidate", "candidate": {"candidate": "c", "sdpMid": None, "sdpMLineIndex": 0}}, True),
    ({"to": "a", "type": "offer", "sdp": ""}, False),
    ({"to": "", "type": "offer", "sdp": "x"}, False),
    ({"to": "a" * 65, "type": "offer", "sdp": "x"}, False),
    ({"to": "a", "type": "rollback", "sdp": "x"}, False),
    ({"to": "a", "type": "candidate", "candidate": {"sdpMLineIndex": "0"}}, False),
    ({"to": 5, "type": "offer", "sdp": "x"}, False),
    ({"type": "offer", "sdp": "x"}, False),
])
def test_a_signals_fast_check_agrees_with_its_model(payload, ok):
    """The compiled schema a signal meets first and the generated model say the same."""
    from pydantic import ValidationError

    from realtime.validation import RULES

    rule = RULES["signal"]
    assert rule.fast is not None and rule.fast.is_valid(payload) is ok
    try:
        rule.model.model_validate(payload)
        assert ok
    except ValidationError:
        assert not ok
