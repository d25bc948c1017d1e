"""The fault matrix (issue #17): each upstream fault x {plain, stream} x three layouts, through a real gateway.

A few requests a cell here (``FAULT_MATRIX_REQUESTS`` to change it); ``python -m bench.faults`` sends
1,000 a cell. For every cell: the client gets the answer or error this file expects, in the API's
shape, before the deadline; the denied deployment is never called; and the gateway's file descriptors
and connections to the faulty upstream come back to where they were. The table is printed at the end.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.faults.matrix import (
    FAULTY_DEPLOYMENTS,
    HANG_SECONDS,
    LAYOUTS,
    MODES,
    SLOW,
    Address,
    Cell,
    FaultGateway,
    address_of,
    fault_gateway,
    run_cell,
)
from tests.faults.upstream import FAULTS, Fault

REQUESTS = int(os.environ.get("FAULT_MATRIX_REQUESTS", "2"))
CELLS: list[Cell] = []  # every cell run, for the table at the end (tests/faults/conftest.py)
# Faults that come after the first bytes of a stream reached the client: no fallback can hide them then.
MID_STREAM: frozenset[Fault] = frozenset({"reset_mid_body", "truncated_stream"})
FAILED = "503 all_candidates_failed"
BAD = "502 upstream_bad_response"
TIMEOUT = "504 upstream_timeout"
# What a client gets when no allowed deployment can answer: the error keeps the fault's meaning.
ERRORS: dict[Fault, set[str]] = {
    "http_500": {FAILED},
    "http_503_retry_after": {FAILED},
    "http_429": {"429 rate_limit_exceeded"},
    "connect_refused": {FAILED},
    "connect_timeout": {TIMEOUT},
    "read_timeout": {TIMEOUT},
    "reset_before_head": {FAILED},
    "reset_mid_body": {FAILED},
    "slow_first_byte": {TIMEOUT},
    "truncated_stream": {FAILED},
    "invalid_json": {BAD},
    "invalid_sse": {BAD, FAILED},  # HTML for a plain answer is a bad response; junk framing ends the stream early
    "huge_body": {BAD, FAILED},  # too large; or the connection the gateway dropped is reset under the retry
    "gzip_bomb": {BAD},
}


@pytest.fixture(scope="module")
def gateways(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[Address, FaultGateway]]:
    """One gateway per kind of address, started when first needed."""
    import contextlib

    with contextlib.ExitStack() as stack:
        started: dict[Address, FaultGateway] = {}

        class Lazy(dict[Address, FaultGateway]):
            def __missing__(self, address: Address) -> FaultGateway:
                directory = tmp_path_factory.mktemp(address)
                started[address] = stack.enter_context(fault_gateway(address, directory))
                return started[address]

        yield Lazy()


def expected(fault: Fault, layout: str, mode: str) -> set[str]:
    if mode == "stream" and fault in MID_STREAM:  # whatever the layout: the client already has the first bytes
        return {"200 stream, then error event upstream_unavailable"}
    if layout == "pair":  # the healthy deployment of the same model answers
        return {"200 from pair-healthy"} if mode == "plain" else {"200 stream from pair-healthy"}
    return ERRORS[fault]


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("fault", FAULTS)
def test_a_fault_gets_a_clear_answer_in_time_within_policy(
    gateways: dict[Address, FaultGateway], fault: Fault, layout: str, mode: str
) -> None:
    gateway = gateways[address_of(fault)]
    gateway.set(fault)
    requests = 1 if fault in SLOW else REQUESTS
    cell = run_cell(gateway, layout, mode, requests)  # type: ignore[arg-type]
    CELLS.append(cell)
    assert not cell.bad, cell.bad
    assert cell.slowest < HANG_SECONDS
    assert cell.denied_calls == 0
    assert set(cell.outcomes) <= expected(fault, layout, mode), cell.summary()
    assert cell.fds[1] <= cell.fds[0], f"file descriptors {cell.fds[0]} -> {cell.fds[1]}"
    # what may stay open: one kept-alive connection per faulty deployment, as the requests are sequential
    assert cell.upstream_connections[1] <= max(cell.upstream_connections[0], FAULTY_DEPLOYMENTS)


def test_the_matrix_has_every_fault_the_issue_names() -> None:
    assert len(FAULTS) == 14
    assert set(ERRORS) == set(FAULTS)
