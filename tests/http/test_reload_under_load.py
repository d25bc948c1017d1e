"""Reload under load, on a served gateway process: the files are rewritten valid -> invalid -> valid many times
and reloaded by the file watch, SIGHUP and the admin endpoint while clients keep sending requests. No request
fails because of a reload, every answer carries a revision that was valid, an invalid one never serves.
With ``--workers 2`` both workers end on the same revision after SIGHUP and after an admin reload."""

from __future__ import annotations

import hashlib
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import openai
import yaml

from gateway.policyfiles.loader import load_policy_dir, policy_files
from tests.conftest import Upstreams
from tests.factories import small_policy, tenant
from tests.processes import serve

ADMIN = {"authorization": "Bearer admin-key"}
ROUNDS = 9  # three of each trigger
TRIGGERS = ("file_watch", "sighup", "admin")


def admin_policy(directory: Path, upstreams: Upstreams) -> Path:
    admin = {"keys": [{"name": "ops", "sha256": tenant("admin-key")["keys"][0]["sha256"]}]}
    return small_policy(directory, upstreams.v1(), admin=admin)


def write_atomically(path: Path, text: str) -> None:
    staged = path.with_name(path.name + ".new")
    staged.write_text(text)
    staged.replace(path)


def write_valid(policy: Path, edit: int) -> str:
    rules = {"deny_origins": ["CN"]} if edit % 2 else {}
    text = f"# edit {edit}\n" + yaml.safe_dump({"tenants": {"open": tenant("open-key", **rules)}})
    write_atomically(policy / "tenants.yaml", text)
    return load_policy_dir(policy, {}).revision


def write_invalid(policy: Path, edit: int) -> str:
    """A broken tenants.yaml (a misspelt rule); the revision it would have had, were it valid."""
    text = f"# edit {edit}\ntenants:\n  open:\n    keys: [{{sha256: {tenant('k')['keys'][0]['sha256']}}}]\n"
    write_atomically(policy / "tenants.yaml", text + "    deny_origin: [CN]\n")
    digest = hashlib.sha256()
    for path in policy_files(policy):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def eventually(check: Callable[[], bool], seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)


def report(url: str) -> dict[str, object]:
    answer: dict[str, object] = httpx.get(url + "/admin/policies", headers=ADMIN, timeout=30).json()
    return answer


