"""The one place that decides run and step state transitions.

Everything here is pure: views of the current rows and one event (or the whole graph) go in,
a decision comes out. No I/O and no clocks, so the same answer comes back however often it is
asked. The Django side reads the step rows under a row lock, calls these functions, writes what
they return and dispatches on commit (R10 in docs/reliability.md). Keeping the rules in one
pure module is what lets a Hypothesis state machine check them under any event order (R15).

Two entry points:

- `apply_step_event` answers "this event arrived for this step: what now?" with the new view of
  the step and an effect the server acts on ("retry" means dispatch the new attempt, "stale"
  means answer 409 so the worker stops, and so on).
- `next_actions` answers "given every step of the run, what should happen next?" with one round
  of actions. Applying them can make more actions possible (a skipped child makes its own child
  skippable), so the server calls it again until it returns nothing new.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Literal

RUN_STATES = ("queued", "running", "succeeded", "failed", "canceled")
STEP_STATES = (
    "pending",
    "queued",
    "running",
    "succeeded",
    "failed",
    "canceled",
    "skipped",
    "reused",
)
TERMINAL_STEP_STATES = frozenset({"succeeded", "failed", "canceled", "skipped", "reused"})
# A step in one of these states has an attempt that a worker holds or may still take.
LIVE_STEP_STATES = frozenset({"queued", "running"})
# A parent in one of these states let its children run with its outputs.
DONE_OK_STATES = frozenset({"succeeded", "reused"})

Effect = Literal["applied", "duplicate", "stale", "retry", "cancel"]


def is_terminal(state: str) -> bool:
    """Whether a step in `state` is finished for good (terminal states are absorbing)."""
    if state not in STEP_STATES:
        raise ValueError(f"unknown step state {state!r}")
    return state in TERMINAL_STEP_STATES


@dataclass(frozen=True)
class NodePolicy:
    """What a node's definition says about failures.

    `retries` is the number of extra attempts after the first, so a step may make at most
    `retries + 1` attempts. `continue_on_failure` lets the node's children run (and the run
    succeed) even if this node fails.
    """

    retries: int = 0
    continue_on_failure: bool = False

    def __post_init__(self) -> None:
        if self.retries < 0:
            raise ValueError(f"retries must be 0 or more, not {self.retries}")

    @property
    def max_attempts(self) -> int:
        """How many attempts the step may make in total; every attempt counts (R11)."""
        return self.retries + 1


@dataclass(frozen=True)
class StepView:
    """The part of a step row the transition rules look at.

    `attempt` is the number of the current or last attempt, 0 while the step was never
    dispatched. `cancel_requested` is set on a running step whose worker was told to stop.
    """

    state: str
    attempt: int = 0
    cancel_requested: bool = False

    def __post_init__(self) -> None:
        if self.state not in STEP_STATES:
            raise ValueError(f"unknown step state {self.state!r}")
        if self.attempt < 0:
            raise ValueError(f"attempt must be 0 or more, not {self.attempt}")
        if self.state in LIVE_STEP_STATES and self.attempt < 1:
            # A queued or running step is always about a dispatched attempt; 0 would let an
            # event for "no attempt" match it.
            raise ValueError(f"a {self.state} step needs an attempt of 1 or more")


@dataclass(frozen=True)
class _AttemptEvent:
    """Base of the events that are about one attempt of a step."""

    attempt: int

    def __post_init__(self) -> None:
        if self.attempt < 1:
            raise ValueError(f"attempt must be 1 or more, not {self.attempt}")


@dataclass(frozen=True)
class Claimed(_AttemptEvent):
    """A worker claims a queued attempt before running it (queued -> running)."""


@dataclass(frozen=True)
class Succeeded(_AttemptEvent):
    """The attempt's step process finished successfully."""


@dataclass(frozen=True)
class Failed(_AttemptEvent):
    """The attempt's step process failed, was killed or timed out.

    `retryable=False` marks an end the worker caused on purpose (cancel, lost contact with the
    server): retrying it would only repeat the same end.
    """

    retryable: bool = True


@dataclass(frozen=True)
class Lost(_AttemptEvent):
    """The reconciler found the attempt abandoned.

    Either the running attempt's worker stopped heartbeating, or no worker took the queued
    attempt in time (R2).
    """


@dataclass(frozen=True)
class CancelRequested:
    """The run is being canceled; this step should stop (not about one attempt)."""


StepEvent = Claimed | Succeeded | Failed | Lost | CancelRequested


