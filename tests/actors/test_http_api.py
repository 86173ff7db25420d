from __future__ import annotations

import socket
from urllib.parse import quote

import orjson
import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actors._api_routes import MAX_BATCH, ApiRoutes
from actors._http_server import MAX_HEAD, HttpServer
from actors._price_board import PriceBoard
from messages import MarkPrice, MarkPrices
from supervisors.clock import FakeClock


@pytest.fixture
def clock():
    return FakeClock(start=1_786_171_900.0, monotonic_start=1_000.0)


@pytest.fixture
def board(clock):
    board = PriceBoard()
    board.apply(
        MarkPrices.from_items(
            [
                MarkPrice(
                    symbol="BTCUSDT",
                    event_time_ms=1_786_171_884_000,
                    mark_price=64991.37,
                    index_price=65016.05,
                    funding_rate=0.00003936,
                    next_funding_time_ms=1_786_176_000_000,
                ),
                MarkPrice(
                    symbol="ETHUSDT",
                    event_time_ms=1_786_171_884_000,
                    mark_price=1981.15,
                    funding_rate=-0.0002,
                ),
                MarkPrice(symbol="币安人生USDT", event_time_ms=1_786_171_884_000, mark_price=0.5),
            ],
            received_ms=1_786_171_885_000,
        ),
        received_mono=clock.monotonic(),
    )
    return board


@pytest.fixture
def health_state():
    return {"healthy": True}


@pytest.fixture
def server(board, clock, health_state):
    def health():
        ok = health_state["healthy"]
        return ok, {
            "status": "healthy" if ok else "unhealthy",
            "reasons": [] if ok else ["feed market stalled"],
        }

    routes = ApiRoutes(
        board, clock, 180.0, health, lambda: "# TYPE volspike_up gauge\nvolspike_up 1\n"
    )
    srv = HttpServer("127.0.0.1", 0, routes, idle_timeout_s=30).start()
    yield srv
    assert srv.stop()


@pytest.fixture
def base(server):
    return f"http://127.0.0.1:{server.port}"


def test_one_symbol_is_served_with_every_field_and_lookup_ignores_case(base):
    body = requests.get(f"{base}/funding/btcusdt", timeout=5).json()
    assert body == {
        "symbol": "BTCUSDT",
        "markPrice": 64991.37,
        "indexPrice": 65016.05,
        "fundingRate": 0.00003936,
        "nextFundingTime": 1_786_176_000_000,
        "lastUpdateTime": 1_786_171_884_000,
        "updatedAt": 1_786_171_885.0,
        "ageSeconds": 0.0,
        "stale": False,
    }


def test_values_we_do_not_have_are_omitted_not_zero(base):
    body = requests.get(f"{base}/funding/ETHUSDT", timeout=5).json()
    assert "indexPrice" not in body
    assert "nextFundingTime" not in body
    assert body["fundingRate"] == -0.0002


def test_age_grows_and_the_stale_flag_flips_past_the_threshold(base, clock):
    clock.advance(180.5)
    body = requests.get(f"{base}/funding/BTCUSDT", timeout=5).json()
    assert body["ageSeconds"] == 180.5
    assert body["stale"] is True


def test_a_non_ascii_symbol_works_percent_encoded(base):
    response = requests.get(f"{base}/funding/{quote('币安人生usdt')}", timeout=5)
    assert response.status_code == 200
    assert response.json()["symbol"] == "币安人生USDT"


def test_unknown_symbols_are_404_and_malformed_ones_400(base):
    response = requests.get(f"{base}/funding/NOPEUSDT", timeout=5)
    assert (response.status_code, response.json()) == (
        404,
        {"error": "symbol not found", "symbol": "NOPEUSDT"},
    )
    for bad in ["a-b", "x" * 41, "%ZZ", "%FF", "..%2F.."]:
        assert requests.get(f"{base}/funding/{bad}", timeout=5).status_code == 400, bad