def failures(url: str) -> float:
    for line in httpx.get(url + "/metrics", timeout=30).text.splitlines():
        if line.startswith('gateway_policy_reloads_total{outcome="failure"}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


class Load:
    """Client threads (the official openai SDK, no retries) sending chat requests until stopped."""

    def __init__(self, url: str, threads: int = 3) -> None:
        self.stop = threading.Event()
        self.revisions: list[str] = []
        self.errors: list[str] = []
        self.threads = [threading.Thread(target=self._loop, args=(url,)) for _ in range(threads)]

    def _loop(self, url: str) -> None:
        client = openai.OpenAI(base_url=url + "/v1", api_key="open-key", max_retries=0, timeout=60)
        while not self.stop.is_set():
            try:
                raw = client.chat.completions.with_raw_response.create(
                    model="auto", messages=[{"role": "user", "content": "hi"}]
                )
                self.revisions.append(raw.headers["x-gateway-policy-revision"])
            except openai.APIError as exc:
                self.errors.append(repr(exc))

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(90)


def reload_valid(trigger: str, url: str, proc: subprocess.Popen[str], revision: str) -> None:
    if trigger == "sighup":
        proc.send_signal(signal.SIGHUP)
    if trigger == "admin":
        answer = httpx.post(url + "/admin/policies/reload", headers=ADMIN, timeout=30)
        assert answer.status_code == 200 and answer.json()["revision"] == revision
    eventually(lambda: report(url)["revision"] == revision)


def reload_invalid(trigger: str, url: str, proc: subprocess.Popen[str], before: float) -> None:
    if trigger == "sighup":
        proc.send_signal(signal.SIGHUP)
    if trigger == "admin":
        answer = httpx.post(url + "/admin/policies/reload", headers=ADMIN, timeout=30)
        assert answer.status_code == 422 and answer.json()["error"]["problems"]
    eventually(lambda: failures(url) > before)


def test_reloads_under_load_never_fail_a_request_nor_serve_an_invalid_revision(
    tmp_path: Path, upstreams: Upstreams
) -> None:
    policy = admin_policy(tmp_path / "p", upstreams)
    valid = {load_policy_dir(policy, {}).revision}
    invalid: set[str] = set()
    with serve(policy, {}, "--reload-seconds", "0.2", "--audit-log", "off") as served:
        assert served.proc is not None
        with Load(served.url) as load:
            for edit in range(ROUNDS):
                trigger = TRIGGERS[edit % 3]
                revision = write_valid(policy, edit)
                valid.add(revision)
                reload_valid(trigger, served.url, served.proc, revision)
                before = failures(served.url)
                invalid.add(write_invalid(policy, edit))
                reload_invalid(trigger, served.url, served.proc, before)
                state = report(served.url)
                assert state["revision"] == revision, "a refused set never replaces the one in force"
                assert state["last_rejected"] is not None
            final = write_valid(policy, ROUNDS)
            valid.add(final)
            reload_valid("admin", served.url, served.proc, final)
            served_before = len(load.revisions)
            eventually(lambda: len(load.revisions) > served_before + 3)
    assert load.errors == [], load.errors[:5]
    assert len(load.revisions) > ROUNDS * 2, "the clients kept sending throughout"
    assert set(load.revisions) <= valid
    assert not set(load.revisions) & invalid and not valid & invalid
    assert load.revisions[-1] == final
    assert len(set(load.revisions)) > ROUNDS // 2, "the reloads took effect while the clients were sending"


def revisions_of_workers(url: str, pids_wanted: int = 2, tries: int = 200) -> dict[int, str]:
    """Each worker's revision, asking over new connections until both workers have answered."""
    seen: dict[int, str] = {}
    for _ in range(tries):
        state = report(url)  # a new connection each time: the kernel spreads them over the workers
        seen[int(str(state["worker_pid"]))] = str(state["revision"])
        if len(seen) >= pids_wanted:
            break
    return seen


def all_workers_on(url: str, revision: str) -> bool:
    seen = revisions_of_workers(url)
    return len(seen) == 2 and set(seen.values()) == {revision}


def test_every_worker_ends_on_the_same_revision(tmp_path: Path, upstreams: Upstreams) -> None:
    policy = admin_policy(tmp_path / "p", upstreams)
    start = load_policy_dir(policy, {}).revision
    (tmp_path / "metrics").mkdir()
    env = {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics")}
    with serve(policy, env, "--workers", "2", "--reload-seconds", "0", "--audit-log", "off") as served:
        assert served.proc is not None
        eventually(lambda: all_workers_on(served.url, start))
        by_signal = write_valid(policy, 1)
        served.proc.send_signal(signal.SIGHUP)  # to the parent, which passes it on
        eventually(lambda: all_workers_on(served.url, by_signal))
        by_admin = write_valid(policy, 2)
        answer = httpx.post(served.url + "/admin/policies/reload", headers=ADMIN, timeout=30)
        assert answer.status_code == 200 and answer.json()["revision"] == by_admin
        eventually(lambda: all_workers_on(served.url, by_admin))  # the other worker, through the parent
        write_invalid(policy, 3)
        assert httpx.post(served.url + "/admin/policies/reload", headers=ADMIN, timeout=30).status_code == 422
        assert all_workers_on(served.url, by_admin)
        pids = set(revisions_of_workers(served.url))
    assert len(pids) == 2
    assert served.proc.returncode == 0, served.stderr[-3000:]
