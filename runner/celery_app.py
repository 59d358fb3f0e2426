"""The compute workers' Celery app. No Django: a worker needs the broker and the server URL.

`celery -A runner.celery_app worker -Q compute.<target>` works, and so does the friendlier
`python -m runner worker --target <target>`.
"""

from __future__ import annotations

from celery import Celery

from runner.broker import celery_config

app = Celery("runner")
app.conf.update(
    celery_config(),
    # Ack after the step: a warm shutdown puts running steps back on the queue. A step whose
    # worker dies is found from missing heartbeats (R2); a late redelivery fails its claim (R3).
    task_acks_late=True,
    task_reject_on_worker_lost=False,
    # With claims fencing duplicates, a broker blip need not kill a ten-hour training.
    worker_cancel_long_running_tasks_on_connection_loss=False,
    worker_soft_shutdown_timeout=30,
    task_default_queue="compute.local",
    imports=("runner.worker",),
)

