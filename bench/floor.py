"""The floor every gateway route stands on: Flask under the same web server making one nameko RPC to a no-op.

    python -m bench.floor service   the no-op nameko service (``bench_floor.ping``)
    python -m bench.floor web       GET /floor -> one RPC through the gateway's RPC pool (PORT, WEB_* as the gateway)

Only the benchmark starts these, next to the app and on its broker vhost, so a
route's requests/s can be read against what one RPC through this stack costs.
"""
from __future__ import annotations

import sys


def service_class():
    from nameko.rpc import rpc

    class FloorService:
        name = "bench_floor"

        @rpc
        def ping(self):
            return {"ok": True}

    return FloorService


def floor_app():
    from flask import Flask, jsonify

    from gateway.rpc import RpcPool
    from gateway.settings import GatewaySettings

    app = Flask("bench_floor")
    settings = GatewaySettings.load()
    pool = RpcPool(settings.nameko_config(), timeout=settings.rpc_timeout)

    @app.get("/floor")
    def floor():
        with pool.client() as rpc:
            return jsonify(rpc.bench_floor.ping())

    @app.get("/healthz")
    def healthz():
        return jsonify({"status": "ok"})

    return app


def main(argv: list[str]) -> None:
    if argv[:1] == ["service"]:
        import eventlet

        eventlet.monkey_patch()
        from nameko.cli.run import run

        from services.common.settings import ServiceSettings

        config = ServiceSettings.load().nameko_config()
        config.pop("WEB_SERVER_ADDRESS", None)
        run([service_class()], config)
    elif argv[:1] == ["web"]:
        from ticketing.web import serve

        serve("floor", load_app=floor_app)
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
