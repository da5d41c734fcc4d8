"""/api/healthz (liveness) and /api/readyz (the broker answers)."""
from __future__ import annotations

from flask import Blueprint, current_app, jsonify
from pydantic import BaseModel

from services.common.health import broker_reachable

bp = Blueprint("health", __name__, url_prefix="/api")


class Status(BaseModel):
    """What a probe answers; ``/readyz`` also names each dependency's state under ``checks``."""
    status: str


@bp.get("/healthz")
def healthz():
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz():
    try:
        broker_reachable(current_app.config["NAMEKO"]["AMQP_URI"])
    except Exception as exc:  # report, never raise from a probe
        return jsonify({"status": "unavailable", "checks": {"broker": type(exc).__name__}}), 503
    return jsonify({"status": "ok", "checks": {"broker": "ok"}})