@dataclass(frozen=True)
class StepOutcome:
    """The step after an event, and what the server must do about it.

    Effects:
    - "applied": the state changed; store it.
    - "duplicate": this event was already applied; nothing changes, answer 200.
    - "stale": the event is about an attempt that is not current, or comes too late for a
      finished step; nothing changes, answer 409 so the worker stops.
    - "retry": the attempt ended and the policy allows another one; store the step (queued with
      the next attempt) and dispatch that attempt on commit.
    - "cancel": a running step must stop; store `cancel_requested` and tell its worker.
    """

    step: StepView
    effect: Effect


def apply_step_event(step: StepView, event: StepEvent, policy: NodePolicy) -> StepOutcome:
    """Decide what one event does to one step.

    Terminal states are absorbing: an event on a finished step is a duplicate or stale, never a
    change. Attempt events must name the step's current attempt, otherwise they are stale.
    """
    if isinstance(event, CancelRequested):
        return _apply_cancel_request(step)
    if not isinstance(event, _AttemptEvent):
        raise TypeError(f"not a step event: {event!r}")
    if step.state in TERMINAL_STEP_STATES:
        return StepOutcome(step, "duplicate" if _already_applied(step, event) else "stale")
    if step.state == "pending" or event.attempt != step.attempt:
        # A pending step has no attempt at all, so nothing can be about it.
        return StepOutcome(step, "stale")
    if isinstance(event, Claimed):
        return _apply_claim(step)
    if isinstance(event, Succeeded):
        return _apply_success(step)
    if isinstance(event, Failed):
        return _apply_failure(step, event, policy)
    return _apply_loss(step, policy)


def _apply_claim(step: StepView) -> StepOutcome:
    if step.state != "queued":
        # The server recognises a repeat of the very same claim before calling this; any
        # other second claim is a redelivery that must not run the step again (R3).
        return StepOutcome(step, "stale")
    return StepOutcome(replace(step, state="running"), "applied")


def _apply_success(step: StepView) -> StepOutcome:
    if step.state != "running":
        # Only a claimed attempt can have run; an unclaimed success comes from a worker that
        # skipped the compare-and-set and must not be trusted.
        return StepOutcome(step, "stale")
    # A success that races a cancel request still happened, so it is recorded as such.
    return StepOutcome(replace(step, state="succeeded"), "applied")


def _apply_failure(step: StepView, event: Failed, policy: NodePolicy) -> StepOutcome:
    if step.state != "running":
        # A worker fails only an attempt it claimed; a queued attempt ends through Lost.
        return StepOutcome(step, "stale")
    return _end_attempt(step, policy, retryable=event.retryable)


def _apply_loss(step: StepView, policy: NodePolicy) -> StepOutcome:
    # Queued or running alike: nobody holds the attempt any more, and losing it is never on
    # purpose, so it may be retried.
    return _end_attempt(step, policy, retryable=True)


def _end_attempt(step: StepView, policy: NodePolicy, *, retryable: bool) -> StepOutcome:
    """The current attempt failed or was lost: cancel, retry or fail the step."""
    if step.cancel_requested:
        # The attempt ended because we asked it to (or while we were asking): not a failure.
        return StepOutcome(replace(step, state="canceled"), "applied")
    if retryable and step.attempt < policy.max_attempts:
        next_attempt = StepView("queued", attempt=step.attempt + 1)
        return StepOutcome(next_attempt, "retry")
    return StepOutcome(replace(step, state="failed"), "applied")


def _apply_cancel_request(step: StepView) -> StepOutcome:
    if step.state in ("pending", "queued"):
        # No worker runs it yet, so there is nobody to ask: it is canceled at once. A worker
        # that still receives the queued attempt gets 409 when it claims it.
        return StepOutcome(replace(step, state="canceled"), "applied")
    if step.state == "running":
        if step.cancel_requested:
            return StepOutcome(step, "duplicate")
        return StepOutcome(replace(step, cancel_requested=True), "cancel")
    # Terminal: canceling a canceled step is a repeat; any other finished step was too late.
    return StepOutcome(step, "duplicate" if step.state == "canceled" else "stale")


def _already_applied(step: StepView, event: Claimed | Succeeded | Failed | Lost) -> bool:
    """Whether `event` is a repeat of the event that ended this (terminal) step."""
    if event.attempt != step.attempt:
        return False
    if isinstance(event, Succeeded):
        return step.state == "succeeded"
    if isinstance(event, Failed | Lost):
        # Either end of an attempt that did not succeed lands on failed, or on canceled when a
        # cancel was requested; a report of it again changes nothing.
        return step.state in ("failed", "canceled")
    # A claim never ends a step, so a claim of a finished attempt is a redelivery (R11).
    return False


@dataclass(frozen=True)
class Ready:
    """Every parent is done: the server reuses a matching earlier result or dispatches."""

    node: str


