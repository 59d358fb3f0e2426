"""R17: the reconciler sees a Redis broker restart from its run id (a private redis-server)."""

import shutil
import subprocess
import time

import pytest
import redis

from pipelines_ui.runs import broker_restarts
from pipelines_ui.runs.broker_restarts import RUN_ID_KEY, broker_restarted
from tests.support import free_port

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None,
                                reason="needs redis-server")


class PrivateRedis:
    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/1"
        self.process: subprocess.Popen | None = None
        self.start()

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                return
            except redis.ConnectionError:
                assert time.monotonic() < deadline
                time.sleep(0.05)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)

    def restart(self) -> None:
        self.stop()
        self.start()


@pytest.fixture
def fresh_reconciler(monkeypatch):
    monkeypatch.setattr(broker_restarts, "_seen", {})  # a process that never looked


@pytest.fixture
def private_redis(fresh_reconciler):
    server = PrivateRedis()
    yield server
    server.stop()


def test_a_restart_is_seen_once_and_a_first_look_is_not_one(private_redis):
    assert [broker_restarted(private_redis.url) for _ in range(2)] == [False, False]
    private_redis.restart()
    assert [broker_restarted(private_redis.url) for _ in range(2)] == [True, False]


def test_a_restart_that_kept_its_data_is_seen_by_a_reconciler_that_never_looked(
        private_redis, monkeypatch):
    redis.Redis.from_url(private_redis.url).set(RUN_ID_KEY, "a run id of an earlier start")
    assert broker_restarted(private_redis.url) is True
    monkeypatch.setattr(broker_restarts, "_seen", {})
    assert broker_restarted(private_redis.url) is False  # another reconciler saw it already


def test_a_broker_that_does_not_answer_or_is_not_redis_is_no_restart(private_redis):
    assert broker_restarted(private_redis.url) is False
    private_redis.stop()
    assert broker_restarted(private_redis.url) is False
    private_redis.start()
    assert broker_restarted("amqp://guest@127.0.0.1//") is False


def test_the_embedded_brokers_socket_url_is_understood(tmp_path, fresh_reconciler):
    sock = tmp_path / "redis.sock"
    server = subprocess.Popen(["redis-server", "--port", "0", "--unixsocket", str(sock),
                               "--save", "", "--appendonly", "no"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"redis+socket://{sock}?virtual_host=1"
        deadline = time.monotonic() + 10
        while not sock.exists():
            assert time.monotonic() < deadline
            time.sleep(0.05)
        broker_restarted(url)
        assert redis.Redis(unix_socket_path=str(sock), db=1).get(RUN_ID_KEY) is not None
    finally:
        server.terminate()
        server.wait(10)
