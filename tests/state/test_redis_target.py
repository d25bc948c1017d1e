"""The Redis process settings: modes, multi-host URLs, and errors that name the variable."""

from __future__ import annotations

import pytest

from gateway.state.redis_target import Address, RedisSettingError, RedisTarget, target_from_env


def test_no_url_means_state_in_the_process() -> None:
    assert target_from_env({}) is None
    assert target_from_env({"REDIS_MODE": "standalone"}) is None


def test_standalone_is_the_default() -> None:
    target = target_from_env({"REDIS_URL": "redis://cache:6379/2"})
    assert target == RedisTarget("standalone", "redis://cache:6379/2", timeout_seconds=0.25)


def test_cluster_seed_nodes_and_credentials() -> None:
    env = {"REDIS_URL": "rediss://gw:s%40cret@10.0.0.1:7000,10.0.0.2", "REDIS_MODE": "Cluster"}
    target = target_from_env(env)
    assert target is not None and target.mode == "cluster" and target.tls
    assert target.addresses(6379) == [Address("10.0.0.1", 7000), Address("10.0.0.2", 6379)]
    assert target.credentials() == ("gw", "s@cret")


def test_sentinel_addresses_master_and_db() -> None:
    env = {
        "REDIS_URL": "redis://:pw@s1:26379,s2:26380,s3/3",
        "REDIS_MODE": "sentinel",
        "REDIS_SENTINEL_MASTER": "switchyard",
        "REDIS_WAIT_REPLICAS": "1",
        "REDIS_TIMEOUT_SECONDS": "0.5",
    }
    target = target_from_env(env)
    assert target is not None
    assert (target.master, target.wait_replicas, target.timeout_seconds, target.db()) == ("switchyard", 1, 0.5, 3)
    assert [a.port for a in target.addresses(26379)] == [26379, 26380, 26379]
    assert target.credentials() == (None, "pw")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"REDIS_URL": "redis://x", "REDIS_MODE": "replicated"}, "REDIS_MODE: 'replicated' is not one of"),
        ({"REDIS_MODE": "cluster"}, "REDIS_MODE=cluster needs REDIS_URL"),
        ({"REDIS_URL": "unix:///tmp/r.sock", "REDIS_MODE": "cluster"}, "REDIS_URL: 'unix' is not a scheme"),
        ({"REDIS_URL": "redis://a:1,b:x", "REDIS_MODE": "sentinel"}, "REDIS_URL: the port of 'b:x'"),
        ({"REDIS_URL": "redis://a:1/2", "REDIS_MODE": "cluster"}, "only database 0"),
        ({"REDIS_URL": "redis://a", "REDIS_WAIT_REPLICAS": "one"}, "REDIS_WAIT_REPLICAS: 'one' is not a whole number"),
        ({"REDIS_URL": "redis://a", "REDIS_TIMEOUT_SECONDS": "0"}, "REDIS_TIMEOUT_SECONDS more than 0"),
    ],
)
def test_bad_settings_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(RedisSettingError, match=message):
        target_from_env(env)
