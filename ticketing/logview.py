"""How ``ticketing up`` prints the JSON log lines of its children: readably, or as they are.

Each component writes one JSON object per line (``services.common.logs``). For
people, a line becomes ``    orders | 10:00:01.234 INFO  order … expired  [cid=… order=…]``
with a traceback, if any, indented below it; ``ticketing up --json`` prints the
objects unchanged (plus its own lines as objects), for machines.
"""
from __future__ import annotations

import json
import time

#: the ids shown after a message, with their short names
SHOWN_IDS = (("correlation_id", "cid"), ("user_id", "user"), ("order_id", "order"), ("ticket_id", "ticket"),
             ("payment_id", "payment"), ("event_id", "event"))


def parse(line: str) -> dict | None:
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return value if isinstance(value, dict) and "message" in value else None


def human(name: str, line: str) -> list[str]:
    """The lines to print for one line of component ``name``'s output."""
    record = parse(line)
    if record is None:
        return [f"{name:>12} | {line}"]
    who = record.get("component") or name
    moment = str(record.get("time", ""))[11:23]
    ids = " ".join(f"{short}={record[key]}" for key, short in SHOWN_IDS if record.get(key))
    # a message of several lines keeps them all under the component (grep and the eye find them)
    first, *more = str(record.get("message", "")).splitlines() or [""]
    text = f"{who:>12} | {moment} {record.get('level', ''):<5} {first}"
    if ids:
        text += f"  [{ids}]"
    lines = [text]
    for extra in [*more, *str(record.get("traceback") or "").splitlines()]:
        lines.append(f"{who:>12} |     {extra}")
    return lines


def as_json(name: str, line: str) -> list[str]:
    record = parse(line)
    if record is not None:
        return [line.strip()]
    return [own(name, line)]


def own(name: str, message: str, level: str = "INFO") -> str:
    """A line of the supervisor itself (or a stray non-JSON line of a child), as a JSON object."""
    now = time.time()
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z"
    return json.dumps({"time": stamp, "level": level, "component": name, "logger": "ticketing.up",
                       "message": message})
