"""`manage.py up`: the whole product on one machine, on its embedded defaults.

Migrates, seeds the demo workspace, then runs the ASGI web server, the control worker (with
Celery beat) and a compute worker for the `local` target as child processes. Ctrl-C stops all.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

from pipelines_ui.compute.models import ComputeTarget
from pipelines_ui.compute.services import issue_worker_key
from pipelines_ui.services import seed_demo

STOP_GRACE_S = 10


class Command(BaseCommand):
    help = "Start the web server, the control worker with beat and a local compute worker."

    def add_arguments(self, parser):
        parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
        parser.add_argument("--concurrency", type=int, default=2,
                            help="Slots of the local compute worker.")

    def handle(self, *args, host: str, port: int, concurrency: int, **options):
        call_command("migrate", interactive=False, verbosity=0)
        self.stdout.write(seed_demo().describe())
        url = f"http://{host}:{port}"
        env = {**os.environ, "PIPELINES_SERVER_URL": os.environ.get("PIPELINES_SERVER_URL", url)}
        worker_env = {**env, "PIPELINES_WORKER_KEY": issue_worker_key(
            ComputeTarget.objects.get(name="local"))}
        children = {
            "web": self._start([sys.executable, "-m", "uvicorn", "pipelines_ui.asgi:application",
                                "--host", host, "--port", str(port), "--log-level", "warning"],
                               env),
            "control": self._start([sys.executable, "-m", "celery", "-A", "pipelines_ui",
                                    "worker", "-B", "-Q", "control", "-c", "1",
                                    "-n", "control@%h", "-l", "WARNING"], env),
            "compute": self._start([sys.executable, "-m", "runner", "worker", "--target",
                                    "local", "--concurrency", str(concurrency)], worker_env),
        }
        self.stdout.write(self.style.SUCCESS(f"Pipelines UI is up at {url}/ (Ctrl-C stops it)"))
        self._supervise(children)

    def _start(self, command: list[str], env: dict[str, str]) -> subprocess.Popen:
        return subprocess.Popen(command, env=env, cwd=settings.BASE_DIR)

    def _supervise(self, children: dict[str, subprocess.Popen]) -> None:
        stopping = False

        def stop(signum, frame):
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        exited = None
        while not stopping and exited is None:
            exited = next((name for name, p in children.items() if p.poll() is not None), None)
            time.sleep(0.2)
        if exited:
            self.stderr.write(f"{exited} exited with code {children[exited].returncode}; "
                              "stopping the others")
        self._stop_all(children)
        self.stdout.write("Stopped.")
        if exited:
            sys.exit(1)

    def _stop_all(self, children: dict[str, subprocess.Popen]) -> None:
        for process in children.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        for process in children.values():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
