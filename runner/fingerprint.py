"""Reuse fingerprints: a digest of everything that decides what a step produces.

A step may reuse an earlier result when its fingerprint is the same: the same code, the same
resolved params, the same input artifacts (by digest) and the same environment. Only those four
parts go in, so a node's position, label or place in the document never change a fingerprint.

The digest is SHA-256 over canonical JSON (sorted keys, no spaces, ASCII only, floats written
by Python's shortest round-trip repr), so it is the same in every process and on every machine.
JSON keeps 1 and 1.0 apart, so they give different fingerprints; `runner.spec` turns the value of
a float parameter into a float before it gets here, so one parameter value has one spelling.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

DIGEST_SHOWN = 12  # hex characters of a digest shown in a sentence


def canonical_json(value: Any) -> str:
    """The one spelling of a JSON value that fingerprints are taken over.

    Raises ValueError for NaN and infinities, and TypeError for values JSON cannot hold.
    """
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=False)


def fingerprint_parts(
    *,
    code_digest: str,
    params: Mapping[str, Any],
    inputs: Mapping[str, str],
    environment: Mapping[str, Any],
) -> dict[str, Any]:
    """The parts of a fingerprint as plain JSON values (tuples become lists, keys sorted).

    `inputs` maps each input port to the digest of the artifact it receives; `environment`
    holds what else changes results (interpreter version, packages, image).
    """
    parts = {"code": code_digest, "params": dict(params), "inputs": dict(inputs),
             "environment": dict(environment)}
    # A JSON round trip makes the values exactly what a stored copy of them reads back as.
    result: dict[str, Any] = json.loads(canonical_json(parts))
    return result


def fingerprint(parts: Mapping[str, Any]) -> str:
    """The digest of the parts' canonical JSON, as "sha256:<hex>"."""
    return "sha256:" + hashlib.sha256(canonical_json(parts).encode("ascii")).hexdigest()


def explain_changes(previous: Mapping[str, Any] | None, current: Mapping[str, Any]) -> list[str]:
    """Sentences saying why `current` differs from `previous` (the parts of the last run whose
    result could have been reused); empty when nothing changed."""
    if previous is None:
        return ["first run of this node"]
    reasons = ["code changed"] if previous.get("code") != current.get("code") else []
    reasons += _param_changes(_section(previous, "params"), _section(current, "params"))
    reasons += _input_changes(_section(previous, "inputs"), _section(current, "inputs"))
    reasons += _environment_changes(_section(previous, "environment"),
                                    _section(current, "environment"))
    return reasons


def _param_changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    reasons = []
    for name in _names(before, after):
        if name not in before:
            reasons.append(f"parameter {name} added")
        elif name not in after:
            reasons.append(f"parameter {name} removed")
        elif _differ(before[name], after[name]):
            reasons.append(f"parameter {name} changed from {_show(before[name])} to "
                           f"{_show(after[name])}")
    return reasons


def _input_changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    reasons = []
    for name in _names(before, after):
        if name not in before:
            reasons.append(f"input {name} added")
        elif name not in after:
            reasons.append(f"input {name} removed")
        elif before[name] != after[name]:
            reasons.append(f"input {name} changed ({_short(before[name])} -> "
                           f"{_short(after[name])})")
    return reasons


def _environment_changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    changed = [name for name in _names(before, after)
               if name not in before or name not in after or _differ(before[name], after[name])]
    return [f"environment changed: {', '.join(changed)}"] if changed else []


def _section(parts: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    # Parts stored by an older version may lack a section; read that as empty.
    value = parts.get(key)
    return value if isinstance(value, Mapping) else {}


def _names(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    return sorted({*before, *after}, key=str)


def _differ(a: Any, b: Any) -> bool:
    # Compare as the fingerprint does, so that 1 and 1.0 count as a change here too.
    try:
        return canonical_json(a) != canonical_json(b)
    except (TypeError, ValueError):
        return bool(a != b)


def _show(value: Any, limit: int = 40) -> str:
    try:
        text = json.dumps(value, sort_keys=True)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _short(digest: Any) -> str:
    """A digest cut for a sentence, like sha256:abc123abc123…; 12 hex characters are enough
    to tell two digests apart by eye."""
    algorithm, colon, hexdigits = str(digest).rpartition(":")
    clipped = hexdigits[:DIGEST_SHOWN] + "…" if len(hexdigits) > DIGEST_SHOWN else hexdigits
    return f"{algorithm}{colon}{clipped}"
