"""The embedded Valkey answers only clients that hold its password (S11): a step confined by
Landlock alone can reach its socket, which Landlock does not govern, but can do nothing there."""

import stat

import pytest
import redis
from kombu import Connection

from runner import broker


@pytest.fixture
def valkey(tmp_path):
    process = broker.start_embedded_valkey(tmp_path, persist=False)
    yield tmp_path
    process.terminate()
    process.wait()


def test_a_client_without_the_password_is_refused(valkey):
    anonymous = redis.Redis(unix_socket_path=str(broker.embedded_socket(valkey)))
    with pytest.raises(redis.AuthenticationError):
        anonymous.ping()


def test_the_product_reaches_it_through_its_urls(valkey):
    assert redis.Redis.from_url(broker.embedded_redis_url(valkey)).ping()
    with Connection(broker.embedded_broker_url(valkey)) as connection:
        connection.ensure_connection(max_retries=1)
        assert connection.default_channel.client.ping()


def test_the_password_is_kept_out_of_sight(valkey):
    run = valkey / "run"
    assert stat.S_IMODE(run.stat().st_mode) == 0o700
    for name in ("valkey.key", "valkey.conf"):
        assert stat.S_IMODE((run / name).stat().st_mode) == 0o600
    password = broker.embedded_password(valkey)
    assert len(password) == 64 and broker.embedded_password(valkey) == password  # kept
    assert password not in " ".join(broker.valkey_command(valkey))  # /proc shows the command
