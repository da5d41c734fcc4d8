"""Behind a trusted proxy the frontend names the browser, not the proxy, to the gateway."""
from frontend.app import create_app


def test_proxy_count_makes_the_forwarded_address_the_client():
    app = create_app({"PROXY_COUNT": 1, "TESTING": True, "SECRET_KEY": "frontend-unit-secret-0123456789abcdef" * 32})
    seen = {}

    @app.get("/_whoami")
    def whoami():
        from flask import request

        seen["addr"] = request.remote_addr
        return "ok"

    app.test_client().get("/_whoami", headers={"X-Forwarded-For": "203.0.113.7"},
                          environ_base={"REMOTE_ADDR": "10.0.0.2"})
    assert seen["addr"] == "203.0.113.7"
