"""Request smuggling and malformed heads at the real server stack (issue #17), with raw sockets.

The gateway of tests/http/test_edge_limits.py (``gateway serve --demo`` in a process of its own).
Every ambiguous framing gets a 400 in OpenAI's error shape and the connection is closed, so bytes
after it are never read as a request; framings that are unusual but unambiguous are served; pipelined
requests get their answers whole and in order.
"""

from __future__ import annotations

import pytest

from tests.http.test_edge_limits import CHAT, Gateway, connect, error_of, gateway, read_all

__all__ = ["gateway"]  # the module's fixture, shared with test_edge_limits' definition

HEAD = (
    b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
    b"authorization: Bearer demo-key\r\n"
)
# A request hidden in the body: a server that framed the body by the wrong header would answer it.
HIDDEN = b"GET /v1/models HTTP/1.1\r\nhost: x\r\nauthorization: Bearer demo-key\r\n\r\n"
CHUNKED = b"%x\r\n%s\r\n0\r\n\r\n" % (len(CHAT), CHAT)


def exchange(gateway: Gateway, raw: bytes) -> bytes:
    """Send ``raw``, then read until the server closes (each case ends with a close or a refusal)."""
    with connect(gateway) as conn:
        conn.sendall(raw)
        return read_all(conn)


def answers(data: bytes) -> list[int]:
    """The status of every response in ``data``, in order (the gateway always sends Content-Length)."""
    statuses = []
    while data:
        head, _, rest = data.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        statuses.append(int(lines[0].split()[1]))
        length = next(int(line.split(b":")[1]) for line in lines if line.lower().startswith(b"content-length:"))
        data = rest[length:]
    return statuses


AMBIGUOUS = {
    "content-length then transfer-encoding": b"content-length: 4\r\ntransfer-encoding: chunked\r\n\r\n" + CHUNKED,
    "transfer-encoding then content-length": b"transfer-encoding: chunked\r\ncontent-length: %d\r\n\r\n" % len(CHUNKED)
    + CHUNKED,
    "two content-lengths": b"content-length: %d\r\ncontent-length: 5\r\n\r\n" % len(CHAT) + CHAT,
    "an unknown transfer-encoding beside content-length": b"transfer-encoding: xchunked\r\ncontent-length: %d\r\n\r\n"
    % len(CHAT)
    + CHAT,
    "a space before the colon": b"transfer-encoding : chunked\r\n\r\n" + CHUNKED,
    "a bare CR inside x-request-id": b"x-request-id: abc\rinjected: yes\r\ncontent-length: %d\r\n\r\n" % len(CHAT)
    + CHAT,
    "a bare LF inside x-request-id": b"x-request-id: abc\ninjected: yes\r\ncontent-length: %d\r\n\r\n" % len(CHAT)
    + CHAT,
}


@pytest.mark.parametrize("framing", AMBIGUOUS)
def test_an_ambiguous_head_is_a_400_and_nothing_after_it_is_served(gateway: Gateway, framing: str) -> None:
    data = exchange(gateway, HEAD + AMBIGUOUS[framing] + HIDDEN)
    assert answers(data) == [400]
    error = error_of(data, 400)
    assert error["code"] == "invalid_http_request"
    assert b"injected" not in data


@pytest.mark.parametrize(
    "encoding", [b"transfer-encoding: identity, chunked", b"transfer-encoding:\tchunked", b"Transfer-Encoding: CHUNKED"]
)
def test_an_unusual_but_unambiguous_chunked_body_is_served_once(gateway: Gateway, encoding: bytes) -> None:
    data = exchange(gateway, HEAD + encoding + b"\r\nconnection: close\r\n\r\n" + CHUNKED + HIDDEN)
    assert answers(data) == [200]
    assert b'"object":"chat.completion"' in data


def test_pipelined_requests_get_whole_answers_in_order(gateway: Gateway) -> None:
    one = HEAD + b"content-length: %d\r\n\r\n" % len(CHAT) + CHAT
    models = HIDDEN.replace(b"\r\n\r\n", b"\r\nconnection: close\r\n\r\n")
    unauthorized = b"GET /v1/models HTTP/1.1\r\nhost: x\r\n\r\n"
    data = exchange(gateway, one + unauthorized + one + models)
    assert answers(data) == [200, 401, 200, 200]
    assert data.count(b'"object":"chat.completion"') == 2
    assert data.rstrip().endswith(b"}")


def test_http_1_0_without_host_is_served_and_closed(gateway: Gateway) -> None:
    data = exchange(gateway, b"GET /v1/models HTTP/1.0\r\nauthorization: Bearer demo-key\r\n\r\n")
    assert answers(data) == [200]
    assert b'"object":"list"' in data


def test_http_1_1_without_host_is_a_400(gateway: Gateway) -> None:
    data = exchange(gateway, b"GET /v1/models HTTP/1.1\r\nauthorization: Bearer demo-key\r\n\r\n")
    assert answers(data) == [400]
    assert "Host" in str(error_of(data, 400)["message"])


def test_a_request_id_with_characters_outside_the_allowed_set_is_replaced(gateway: Gateway) -> None:
    head = HEAD.replace(b"\r\nauthorization", b"\r\nx-request-id: a b;c<script>\r\nauthorization")
    data = exchange(gateway, head + b"connection: close\r\ncontent-length: %d\r\n\r\n" % len(CHAT) + CHAT)
    assert answers(data) == [200]
    rid = next(line for line in data.split(b"\r\n") if line.lower().startswith(b"x-request-id:"))
    assert b"script" not in rid and rid.split(b":", 1)[1].strip().startswith(b"req_")