@pytest.mark.parametrize(
    "path", ["/funding?symbols=btcusdt,NOPE,ETHUSDT", "/funding/batch?symbols=btcusdt,NOPE,ETHUSDT"]
)
def test_the_batch_form_works_and_lists_what_is_missing(base, path):
    body = requests.get(base + path, timeout=5).json()
    assert [d["symbol"] for d in body["data"]] == ["BTCUSDT", "ETHUSDT"]
    assert (body["missing"], body["found"], body["total"]) == (["NOPE"], 2, 3)


def test_all_symbols_are_served_without_a_query(base):
    body = requests.get(f"{base}/funding", timeout=5).json()
    assert [d["symbol"] for d in body["data"]] == ["BTCUSDT", "ETHUSDT", "币安人生USDT"]


@pytest.mark.parametrize(
    "path",
    [
        "/funding/batch",
        "/funding?symbols=",
        "/funding?symbols=,,",
        "/funding?other=1",
        "/funding?symbols=a-b",
        "/funding?symbols=" + ",".join(["A"] * (MAX_BATCH + 1)),
        "/funding?%zz",
    ],
)
def test_malformed_batch_queries_are_400(base, path):
    assert requests.get(base + path, timeout=5).status_code == 400


def test_health_is_200_when_healthy_and_503_with_reasons_otherwise(base, health_state):
    for path in ("/health", "/funding/health"):
        assert requests.get(base + path, timeout=5).status_code == 200
    health_state["healthy"] = False
    response = requests.get(f"{base}/health", timeout=5)
    assert response.status_code == 503
    assert response.json()["reasons"] == ["feed market stalled"]


def test_metrics_are_prometheus_text(base):
    response = requests.get(f"{base}/metrics", timeout=5)
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert "volspike_up 1" in response.text


def test_wrong_methods_get_405_with_allow_and_unknown_paths_404(base):
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        response = requests.request(method, f"{base}/funding/BTCUSDT", data=b"x", timeout=5)
        assert response.status_code == 405
        assert response.headers["Allow"] == "GET, HEAD"
    assert requests.get(f"{base}/nope", timeout=5).status_code == 404


def test_head_returns_headers_without_a_body(base):
    response = requests.head(f"{base}/funding/BTCUSDT", timeout=5)
    assert response.status_code == 200
    assert int(response.headers["Content-Length"]) > 0
    assert response.content == b""


def _raw(port: int, payload: bytes, *, read_all: bool = True) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(payload)
        if not read_all:
            return sock.recv(65536)
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        for _ in range(1000):
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)


def test_pipelined_keep_alive_requests_are_answered_in_order(server):
    requests_ = b"".join(
        f"GET /funding/{s} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
        for s in ("BTCUSDT", "NOPE", "ETHUSDT")
    )
    reply = _raw(server.port, requests_)
    assert reply.count(b"HTTP/1.1 200 OK") == 2
    assert reply.index(b'"BTCUSDT"') < reply.index(b'"NOPE"') < reply.index(b'"ETHUSDT"')


@pytest.mark.parametrize(
    ("payload", "status"),
    [
        (b"GARBAGE\r\n\r\n", b"400"),
        (b"GET /funding/BTCUSDT\r\n\r\n", b"400"),
        (b"GET /funding/BTCUSDT HTTP/2.0\r\n\r\n", b"400"),
        (b"GET funding HTTP/1.1\r\n\r\n", b"400"),
        (b"GET /funding/BTCUSDT HTTP/1.1\r\nbad header\r\n\r\n", b"400"),
        (b"GET /funding/BTCUSDT HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello", b"400"),
        (b"GET /" + b"a" * 3000 + b" HTTP/1.1\r\n\r\n", b"414"),
        (b"GET / HTTP/1.1\r\nX: " + b"a" * (MAX_HEAD + 10) + b"\r\n\r\n", b"431"),
        (b"GET /funding/\xe5\xb8\x81 HTTP/1.1\r\n\r\n", b"400"),
    ],
)
def test_malformed_requests_get_a_clear_4xx_and_the_connection_closes(server, payload, status):
    reply = _raw(server.port, payload)
    assert reply.startswith(b"HTTP/1.1 " + status)
    assert b"Connection: close" in reply


