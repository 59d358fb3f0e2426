"""The configured channel layer keeps an idle receiver waiting: a run page open on a quiet run
must not drop its socket every few seconds."""

import asyncio

import pytest
from channels.layers import DEFAULT_CHANNEL_LAYER, channel_layers

IDLE_S = 7  # longer than redis-py's default 5 s read timeout


@pytest.mark.slow
@pytest.mark.timeout(30)
def test_a_receiver_idle_for_longer_than_a_read_timeout_gets_the_next_message():
    async def wait_then_send():
        # The configured layer, as an instance of its own: the process's shared one may be
        # receiving on another test's event loop, and refuses a second loop.
        layer = channel_layers.make_backend(DEFAULT_CHANNEL_LAYER)
        channel = await layer.new_channel("idle.")

        async def send_later():
            await asyncio.sleep(IDLE_S)
            await layer.send(channel, {"type": "late"})

        sender = asyncio.create_task(send_later())
        message = await layer.receive(channel)
        await sender
        return message

    assert asyncio.run(wait_then_send()) == {"type": "late"}
