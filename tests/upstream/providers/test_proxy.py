"""Outbound proxies: HTTP_PROXY / HTTPS_PROXY / NO_PROXY and a deployment's ``proxy:``, through a real
forwarding proxy (proxy.py) on loopback whose access log shows what went through it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from gateway.errors import UpstreamUnavailable
from gateway.upstream.providers.base import Json, Target
from gateway.upstream.providers.network import ProxyEnv, bypassed, parse_proxy
from gateway.upstream.providers.openai_compat import OpenAICompatibleProvider
from tests.conftest import ClientFactory, GatewayFactory, Upstreams
from tests.factories import deployment, model, tenant, write_policy
from tests.upstream.providers.netparts import ForwardProxy, forward_proxy, https_standin, make_pki

HELLO: Json = {"model": "m", "messages": [{"role": "user", "content": "Say hello"}]}
DEAD_PROXY = "http://127.0.0.1:9"  # the discard port: nothing listens, so a request sent there fails


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ForwardProxy]:
    with forward_proxy(tmp_path_factory.mktemp("proxy")) as running:
        yield running


def target(base_url: str) -> Target:
    return Target("dep", "openai_compatible", "m", base_url, None, 5.0)


def one_deployment(directory: Path, base_url: str, **fields: Any) -> Path:
    return write_policy(
        directory,
        models={"m": model()},
        deployments={"d": deployment("m", base_url, **fields)},
        tenants={"t": tenant("key")},
    )


def authority(url: str) -> str:
    return url.split("://", 1)[1].split("/", 1)[0]


# -- the environment's proxies --------------------------------------------------------------


@pytest.mark.anyio
async def test_an_http_upstream_is_asked_through_http_proxy_in_absolute_form(
    proxy: ForwardProxy, upstreams: Upstreams
) -> None:
    provider = OpenAICompatibleProvider(env={"HTTP_PROXY": proxy.url})
    try:
        answer = await provider.complete("chat", target(upstreams.v1()["a"]), HELLO)
    finally:
        await provider.aclose()
    assert answer["choices"][0]["message"]["content"]
    assert proxy.saw(f"POST {authority(upstreams.urls['a'])}/v1/chat/completions")


@pytest.mark.anyio
async def test_an_https_upstream_is_tunnelled_with_connect_and_verified_end_to_end(
    proxy: ForwardProxy, tmp_path: Path
) -> None:
    pki = make_pki(tmp_path)
    with https_standin(pki) as url:
        provider = OpenAICompatibleProvider(env={"https_proxy": proxy.url}, ssl_context=pki.client_context())
        try:
            answer = await provider.complete("chat", target(url + "/v1"), HELLO)
            chunks = [c async for c in provider.stream("chat", target(url + "/v1"), HELLO | {"stream": True})]
        finally:
            await provider.aclose()
    assert answer["choices"][0]["message"]["content"]
    assert chunks
    assert proxy.saw(f"CONNECT {authority(url)}")


@pytest.mark.anyio
async def test_no_proxy_hosts_are_reached_directly(proxy: ForwardProxy, upstreams: Upstreams) -> None:
    url = upstreams.v1()["b"]
    provider = OpenAICompatibleProvider(env={"HTTP_PROXY": DEAD_PROXY, "NO_PROXY": "example.com, 127.0.0.1"})
    try:
        answer = await provider.complete("chat", target(url), HELLO)
    finally:
        await provider.aclose()
    assert answer["choices"][0]["message"]["content"]
    assert not any(authority(url) in line for line in proxy.lines())


@pytest.mark.anyio
async def test_proxy_credentials_come_from_the_url_and_a_refusal_is_a_clear_upstream_error(
    tmp_path: Path, upstreams: Upstreams
) -> None:
    pki = make_pki(tmp_path)
    with forward_proxy(tmp_path, basic_auth="gw:s3cret") as guarded, https_standin(pki) as url:
        host, port = authority(guarded.url).split(":")
        good = OpenAICompatibleProvider(
            env={"HTTPS_PROXY": f"http://gw:s3cret@{host}:{port}", "HTTP_PROXY": f"http://gw:s3cret@{host}:{port}"},
            ssl_context=pki.client_context(),
        )
        bad = OpenAICompatibleProvider(env={"HTTPS_PROXY": guarded.url, "HTTP_PROXY": guarded.url})
        try:
            assert await good.complete("chat", target(url + "/v1"), HELLO)
            assert await good.complete("chat", target(upstreams.v1()["a"]), HELLO)
            with pytest.raises(UpstreamUnavailable, match=r"refused CONNECT 127\.0\.0\.1:[0-9]+: 407"):
                await bad.complete("chat", target(url + "/v1"), HELLO)
            with pytest.raises(UpstreamUnavailable, match="407 Proxy Authentication Required"):
                await bad.complete("chat", target(upstreams.v1()["a"]), HELLO)
        finally:
            await good.aclose()
            await bad.aclose()
        assert guarded.saw(f"CONNECT {authority(url)}")


# -- a deployment's own proxy: setting, through the gateway ----------------------------------------


def test_a_deployments_proxy_overrides_the_environment_and_none_goes_direct(
    proxy: ForwardProxy, upstreams: Upstreams, tmp_path: Path, make_gateway: GatewayFactory, make_client: ClientFactory
) -> None:
    env = {"HTTP_PROXY": DEAD_PROXY}
    through = one_deployment(tmp_path / "through", upstreams.v1()["a"], proxy=proxy.url)
    direct = one_deployment(tmp_path / "direct", upstreams.v1()["b"], proxy="none")
    with make_gateway(through, env) as url:
        reply = make_client(url, "key").chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
        assert reply.choices[0].message.content
    assert proxy.saw(f"POST {authority(upstreams.urls['a'])}/v1/chat/completions")
    with make_gateway(direct, env) as url:
        reply = make_client(url, "key").chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
        assert reply.choices[0].message.content
    assert not any(authority(upstreams.urls["b"]) in line for line in proxy.lines())


def test_a_dead_proxy_is_a_clear_error_for_the_client(
    upstreams: Upstreams, tmp_path: Path, make_gateway: GatewayFactory, make_client: ClientFactory
) -> None:
    policy = one_deployment(tmp_path, upstreams.v1()["a"], proxy=DEAD_PROXY)
    with make_gateway(policy, {}) as url, pytest.raises(openai.APIStatusError) as failed:
        make_client(url, "key").chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    assert failed.value.status_code == 503
    assert "deployment 'd' is unreachable" in failed.value.message


# -- reading the environment -------------------------------------------------------------------


def test_the_lowercase_variable_wins_and_all_proxy_fills_in() -> None:
    env = ProxyEnv.read({"https_proxy": "http://low:1", "HTTPS_PROXY": "http://up:2", "ALL_PROXY": "http://all:3"})
    assert env.https == parse_proxy("http://low:1")
    assert env.http == parse_proxy("http://all:3")


def test_http_proxy_is_ignored_in_a_cgi_environment() -> None:
    assert ProxyEnv.read({"HTTP_PROXY": "http://p:1", "REQUEST_METHOD": "GET"}).http is None


def test_an_unusable_proxy_variable_is_named() -> None:
    with pytest.raises(ValueError, match="environment variable HTTPS_PROXY: only http:// proxies"):
        ProxyEnv.read({"HTTPS_PROXY": "socks5://p:1080"})


def test_credentials_become_basic_auth_and_are_never_shown() -> None:
    proxy = parse_proxy("http://us%40er:p%3Ass@proxy.corp:3128")
    assert proxy.authorization == "Basic dXNAZXI6cDpzcw=="  # base64 of "us@er:p:ss"
    assert str(proxy) == "http://proxy.corp:3128"


@pytest.mark.parametrize(
    ("entries", "host", "port", "direct"),
    [
        (("*",), "anything.example", 443, True),
        (("corp.example",), "api.corp.example", 443, True),
        ((".corp.example",), "corp.example", 443, True),
        (("*.corp.example",), "a.corp.example", 80, True),
        (("corp.example",), "notcorp.example", 443, False),
        (("10.0.0.0/8",), "10.1.2.3", 8000, True),
        (("10.0.0.0/8",), "11.1.2.3", 8000, False),
        (("127.0.0.1:8000",), "127.0.0.1", 8000, True),
        (("127.0.0.1:8000",), "127.0.0.1", 9000, False),
        (("::1",), "::1", 443, True),
        (("[::1]:443",), "::1", 443, True),
        (("localhost",), "LOCALHOST", 80, True),
    ],
)
def test_no_proxy_entries(entries: tuple[str, ...], host: str, port: int, direct: bool) -> None:
    assert bypassed(entries, host, port) is direct
