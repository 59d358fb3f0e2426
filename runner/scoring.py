"""Score rows with a model in a process of its own: `python -m runner.scoring MODEL_FILE`.

Loading a joblib file runs whatever its pickle says, so the web server never loads a model
itself. This process loads it once and then answers one JSON line on stdin with one JSON line
on stdout: {"rows": [[number, ...], ...]} -> {"predictions": [...]} or {"error": "..."}.
Its first line says {"ready": true} or why the model cannot be loaded. The server starts it
with an environment from an allowlist (none of the server's secrets) and in an empty working
directory; it ends when its stdin closes. Like a step, it is a process boundary, not a sandbox.
"""

from __future__ import annotations

import json
import os
import sys
from typing import IO, Any


def main(argv: list[str] | None = None) -> int:
    (model_file,) = sys.argv[1:] if argv is None else argv
    answers = _private_stdout()
    try:
        import joblib

        model = joblib.load(model_file)
    except Exception as exc:  # a pickle can fail in any way: another scikit-learn, a bad file
        _answer(answers, {"error": f"the model cannot be loaded: {exc}"})
        return 1
    _answer(answers, {"ready": True})
    for line in sys.stdin:
        _answer(answers, _score(model, line))
    return 0


def _private_stdout() -> IO[str]:
    """The answers' own copy of stdout; what the model prints goes to stderr instead."""
    answers = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    sys.stdout = sys.stderr
    return answers


def _score(model: Any, line: str) -> dict[str, Any]:
    try:
        import numpy as np

        rows = json.loads(line)["rows"]
        return {"predictions": model.predict(np.array(rows, dtype=float)).tolist()}
    except Exception as exc:
        return {"error": f"the model could not score the rows: {type(exc).__name__}: {exc}"}


def _answer(answers: IO[str], message: dict[str, Any]) -> None:
    answers.write(json.dumps(message) + "\n")
    answers.flush()


if __name__ == "__main__":
    sys.exit(main())
