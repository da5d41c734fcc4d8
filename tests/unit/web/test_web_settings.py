"""The web server's pieces that need no server: its 503 answer, its settings, the open-files limit."""
import json
import resource

from ticketing import web


def split(raw: bytes):
    head, _, body = raw.partition(b"\r\n\r\n")
    status, *lines = head.decode().split("\r\n")
    return status, dict(line.split(": ", 1) for line in lines), body


def test_busy_answer_under_api_is_the_json_error_shape_with_retry_after():
    status, headers, body = split(web.busy_response("/api/orders"))
    assert status == "HTTP/1.1 503 Service Unavailable"
    assert headers["Retry-After"] == "1"
    assert headers["Content-Type"] == "application/json"
    assert headers["Connection"] == "close"
    assert int(headers["Content-Length"]) == len(body)
    assert json.loads(body) == {"errors": [{"message": web.BUSY_MESSAGE}]}


def test_busy_answer_elsewhere_is_a_page_and_may_keep_the_connection():
    status, headers, body = split(web.busy_response("/tickets/new", keep_alive=True))
    assert status.startswith("HTTP/1.1 503")
    assert headers["Content-Type"].startswith("text/html")
    assert headers["Retry-After"] == "1"
    assert headers["Connection"] == "keep-alive"
    assert web.BUSY_MESSAGE.encode() in body


def test_a_whole_request_is_recognised_with_its_length_path_and_keep_alive():
    get = b"GET /api/tickets?limit=2 HTTP/1.1\r\nHost: a\r\n\r\n"
    assert web.parse_whole_request(get + b"GET /next") == (len(get), "/api/tickets", True)
    post = b"POST /api/orders HTTP/1.1\r\nContent-Length: 5\r\nConnection: close\r\n\r\n{\"a\"}"
    assert web.parse_whole_request(post) == (len(post), "/api/orders", False)
    old = b"GET /tickets/new HTTP/1.0\r\n\r\n"
    assert web.parse_whole_request(old) == (len(old), "/tickets/new", False)
    assert web.parse_whole_request(old.replace(b"\r\n\r\n", b"\r\nConnection: keep-alive\r\n\r\n"))[2]


def test_anything_but_a_whole_plain_request_is_left_to_a_thread():
    for partial in (b"", b"GET /api/ord", b"GET / HTTP/1.1\r\nHost: a\r\n",
                    b"POST /api/orders HTTP/1.1\r\nContent-Length: 10\r\n\r\n{}",
                    b"POST /api/orders HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
                    b"POST /api/orders HTTP/1.1\r\nContent-Length: x\r\n\r\n",
                    b"GET http://evil/ HTTP/1.1\r\n\r\n", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
                    b"GET / HTTP/1.1\r\nHost : a\r\n\r\n", b"GET / HTTP/1.1\r\nno colon\r\n\r\n"):
        assert web.parse_whole_request(partial) is None, partial


def test_settings_defaults_use_every_core_and_stay_below_the_descriptor_limit(monkeypatch):
    for name in ("WEB_WORKERS", "WEB_THREADS", "WEB_MAX_CONNECTIONS", "WEB_MAX_PENDING", "WEB_QUEUE_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)
    settings = web.WebSettings.load().sized(fd_limit=1024)
    assert settings.web_workers == web.usable_cores()
    assert settings.web_max_connections == 1024 - web.RESERVED_FDS
    assert settings.web_max_pending == settings.web_threads * 4
    assert web.WebSettings.load().sized(fd_limit=1 << 20).web_max_connections == 10_000


def test_settings_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("WEB_WORKERS", "3")
    monkeypatch.setenv("WEB_THREADS", "8")
    monkeypatch.setenv("WEB_MAX_PENDING", "12")
    monkeypatch.setenv("WEB_QUEUE_TIMEOUT", "0.25")
    settings = web.WebSettings.load().sized(fd_limit=4096)
    assert (settings.web_workers, settings.web_threads, settings.web_max_pending,
            settings.web_queue_timeout) == (3, 8, 12, 0.25)


def test_open_files_limit_is_raised_to_the_hard_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    lower = min(soft, 512)
    resource.setrlimit(resource.RLIMIT_NOFILE, (lower, hard))
    try:
        raised = web.raise_fd_limit()
        assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == raised
        assert raised == (hard if hard != resource.RLIM_INFINITY else raised) and raised > lower
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, resource.getrlimit(resource.RLIMIT_NOFILE)[0]), hard))


class FakePool:
    def __init__(self, fail_after=None):
        self.open = self.idle = 0
        self.fail_after = fail_after

    def client(self):
        from contextlib import contextmanager

        @contextmanager
        def checkout():
            if self.fail_after is not None and self.open >= self.fail_after:
                raise ConnectionError("broker down")
            self.open += 1
            yield object()
            self.idle += 1

        return checkout()


def test_warming_opens_one_proxy_per_thread_at_once_and_returns_them_to_the_pool():
    app = type("App", (), {})()
    app.rpc = FakePool()
    assert web.warm_rpc_pool(app, 16) == 16
    assert (app.rpc.open, app.rpc.idle) == (16, 16)


def test_warming_stops_quietly_when_the_broker_is_not_there():
    app = type("App", (), {})()
    app.rpc = FakePool(fail_after=3)
    assert web.warm_rpc_pool(app, 16) == 3
    assert web.warm_rpc_pool(object(), 16) == 0  # the frontend has no pool