@dataclass(frozen=True)
class Skip:
    """The step can never run because of `reason`, which names the parent at fault."""

    node: str
    reason: str


@dataclass(frozen=True)
class Cancel:
    """The run is canceling and no worker holds this step: mark it canceled at once."""

    node: str


@dataclass(frozen=True)
class RequestCancel:
    """The run is canceling and a worker runs this step: apply `CancelRequested` to it."""

    node: str


@dataclass(frozen=True)
class FinishRun:
    """Every step is terminal: the run ends with `status`."""

    status: str


Action = Ready | Skip | Cancel | RequestCancel | FinishRun


def next_actions(
    parents: Mapping[str, Sequence[str]],
    policies: Mapping[str, NodePolicy],
    steps: Mapping[str, StepView],
    *,
    canceling: bool,
) -> list[Action]:
    """One round of what should happen next in a run, in the node order of `parents`.

    `parents` maps every node to its parent nodes; `steps` holds every node's view; a node
    missing from `policies` has the default policy. Steps that are terminal never get an action.
    Once every step is terminal the only action is `FinishRun`.
    """
    _check_graph(parents, steps)
    if all(view.state in TERMINAL_STEP_STATES for view in steps.values()):
        return [FinishRun(_final_status(policies, steps, canceling=canceling))]

    actions: list[Action] = []
    for node, node_parents in parents.items():
        view = steps[node]
        if canceling:
            if view.state in ("pending", "queued"):
                actions.append(Cancel(node))
            elif view.state == "running" and not view.cancel_requested:
                actions.append(RequestCancel(node))
            # While canceling nothing new starts, so Ready and Skip have no say.
            continue
        if view.state != "pending":
            continue
        reason = _skip_reason(node_parents, policies, steps)
        if reason is not None:
            # Skipped as soon as one parent is lost for good, without waiting for its siblings.
            actions.append(Skip(node, reason))
        elif all(_lets_children_run(p, policies, steps) for p in node_parents):
            actions.append(Ready(node))
    return actions


def run_state(
    steps: Mapping[str, StepView],
    *,
    canceling: bool,
    policies: Mapping[str, NodePolicy],
) -> str:
    """The run's state as seen from its steps: "queued", "running" or its final status.

    "queued" means no step has started yet: each is pending or waiting on its first attempt.
    The final status is the same one `next_actions` gives in `FinishRun`, which is why the
    policies are needed (a failure with `continue_on_failure` does not fail the run).
    """
    if all(view.state in TERMINAL_STEP_STATES for view in steps.values()):
        return _final_status(policies, steps, canceling=canceling)
    if all(_not_started(view) for view in steps.values()):
        return "queued"
    return "running"


def _not_started(view: StepView) -> bool:
    return view.state == "pending" or (view.state == "queued" and view.attempt <= 1)


def _check_graph(parents: Mapping[str, Sequence[str]], steps: Mapping[str, StepView]) -> None:
    # A step row without a node (or the reverse) means the caller mixed up two runs; deciding
    # anything from that would schedule the wrong work.
    if set(parents) != set(steps):
        missing = sorted(set(parents) - set(steps))
        extra = sorted(set(steps) - set(parents))
        raise ValueError(f"steps do not match the graph: missing {missing}, unknown {extra}")
    for node, node_parents in parents.items():
        for parent in node_parents:
            if parent not in parents:
                raise ValueError(f"node {node!r} has unknown parent {parent!r}")


_DEFAULT_POLICY = NodePolicy()


def _policy(policies: Mapping[str, NodePolicy], node: str) -> NodePolicy:
    return policies.get(node, _DEFAULT_POLICY)


def _lets_children_run(
    parent: str, policies: Mapping[str, NodePolicy], steps: Mapping[str, StepView]
) -> bool:
    state = steps[parent].state
    if state in DONE_OK_STATES:
        return True
    return state == "failed" and _policy(policies, parent).continue_on_failure


def _skip_reason(
    node_parents: Sequence[str],
    policies: Mapping[str, NodePolicy],
    steps: Mapping[str, StepView],
) -> str | None:
    for parent in node_parents:
        state = steps[parent].state
        if state == "failed" and not _policy(policies, parent).continue_on_failure:
            return f"parent {parent} failed"
        if state in ("skipped", "canceled"):
            # Even with continue_on_failure: the parent never produced outputs to run on.
            return f"parent {parent} was {state}"
    return None


def _final_status(
    policies: Mapping[str, NodePolicy], steps: Mapping[str, StepView], *, canceling: bool
) -> str:
    if canceling or any(view.state == "canceled" for view in steps.values()):
        return "canceled"
    for node, view in steps.items():
        if view.state == "failed" and not _policy(policies, node).continue_on_failure:
            return "failed"
    return "succeeded"
