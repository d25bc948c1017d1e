"""Run the app under uvicorn (uvloop + httptools) and print a banner once it is ready."""

from __future__ import annotations

import logging
import os
import socket
import sys

import uvicorn

from gateway.app import Gateway, create_app
from gateway.policy_loader import PolicyError, load_policy_dir
from gateway.settings import Settings


def banner(settings: Settings, gw: Gateway) -> str:
    base = f"http://{settings.host}:{settings.port}"
    policy = gw.routing.policy
    lines = [
        f"Switchyard gateway listening on {base}  (policy revision {policy.revision} from {policy.source})",
    ]
    if settings.demo:
        from gateway.demo import DEMO_KEYS

        lines += [
            "Demo mode: stand-in upstreams on loopback play a self-hosted Qwen, a self-hosted gpt-oss and OpenAI.",
            "Demo API keys: " + "; ".join(f"{k} ({v})" for k, v in DEMO_KEYS.items()),
            "Try:",
            f"  curl -s {base}/v1/chat/completions -H 'Authorization: Bearer demo-key' "
            "-H 'Content-Type: application/json' "
            '-d \'{"model": "auto", "messages": [{"role": "user", "content": "What is the capital of France?"}]}\'',
            "  (add -i to see the x-gateway-* headers; -H 'x-gateway-explain: 1' for the whole decision)",
        ]
    return "\n".join(lines)


def run(settings: Settings) -> int:
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:  # fail fast, before any socket: the lifespan loads the policy again with the live environment
        load_policy_dir(settings.policies, {} if settings.demo else os.environ)
    except PolicyError as exc:
        print("\n".join(exc.problems), file=sys.stderr)
        print(f"error: {len(exc.problems)} problem(s) in {settings.policies}; not starting", file=sys.stderr)
        return 1
    try:
        sock = socket.create_server((settings.host, settings.port), reuse_port=False)
    except OSError as exc:
        print(f"error: cannot listen on {settings.host}:{settings.port}: {exc}", file=sys.stderr)
        return 1
    app = create_app(settings, on_ready=lambda gw: print(banner(settings, gw), flush=True))
    config = uvicorn.Config(
        app, loop="uvloop", http="httptools", log_level=settings.log_level, access_log=False, lifespan="on"
    )
    server = uvicorn.Server(config)
    server.run(sockets=[sock])
    return 0 if server.started else 1
