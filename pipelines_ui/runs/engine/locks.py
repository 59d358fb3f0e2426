"""The lock order of every change to a run: its run row first, then its step rows (R10).

Two transactions that touch the same run so queue on the run row, and never deadlock on the
rows of its steps.
"""

from __future__ import annotations

from pipelines_ui.runs.models import Run, StepRun


def locked_run(run_id: int) -> Run:
    """The run row, locked; without its spec, which `frozen_spec` parses once per process (a
    spec of hundreds of nodes would otherwise be decoded on every event)."""
    return Run.objects.select_for_update().defer("spec").get(pk=run_id)


def lock_step(step_run_id: int, run_id: int | None = None) -> tuple[Run, StepRun]:
    """Lock the step's run row, then the step row: always in that order (R10)."""
    if run_id is None:
        run_id = StepRun.objects.values_list("run_id", flat=True).get(pk=step_run_id)
    run = locked_run(run_id)
    # With its target (the step's event names it), whose row is read, not locked.
    step = (StepRun.objects.select_for_update(of=("self",)).select_related("compute_target")
            .get(pk=step_run_id))
    step.run = run  # spares a query wherever the step's run is read
    return run, step
