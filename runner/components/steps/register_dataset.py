"""register-dataset: check the input; the server registers it when the step succeeds."""

import steplib

from runner import context


def main() -> None:
    params = steplib.params()
    source = context.input_path("data")
    files = [source] if source.is_file() else [p for p in source.rglob("*") if p.is_file()]
    if not files:
        raise steplib.StepFailure("input 'data' holds no files; there is nothing to register")
    size = sum(p.stat().st_size for p in files)
    context.log_metrics({"files": len(files), "bytes": size})
    print(f"registering {len(files)} files ({size} bytes) as the next version of dataset "
          f"{params['name']!r}")


if __name__ == "__main__":
    steplib.run(main)
