"""``ticketing status``: is each component ready, what waits in the broker, and the last errors.

Where the components are: ``ticketing up`` writes their health and metrics URLs
to ``$VAR_DIR/ticketing-up.json`` while it runs; elsewhere pass them with
``--component name=http://host:port`` (a service's health port, the web
components' metrics port; ``ready=`` for another readiness URL). Queue depths
come from the broker's management API (``services.common.broker``), for the
``AMQP_URI`` of this shell.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import requests

STATE_FILE = "ticketing-up.json"
TIMEOUT = 2


def state_path(env: dict | None = None) -> Path:
    env = os.environ if env is None else env
    return Path(env.get("VAR_DIR") or "./var").resolve() / STATE_FILE


def endpoints(base_url: str, ready_url: str) -> dict:
    return {"ready": ready_url, "metrics": base_url + "/metrics", "errors": base_url + "/errors"}


def write_state(components: dict, env: dict) -> Path:
    path = state_path(env)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"pid": os.getpid(), "components": components}, indent=2))
    return path


def remove_state(path: Path) -> None:
    try:
        path.unlink()
    except OSError:
        pass


def read_state(path: Path | None = None) -> dict:
    path = path or state_path()
    try:
        return json.loads(path.read_text())["components"]
    except (OSError, ValueError, KeyError):
        return {}


def _get_json(url: str) -> tuple[int | None, dict | str]:
    try:
        response = requests.get(url, timeout=TIMEOUT)
    except requests.RequestException as exc:
        return None, f"not answering ({type(exc).__name__})"
    try:
        return response.status_code, response.json()
    except ValueError:
        return response.status_code, response.text[:200]


def component_status(urls: dict) -> dict:
    code, body = _get_json(urls["ready"])
    ready = code == 200
    detail = ""
    if isinstance(body, dict):
        checks = body.get("checks") or {}
        detail = ", ".join(f"{k}: {v}" for k, v in checks.items() if v != "ok")
    else:
        detail = str(body)
    _code, errors = _get_json(urls["errors"])
    return {"ready": ready, "detail": detail,
            "errors": errors.get("errors", []) if isinstance(errors, dict) else []}


def collect(components: dict, amqp_uri: str, management_url: str | None = None) -> dict:
    from services.common import broker

    report = {"components": {name: component_status(urls) for name, urls in components.items()}}
    try:
        report["queues"] = broker.summary(amqp_uri, management_url)
    except Exception as exc:  # the broker itself is away
        report["queues"] = {"error": f"broker unreachable ({type(exc).__name__})"}
    return report


def render(report: dict, last: int = 5) -> str:
    out = ["component      ready  detail"]
    for name, info in report["components"].items():
        out.append(f"{name:<14} {'yes' if info['ready'] else 'NO':<6} {info['detail']}")
    queues = report.get("queues", {})
    out.append("")
    if "error" in queues:
        out.append(f"queues: {queues['error']}")
    else:
        exp = queues.get("expirations", {})
        holding = "unknown" if exp.get("holding") is None else exp.get("holding")
        out.append(f"pending expirations: {holding} in holding queues (with retries waiting there), "
                   f"{exp.get('due', 0)} due now")
        parked = queues.get("parked")
        if parked is None:
            out.append(f"parked messages: unknown ({queues.get('source')})")
        else:
            total = sum(parked.values())
            out.append(f"parked messages: {total}" + "".join(f"\n  {q}: {n}" for q, n in parked.items() if n))
    out.append("")
    out.append("last errors:")
    errors = sorted(((e.get("time", ""), name, e) for name, info in report["components"].items()
                     for e in info["errors"]), key=lambda item: item[0])[-last * 3:]
    if not errors:
        out.append("  none")
    for moment, name, error in errors:
        cid = f" [cid={error['correlation_id']}]" if error.get("correlation_id") else ""
        first, *more = str(error.get("message", "")).splitlines() or [""]
        out.append(f"  {moment} {error.get('component', name)} {error.get('level')} {first}{cid}")
        out.extend(f"      {line}" for line in more)  # a message of several lines, indented below
    return "\n".join(out)


def main(args) -> int:
    from services.common.settings import CommonSettings

    settings = CommonSettings.load()

    components = read_state()
    for item in args.component or []:
        name, _, url = item.partition("=")
        url = url.rstrip("/")
        components[name] = endpoints(url, url + "/readyz")
    if not components:
        print("No components known: start `ticketing up` (it writes "
              f"{state_path()}) or pass --component name=http://host:port")
        return 2
    report = collect(components, settings.amqp_uri, settings.rabbitmq_management_url)
    print(json.dumps(report, indent=2) if args.json else render(report))
    return 0 if all(info["ready"] for info in report["components"].values()) else 1
