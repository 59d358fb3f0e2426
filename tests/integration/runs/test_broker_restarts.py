"""R17: the reconciler sees a Redis broker restart from its run id (a private redis-server)."""

import shutil
import subprocess

import pytest
import redis

from pipelines_ui.runs import broker_restarts
from pipelines_ui.runs.broker_restarts import RUN_ID_KEY, broker_restarted
from tests.support import free_port, start_private_redis, wait_until

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None,
                                reason="needs redis-server")


class PrivateRedis:
    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/1"
        self.process = start_private_redis(self.port)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)

    def start(self) -> None:
        self.process = start_private_redis(self.port)

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


def test_a_restart_is_seen_by_one_of_the_reconcilers_that_remember_the_old_run_id(
        private_redis, monkeypatch):
    first, second = {}, {}  # each reconciler process's memory of the run id it saw

    def looks(memory: dict[str, str]) -> bool:
        monkeypatch.setattr(broker_restarts, "_seen", memory)
        return broker_restarted(private_redis.url)

    assert [looks(first), looks(second)] == [False, False]
    private_redis.restart()
    # The first to look after the restart sends the queued steps again; the other must not
    # send them once more.
    assert [looks(first), looks(second)] == [True, False]
    assert [looks(first), looks(second)] == [False, False]


def test_a_broker_that_does_not_answer_or_is_not_redis_is_no_restart(private_redis):
    assert broker_restarted(private_redis.url) is False
    private_redis.stop()
    assert broker_restarted(private_redis.url) is False
    private_redis.start()
    assert broker_restarted("amqp://guest@127.0.0.1//") is False


def test_the_embedded_brokers_socket_url_is_understood(tmp_path, fresh_reconciler):
    sock = tmp_path / "redis.sock"
    server = subprocess.Popen(["redis-server", "--port", "0", "--unixsocket", str(sock),
                               "--save", "", "--appendonly", "no", "--requirepass", "pw"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"redis+socket://:pw@{sock}?virtual_host=1"  # as the embedded one's, password too
        client = redis.Redis(unix_socket_path=str(sock), db=1, password="pw")
        wait_until(lambda: _answers(client), timeout=10)
        broker_restarted(url)
        assert client.get(RUN_ID_KEY) is not None
    finally:
        server.terminate()
        server.wait(10)


def _answers(client: redis.Redis) -> bool:
    """Whether the server pings back: its socket file exists before it accepts."""
    try:
        return client.ping()
    except redis.ConnectionError:
        return False
