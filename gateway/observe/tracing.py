"""OpenTelemetry traces, on only when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set (nothing is imported otherwise).

A sink like metrics and the audit: each finished request's record becomes a span, ``{operation} {model}``,
with children for classify+policy, each upstream attempt (retries and fallbacks, one span each, laid end to end from
their recorded durations) and, for a stream, the stream from its first byte to its end. Built after the
fact from the record, so the request path does no tracing work (the record keeps one more timestamp,
when the routing decision was made: ``classify+policy`` spans arrival to decision). The attributes follow
the GenAI semantic conventions (``gen_ai.*``) plus the gateway's own (``switchyard.*``). A client's W3C ``traceparent``
makes the request span its child. The exporter is OTLP over HTTP/protobuf, configured by the standard
``OTEL_*`` variables (endpoint, headers, ``OTEL_SERVICE_NAME``, ``OTEL_BSP_*`` batching).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.observe.record import RequestRecord

ENDPOINT = "OTEL_EXPORTER_OTLP_ENDPOINT"
OPERATIONS = {
    "chat": "chat",
    "messages": "chat",
    "responses": "chat",
    "completions": "text_completion",
    "embeddings": "embeddings",
}


class Tracing:
    def __init__(self, env: Mapping[str, str]) -> None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        endpoint = env[ENDPOINT].rstrip("/") + "/v1/traces"
        resource = Resource.create({"service.name": env.get("OTEL_SERVICE_NAME") or "switchyard"})
        self.provider = TracerProvider(resource=resource)
        self.provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
        self.tracer = self.provider.get_tracer("switchyard")
        self.propagator = TraceContextTextMapPropagator()

    def record(self, record: RequestRecord) -> None:
        start = int(record.time * 1e9)
        end = start + int(record.seconds * 1e9)
        parent = self.propagator.extract({"traceparent": record.traceparent}) if record.traceparent else None
        operation = OPERATIONS.get(record.endpoint, record.endpoint)
        span = self.tracer.start_span(
            f"{operation} {record.model}", context=parent, start_time=start, attributes=_attributes(record)
        )
        from opentelemetry import trace

        inner = trace.set_span_in_context(span)
        at = start
        if record.decided_seconds is not None:  # auth, normalize, classify and policy
            at = start + int(record.decided_seconds * 1e9)
            self.tracer.start_span("classify+policy", context=inner, start_time=start).end(end_time=at)
        for number, attempt in enumerate(record.attempts, 1):
            took = int(attempt.seconds * 1e9)
            facts: dict[str, Any] = {"switchyard.deployment": attempt.deployment, "switchyard.attempt": number}
            facts["switchyard.outcome"] = attempt.code
            if attempt.error:
                facts["error.type"] = attempt.code
            name = f"attempt {attempt.deployment}"
            child = self.tracer.start_span(name, context=inner, start_time=at, attributes=facts)
            child.end(end_time=at + took)
            at += took
        if record.ttft_seconds is not None:
            stream = self.tracer.start_span("stream", context=inner, start_time=start + int(record.ttft_seconds * 1e9))
            stream.end(end_time=end)
        if record.status >= 500:
            from opentelemetry.trace import Status, StatusCode

            span.set_status(Status(StatusCode.ERROR, record.error_code or str(record.status)))
        span.end(end_time=end)

    def close(self) -> None:
        self.provider.shutdown()  # flushes what is batched


def _attributes(record: RequestRecord) -> dict[str, Any]:
    dep, decision = record.deployment, record.decision
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": OPERATIONS.get(record.endpoint, record.endpoint),
        "gen_ai.request.model": decision.requested_model if decision else record.model,
        "gen_ai.response.model": record.model,
        "gen_ai.usage.input_tokens": record.input_tokens,
        "gen_ai.usage.output_tokens": record.output_tokens,
        "http.response.status_code": record.status,
        "switchyard.tenant": record.tenant,
        "switchyard.tier": record.tier,
        "switchyard.route": record.route,
        "switchyard.policy_revision": record.policy_revision,
        "switchyard.request_id": record.request_id,
    }
    if dep is not None:
        attributes["gen_ai.provider.name"] = dep.spec.operator
        attributes["switchyard.deployment"] = dep.id
        attributes["switchyard.origin"] = dep.model.origin
        attributes["switchyard.jurisdiction"] = dep.spec.jurisdiction
    if record.error_code:
        attributes["error.type"] = record.error_code
    return attributes


def open_tracing(env: Mapping[str, str]) -> Tracing | None:
    """Tracing when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set, else None (and opentelemetry is never imported)."""
    return Tracing(env) if env.get(ENDPOINT) else None
