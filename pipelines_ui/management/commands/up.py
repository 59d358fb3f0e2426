"""`manage.py up`: the whole product on one machine, on its embedded defaults.

Migrates, seeds the demo workspace, then supervises the embedded Valkey (broker, channel
layer, rate limits; unless CELERY_BROKER_URL and REDIS_URL name servers of their own), the
ASGI web server, the control worker (with Celery beat) and a compute worker for the `local`
target: a child that dies is restarted, Ctrl-C stops all.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.core.management.utils import get_random_secret_key

from pipelines_ui.compute.models import ComputeTarget
from pipelines_ui.compute.services import issue_worker_key
from pipelines_ui.secrets import keys
from pipelines_ui.services import seed_demo
from pipelines_ui.supervisor import Child, Supervisor
from runner import broker
from runner.key_files import keep_key_file

# Valkey's advice on vm.overcommit_memory concerns its background saves on a busy server, not
# a new user's first minute: it stays in the broker's log.
BROKER_QUIET = re.compile(r"overcommit")


class Command(BaseCommand):
    help = "Start the web server, the control worker with beat and a local compute worker."

    def add_arguments(self, parser):
        parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
        parser.add_argument("--concurrency", type=int, default=2,
                            help="Slots of the local compute worker.")

    def handle(self, *args, host: str, port: int, concurrency: int, **options):
        _keep_keys()
        call_command("migrate", interactive=False, verbosity=0)
        seeded = seed_demo()
        url = f"http://{host}:{port}"
        env = {**os.environ, "PIPELINES_SERVER_URL": os.environ.get("PIPELINES_SERVER_URL", url),
               "CELERY_BROKER_URL": settings.CELERY_BROKER_URL, "REDIS_URL": settings.REDIS_URL}
        log_dir = settings.VAR_DIR / "log"
        children = [*self._embedded_broker(), *self._servers(env, host, port, concurrency)]
        supervisor = Supervisor(children, log_dir, settings.BASE_DIR, self._say)
        self._say(f"Pipelines UI: {url}/  ({seeded.describe()})")
        self._say(f"Logs of each process: {log_dir}/")
        supervisor.run(on_up=lambda: self._say(
            self.style.SUCCESS(f"Pipelines UI is up at {url}/ (Ctrl-C stops it)")))
        self._say("Stopped.")

    def _embedded_broker(self) -> list[Child]:
        """The Valkey under var/, when the broker or the channel layer is left unset."""
        root = settings.VAR_DIR
        if (settings.CELERY_BROKER_URL != broker.embedded_broker_url(root)
                and settings.REDIS_URL != broker.embedded_redis_url(root)):
            return []
        if broker.valkey_answers(root):
            raise CommandError(f"Another `make up` is serving from {root} (its broker answers "
                               f"on {broker.embedded_socket(root)}); stop it first.")
        return [Child("broker", broker.valkey_command(root), dict(os.environ),
                      quiet=BROKER_QUIET, stop_stage=2,
                      ready=lambda process: broker.wait_for_valkey(root, process))]

    def _servers(self, env: dict[str, str], host: str, port: int,
                 concurrency: int) -> list[Child]:
        worker_env = {**env, "PIPELINES_WORKER_KEY": issue_worker_key(
            ComputeTarget.objects.get(name="local"))}
        # The worker needs neither key, and a step can read its worker's environment (S6).
        worker_env.pop(keys.KEY_VARIABLE, None)
        worker_env.pop("SECRET_KEY", None)
        python = sys.executable
        return [
            Child("web", [python, "-m", "uvicorn", "pipelines_ui.asgi:application", "--host",
                          host, "--port", str(port), "--log-level", "warning"], env,
                  stop_stage=1, ready=lambda process: _wait_listening(host, port, process)),
            Child("control", [python, "-m", "celery", "-A", "pipelines_ui", "worker", "-B",
                              "-Q", "control", "-c", "1", "-n", "control@%h", "-l", "INFO"],
                  env),
            Child("compute", [python, "-m", "runner", "worker", "--target", "local",
                              "--concurrency", str(concurrency)], worker_env),
        ]

    def _say(self, line: str) -> None:
        self.stdout.write(line)
        self.stdout.flush()



def _keep_keys() -> None:
    """The server's SECRET_KEY and the key that encrypts workspace secrets (S17), unless the
    environment names them: written to var/ on the first start and kept there, so this process
    (the migration encrypts old values) and every child it starts use the same ones."""
    if not os.environ.get("SECRET_KEY"):
        settings.SECRET_KEY = keep_key_file(settings.SECRET_KEY_FILE, get_random_secret_key)
    if not settings.PIPELINES_SECRETS_KEY:
        settings.PIPELINES_SECRETS_KEY = keep_key_file(settings.PIPELINES_SECRETS_KEY_FILE,
                                                       keys.new_key)


def _wait_listening(host: str, port: int, process: subprocess.Popen, limit_s: float = 60) -> None:
    """Until the web server accepts connections: `up` says it is up only when the URL works."""
    address = ("127.0.0.1" if host in ("0.0.0.0", "") else host, port)
    deadline = time.monotonic() + limit_s
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"the web server exited with code {process.returncode}")
        try:
            with socket.create_connection(address, timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the web server did not listen within {limit_s} s") from None
            time.sleep(0.1)
