"""A deployment's ``tls:`` through the gateway, against https stand-ins whose certificates trustme made:
its own CA, an unknown CA, a server that requires a client certificate, ``verify: false``, and TLS
through a CONNECT tunnel."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import openai
import pytest

from gateway.policyfiles.loader import PolicyError, load_policy_dir
from tests.conftest import ClientFactory, GatewayFactory
from tests.factories import deployment, model, tenant, write_policy
from tests.upstream.providers.netparts import Pki, forward_proxy, https_standin, make_pki

MESSAGES: list[Any] = [{"role": "user", "content": "Say hello"}]


def policy(directory: Path, base_url: str, **fields: Any) -> Path:
    return write_policy(
        directory,
        models={"m": model()},
        deployments={"d": deployment("m", base_url, **fields)},
        tenants={"t": tenant("key")},
    )


def ask(make_client: ClientFactory, url: str) -> str:
    reply = make_client(url, "key").chat.completions.create(model="m", messages=MESSAGES)
    return reply.choices[0].message.content or ""


def refused(make_client: ClientFactory, url: str) -> openai.APIStatusError:
    with pytest.raises(openai.APIStatusError) as failed:
        ask(make_client, url)
    return failed.value


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return make_pki(tmp_path)


def test_a_ca_file_trusts_the_deployments_own_ca(
    pki: Pki, tmp_path: Path, make_gateway: GatewayFactory, make_client: ClientFactory
) -> None:
    with https_standin(pki) as upstream:
        trusting = policy(tmp_path / "p", upstream + "/v1", tls={"ca_file": str(pki.ca_file)})
        with make_gateway(trusting, {}) as url:
            assert ask(make_client, url)


def test_an_unknown_ca_is_a_clear_upstream_error(
    pki: Pki, tmp_path: Path, make_gateway: GatewayFactory, make_client: ClientFactory
) -> None:
    other = make_pki(tmp_path / "other")
    with https_standin(pki) as upstream:
        wrong = policy(tmp_path / "p", upstream + "/v1", tls={"ca_file": str(other.ca_file)})
        with make_gateway(wrong, {}) as url:
            error = refused(make_client, url)
    assert error.status_code == 503
    assert "deployment 'd' is unreachable: TLS failed (certificate verify failed: unable to get local issuer" in (
        error.message
    )


def test_mtls_works_with_the_client_certificate_and_fails_without(
    pki: Pki, tmp_path: Path, make_gateway: GatewayFactory, make_client: ClientFactory
) -> None:
    with https_standin(pki, require_client_cert=True) as upstream:
        with_cert = policy(
            tmp_path / "with",
            upstream + "/v1",
            tls={"ca_file": str(pki.ca_file), "cert_file": str(pki.client_cert), "key_file": str(pki.client_cert)},
        )
        without = policy(tmp_path / "without", upstream + "/v1", tls={"ca_file": str(pki.ca_file)})
        with make_gateway(with_cert, {}) as url:
            assert ask(make_client, url)
        with make_gateway(without, {}) as url:
            error = refused(make_client, url)
    assert error.status_code == 503
    assert "deployment 'd' is unreachable" in error.message


def test_verify_false_works_and_is_warned_about(
    pki: Pki, tmp_path: Path, make_gateway: GatewayFactory, make_client: ClientFactory, caplog: pytest.LogCaptureFixture
) -> None:
    with https_standin(pki) as upstream:
        unchecked = policy(tmp_path / "p", upstream + "/v1", tls={"verify": False})
        with caplog.at_level(logging.WARNING, logger="gateway"), make_gateway(unchecked, {}) as url:
            assert ask(make_client, url)
    assert "deployments.d.tls.verify is false: its certificate is not checked" in caplog.text


def test_tls_runs_end_to_end_through_a_connect_tunnel(
    pki: Pki, tmp_path: Path, make_gateway: GatewayFactory, make_client: ClientFactory
) -> None:
    with forward_proxy(tmp_path) as proxy, https_standin(pki) as upstream:
        through = policy(tmp_path / "p", upstream + "/v1", proxy=proxy.url, tls={"ca_file": str(pki.ca_file)})
        with make_gateway(through, {}) as url:
            assert ask(make_client, url)
        assert proxy.saw("CONNECT " + upstream.removeprefix("https://"))


def test_a_tls_file_that_does_not_load_fails_the_policy_naming_the_key(pki: Pki, tmp_path: Path) -> None:
    missing = policy(tmp_path / "p", "https://127.0.0.1:1/v1", tls={"ca_file": str(tmp_path / "nope.pem")})
    with pytest.raises(PolicyError, match=r"deployments\.d\.tls: cannot load .*nope\.pem"):
        load_policy_dir(missing, {})
    not_a_key = policy(tmp_path / "q", "https://127.0.0.1:1/v1", tls={"cert_file": str(pki.ca_file)})
    with pytest.raises(PolicyError, match=r"deployments\.d\.tls: cannot load"):
        load_policy_dir(not_a_key, {})


@pytest.mark.parametrize(
    ("tls", "message"),
    [({"key_file": "k.pem"}, "key_file needs cert_file"), ({"verify": False, "ca_file": "a"}, "no use with verify")],
)
def test_inconsistent_tls_settings_are_refused(tmp_path: Path, tls: dict[str, Any], message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        load_policy_dir(policy(tmp_path, "https://127.0.0.1:1/v1", tls=tls), {})


def test_litellm_deployments_refuse_what_litellm_cannot_do_per_deployment(tmp_path: Path) -> None:
    for name, fields in {"proxy": {"proxy": "none"}, "tls": {"tls": {"ca_file": "ca.pem"}}}.items():
        directory = policy(tmp_path / name, "https://x", provider="anthropic", **fields)
        with pytest.raises(PolicyError, match="litellm"):
            load_policy_dir(directory, {})