def test_a_connection_flood_beyond_the_limit_gets_503(board, clock):
    routes = ApiRoutes(board, clock, 180.0, lambda: (True, {}), str)
    srv = HttpServer("127.0.0.1", 0, routes, max_connections=2).start()
    try:
        held = [socket.create_connection(("127.0.0.1", srv.port), timeout=5) for _ in range(2)]
        for sock in held:  # make sure both are admitted before the third arrives
            sock.sendall(b"GET / HTTP/1.1\r\n\r\n")
            assert sock.recv(4096).startswith(b"HTTP/1.1 200")
        assert _raw(srv.port, b"").startswith(b"HTTP/1.1 503")
        for sock in held:
            sock.close()
    finally:
        assert srv.stop()


def test_a_handler_bug_is_a_500_and_the_server_keeps_serving(board, clock):
    calls = {"n": 0}

    def broken(method, target):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("bug")
        return ApiRoutes(board, clock, 180.0, lambda: (True, {}), str)(method, target)

    srv = HttpServer("127.0.0.1", 0, broken).start()
    try:
        assert _raw(srv.port, b"GET / HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.1 500")
        assert _raw(srv.port, b"GET /funding/BTCUSDT HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.1 200")
    finally:
        assert srv.stop()


def test_a_busy_port_fails_at_construction_with_an_os_error(server, board, clock):
    with pytest.raises(OSError):
        HttpServer("127.0.0.1", server.port, ApiRoutes(board, clock, 1.0, lambda: (True, {}), str))


def test_stop_closes_the_port_so_it_can_be_bound_again(board, clock):
    srv = HttpServer("127.0.0.1", 0, ApiRoutes(board, clock, 1.0, lambda: (True, {}), str)).start()
    port = srv.port
    assert srv.stop()
    socket.create_server(("127.0.0.1", port)).close()


# --- fuzzing ----------------------------------------------------------------------------

path_chars = st.sampled_from([*list("abcXYZ019/?=&,%._-~"), "%E5", "%ZZ", "%00", " ", "\t"])
paths = st.lists(path_chars, max_size=30).map("".join)


@settings(
    max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    method=st.sampled_from(["GET", "HEAD", "POST", "get", "OPTIONS", "G\x00T", ""]),
    path=paths,
    prefix=st.sampled_from(
        ["/funding/", "/funding", "/funding/batch", "/", "", "/health", "/metrics"]
    ),
    version=st.sampled_from(["HTTP/1.1", "HTTP/1.0", "HTTP/9", ""]),
    headers=st.lists(
        st.sampled_from(["Host: x", "Connection: close", "Content-Length: 0", "X", ": y", "A:b"]),
        max_size=3,
    ),
)
def test_fuzzed_requests_never_get_a_500_and_never_kill_the_server(
    server, method, path, prefix, version, headers
):
    request = (
        f"{method} {prefix}{path} {version}\r\n" + "".join(h + "\r\n" for h in headers) + "\r\n"
    )
    reply = _raw(server.port, request.encode("latin-1"))
    assert reply.startswith(b"HTTP/1.1 ")
    assert not reply.startswith(b"HTTP/1.1 5")
    check = _raw(server.port, b"GET /funding/BTCUSDT HTTP/1.1\r\nConnection: close\r\n\r\n")
    assert check.startswith(b"HTTP/1.1 200")
    assert orjson.loads(check.split(b"\r\n\r\n", 1)[1])["symbol"] == "BTCUSDT"


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.binary(max_size=300))
def test_fuzzed_bytes_never_get_a_500(server, payload):
    reply = _raw(server.port, payload)
    assert not reply.startswith(b"HTTP/1.1 5")
