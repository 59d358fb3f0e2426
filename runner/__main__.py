"""`python -m runner worker --target NAME [--concurrency N]`: start a compute worker.

The other commands (pipelines, runs, submit, follow, publish) are the SDK's: runner/cli.py.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from runner import cli


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runner")
    commands = parser.add_subparsers(dest="command", required=True)
    worker = commands.add_parser("worker", help="run steps of one compute target")
    worker.add_argument("--target", required=True, help="the compute target's name")
    worker.add_argument("--concurrency", type=int, default=1, help="steps run at once (slots)")
    worker.add_argument("--server", default=os.environ.get("PIPELINES_SERVER_URL"),
                        help="server URL (or PIPELINES_SERVER_URL)")
    worker.add_argument("--name", default=None, help="worker name (default: the hostname)")
    worker.add_argument("--loglevel", default="INFO")
    cli.add_commands(commands)
    args = parser.parse_args(argv)
    if args.command != "worker":
        return cli.run_command(args)
    return run_worker(args, argv)


def run_worker(args: argparse.Namespace, argv: list[str] | None) -> int:
    from runner import secrets

    secrets.reexec_without_secrets(sys.argv[1:] if argv is None else argv)
    os.environ["PIPELINES_TARGET"] = args.target
    if args.server:
        os.environ["PIPELINES_SERVER_URL"] = args.server
    if args.name:
        os.environ["PIPELINES_WORKER_NAME"] = args.name
    from runner.celery_app import app

    # One line per report would drown the worker's own log.
    logging.getLogger("httpx").setLevel(logging.WARNING)

    node_name = f"{args.target}@{args.name or '%h'}"
    app.worker_main([
        "worker", "-Q", f"compute.{args.target}", "-c", str(args.concurrency), "-n", node_name,
        "--pool", "prefork", "-l", args.loglevel, "--without-gossip", "--without-mingle",
    ])
    return 0


if __name__ == "__main__":
    sys.exit(main())
