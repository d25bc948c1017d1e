"""OpenTelemetry (gateway/observe/tracing.py) against a real OTLP/HTTP receiver on loopback that decodes the
protobuf export: a span per request with the GenAI and switchyard attributes, a child per upstream attempt
(a retry visible), the stream, the client's trace id kept and its traceparent passed on to the upstream.
Off unless OTEL_EXPORTER_OTLP_ENDPOINT is set: then the SDK and exporter are not even imported."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from gateway.standin.control import Fault
from tests.conftest import Upstreams
from tests.factories import REPO, deployment, small_policy
from tests.processes import serve

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"
AUTH = {"authorization": "Bearer open-key"}
HI = {"model": "auto", "messages": [{"role": "user", "content": "What is the capital of France?"}]}


class Receiver(ThreadingHTTPServer):
    spans: list[Any]


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        export = ExportTraceServiceRequest.FromString(body)
        for resource in export.resource_spans:
            for scope in resource.scope_spans:
                self.server.spans.extend(scope.spans)  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver(("127.0.0.1", 0), _Handler)
    server.spans = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def attributes(span: Any) -> dict[str, Any]:
    out = {}
    for kv in span.attributes:
        value = kv.value
        out[kv.key] = value.string_value if value.HasField("string_value") else value.int_value
    return out


def test_requests_become_spans_with_genai_attributes_attempts_and_the_clients_trace(
    tmp_path: Path, upstreams: Upstreams, receiver: Receiver
) -> None:
    v1 = upstreams.v1()
    deployments = {"cn-open-a": deployment("cn-open", v1["a"], max_retries=1, jurisdiction="CN")}
    deployments["us-open-b"] = deployment("us-open", v1["b"])
    deployments["frontier-api"] = deployment("frontier", v1["c"], self_hosted=False, operator="F")
    policy = small_policy(tmp_path / "p", v1, deployments=deployments)
    upstreams.controls["a"].inject(Fault(status=500, times=1))  # the first attempt fails, the retry answers
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{receiver.server_address[1]}"}
    env["OTEL_BSP_SCHEDULE_DELAY"] = "100"
    with serve(policy, env, "--audit-log", "off") as served:
        headers = {**AUTH, "traceparent": TRACEPARENT}
        assert httpx.post(served.url + "/v1/chat/completions", json=HI, headers=headers).status_code == 200
        streamed = httpx.post(served.url + "/v1/chat/completions", json={**HI, "stream": True}, headers=AUTH)
        assert streamed.status_code == 200
    roots = [s for s in receiver.spans if s.name.startswith("chat ")]
    assert len(roots) == 2
    plain = next(s for s in roots if s.trace_id.hex() == TRACE_ID)
    assert plain.parent_span_id.hex() == "00f067aa0ba902b7", "the client's span is the parent"
    facts = attributes(plain)
    assert facts["gen_ai.operation.name"] == "chat" and facts["gen_ai.request.model"] == "auto"
    assert facts["gen_ai.response.model"] == "cn-open" and facts["gen_ai.usage.output_tokens"] > 0
    assert facts["gen_ai.usage.input_tokens"] > 0 and facts["gen_ai.provider.name"] == "self"
    assert facts["switchyard.tenant"] == "open" and facts["switchyard.tier"] == "simple"
    assert facts["switchyard.origin"] == "CN" and facts["switchyard.jurisdiction"] == "CN"
    assert facts["switchyard.policy_revision"]
    children = [s for s in receiver.spans if s.parent_span_id == plain.span_id]
    children.sort(key=lambda s: (s.start_time_unix_nano, s.name != "classify+policy"))
    outcomes = [attributes(s).get("switchyard.outcome") for s in children]
    assert [s.name for s in children] == ["classify+policy", "attempt cn-open-a", "attempt cn-open-a"]
    assert outcomes[2] == "ok" and outcomes[1] != "ok", "the retry is visible"
    assert children[0].end_time_unix_nano <= children[1].start_time_unix_nano <= children[2].start_time_unix_nano
    sent = [call.headers.get("traceparent", "") for call in upstreams.controls["a"].calls()]
    assert len(sent) == 3 and all(TRACE_ID in value for value in sent[:2]), "both attempts pass the trace on"
    assert sent[2] == "", "a request without one sends none"
    (stream_root,) = [s for s in roots if s is not plain]
    names = {s.name for s in receiver.spans if s.parent_span_id == stream_root.span_id}
    assert names == {"classify+policy", "attempt cn-open-a", "stream"}


OFF = """
import sys
from pathlib import Path
from starlette.testclient import TestClient
from gateway.http.app import create_app
from gateway.settings import Settings

app = create_app(Settings(policies=Path(sys.argv[1])), env={})
with TestClient(app) as client:
    hi = {"model": "auto", "messages": [{"role": "user", "content": "Hi"}]}
    answer = client.post("/v1/chat/completions", json=hi, headers={"authorization": "Bearer open-key"})
print(answer.status_code, any(name.startswith(("opentelemetry.sdk", "opentelemetry.exporter")) for name in sys.modules))
"""


def test_off_without_the_endpoint_and_nothing_imported(tmp_path: Path, upstreams: Upstreams) -> None:
    policy = small_policy(tmp_path / "p", upstreams.v1())
    result = subprocess.run(
        [sys.executable, "-c", OFF, str(policy)], capture_output=True, text=True, cwd=REPO, timeout=120, check=True
    )
    assert result.stdout.split() == ["200", "False"]
