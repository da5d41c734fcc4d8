"""A tiny WSGI app served exactly as the gateway is (ticketing.web), for the web server's own tests.

    python -m tests.support.slow_web      (PORT, HOST and WEB_* from the environment)

``/api/sleep?s=1.5`` answers after that many seconds, anything else at once.
"""
from urllib.parse import parse_qs


def app(environ, start_response):
    if environ["PATH_INFO"] == "/api/sleep":
        import time

        time.sleep(float(parse_qs(environ.get("QUERY_STRING", "")).get("s", ["1"])[0]))
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", "2")])
    return [b"{}"]


if __name__ == "__main__":
    from ticketing.web import serve

    serve("slow-web", load_app=lambda: app)
