"""Run and step transitions: one example per rule, then a state machine over random DAGs (R15)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from runner.transitions import (
    DONE_OK_STATES,
    RUN_STATES,
    STEP_STATES,
    TERMINAL_STEP_STATES,
    Cancel,
    CancelRequested,
    Claimed,
    Effect,
    Failed,
    FinishRun,
    Lost,
    NodePolicy,
    Ready,
    RequestCancel,
    Skip,
    StepOutcome,
    StepView,
    Succeeded,
    apply_step_event,
    is_terminal,
    next_actions,
    run_state,
)

DEFAULT = NodePolicy()
DIAMOND = {"prep": [], "left": ["prep"], "right": ["prep"], "join": ["left", "right"]}
CHAIN = {"prep": [], "train": ["prep"], "evaluate": ["train"], "report": ["evaluate"]}


def pending(nodes: dict[str, list[str]]) -> dict[str, StepView]:
    return {node: StepView("pending") for node in nodes}


# --- states ---------------------------------------------------------------------------------


def test_the_state_constants_agree_with_each_other() -> None:
    assert TERMINAL_STEP_STATES < set(STEP_STATES)
    assert DONE_OK_STATES < TERMINAL_STEP_STATES
    assert RUN_STATES == ("queued", "running", "succeeded", "failed", "canceled")


@pytest.mark.parametrize("state", STEP_STATES)
def test_is_terminal_says_which_step_states_are_final(state: str) -> None:
    expected = state in ("succeeded", "failed", "canceled", "skipped", "reused")
    assert is_terminal(state) is expected


def test_is_terminal_rejects_an_unknown_state() -> None:
    with pytest.raises(ValueError, match="'done'"):
        is_terminal("done")


def test_a_step_view_rejects_an_unknown_state_and_a_live_step_without_an_attempt() -> None:
    with pytest.raises(ValueError, match="unknown step state"):
        StepView("done")
    with pytest.raises(ValueError, match="attempt of 1 or more"):
        StepView("queued", attempt=0)


def test_a_policy_rejects_negative_retries_and_an_event_rejects_attempt_zero() -> None:
    with pytest.raises(ValueError, match="retries"):
        NodePolicy(retries=-1)
    with pytest.raises(ValueError, match="attempt"):
        Succeeded(0)


def test_something_that_is_not_an_event_is_refused() -> None:
    with pytest.raises(TypeError):
        apply_step_event(StepView("running", 1), "finished", DEFAULT)  # type: ignore[arg-type]


# --- claims ---------------------------------------------------------------------------------


def test_a_worker_claiming_the_queued_attempt_starts_the_step() -> None:
    outcome = apply_step_event(StepView("queued", 2), Claimed(2), DEFAULT)
    assert outcome.effect == "applied"
    assert outcome.step == StepView("running", 2)


@pytest.mark.parametrize("attempt", [1, 3])
def test_a_claim_for_another_attempt_is_stale(attempt: int) -> None:
    step = StepView("queued", 2)
    assert apply_step_event(step, Claimed(attempt), DEFAULT) == StepOutcome(step, "stale")


def test_a_second_claim_of_a_running_attempt_is_stale() -> None:
    step = StepView("running", 1)
    assert apply_step_event(step, Claimed(1), DEFAULT).effect == "stale"


def test_a_claim_of_a_step_never_dispatched_is_stale() -> None:
    step = StepView("pending")
    assert apply_step_event(step, Claimed(1), DEFAULT) == StepOutcome(step, "stale")


@pytest.mark.parametrize("state", ["succeeded", "failed", "canceled"])
def test_a_redelivered_claim_of_a_finished_attempt_is_stale(state: str) -> None:
    step = StepView(state, 1)
    assert apply_step_event(step, Claimed(1), NodePolicy(retries=2)) == StepOutcome(step, "stale")


# --- success --------------------------------------------------------------------------------


def test_a_success_of_the_running_attempt_succeeds_the_step() -> None:
    outcome = apply_step_event(StepView("running", 1), Succeeded(1), DEFAULT)
    assert outcome == StepOutcome(StepView("succeeded", 1), "applied")


def test_a_repeated_success_report_is_a_duplicate() -> None:
    step = StepView("succeeded", 1)
    assert apply_step_event(step, Succeeded(1), DEFAULT) == StepOutcome(step, "duplicate")


def test_a_success_from_an_old_attempt_is_stale() -> None:
    step = StepView("running", 2)
    assert apply_step_event(step, Succeeded(1), NodePolicy(retries=1)) == StepOutcome(step, "stale")


def test_a_success_before_the_claim_is_stale() -> None:
    step = StepView("queued", 1)
    assert apply_step_event(step, Succeeded(1), DEFAULT) == StepOutcome(step, "stale")


def test_a_success_that_races_a_cancel_request_is_still_recorded_as_success() -> None:
    step = StepView("running", 1, cancel_requested=True)
    outcome = apply_step_event(step, Succeeded(1), DEFAULT)
    assert outcome == StepOutcome(StepView("succeeded", 1, cancel_requested=True), "applied")


# --- failure and retries (R1, R11) ----------------------------------------------------------


def test_a_failed_step_with_retries_left_is_requeued_with_the_next_attempt() -> None:
    outcome = apply_step_event(StepView("running", 1), Failed(1), NodePolicy(retries=1))
    assert outcome == StepOutcome(StepView("queued", 2), "retry")


def test_a_failure_on_the_last_allowed_attempt_fails_the_step() -> None:
    outcome = apply_step_event(StepView("running", 2), Failed(2), NodePolicy(retries=1))
    assert outcome == StepOutcome(StepView("failed", 2), "applied")


def test_a_failure_without_retries_fails_the_step() -> None:
    outcome = apply_step_event(StepView("running", 1), Failed(1), DEFAULT)
    assert outcome == StepOutcome(StepView("failed", 1), "applied")


def test_every_attempt_counts_toward_the_retry_budget() -> None:
    policy = NodePolicy(retries=2)
    step = StepView("queued", 1)
    effects = []
    while not is_terminal(step.state):
        step = apply_step_event(step, Claimed(step.attempt), policy).step
        # Worker losses count exactly like step failures (R11).
        event = Lost(step.attempt) if step.attempt == 2 else Failed(step.attempt)
        outcome = apply_step_event(step, event, policy)
        effects.append(outcome.effect)
        step = outcome.step
    assert effects == ["retry", "retry", "applied"]
    assert step == StepView("failed", 3)


def test_a_non_retryable_failure_fails_the_step_even_with_retries_left() -> None:
    outcome = apply_step_event(
        StepView("running", 1), Failed(1, retryable=False), NodePolicy(retries=2)
    )
    assert outcome == StepOutcome(StepView("failed", 1), "applied")


def test_a_failure_after_a_cancel_request_cancels_the_step_instead_of_retrying() -> None:
    step = StepView("running", 1, cancel_requested=True)
    outcome = apply_step_event(step, Failed(1, retryable=False), NodePolicy(retries=2))
    assert outcome == StepOutcome(StepView("canceled", 1, cancel_requested=True), "applied")


def test_a_failure_report_before_the_claim_is_stale() -> None:
    step = StepView("queued", 1)
    assert apply_step_event(step, Failed(1), NodePolicy(retries=1)) == StepOutcome(step, "stale")


def test_a_repeated_failure_report_is_a_duplicate() -> None:
    step = StepView("failed", 1)
    assert apply_step_event(step, Failed(1), DEFAULT) == StepOutcome(step, "duplicate")


def test_a_failure_report_from_the_attempt_that_was_retried_is_stale() -> None:
    step = StepView("queued", 2)
    assert apply_step_event(step, Failed(1), NodePolicy(retries=2)) == StepOutcome(step, "stale")


# --- lost attempts (R2) ---------------------------------------------------------------------


def test_a_lost_running_attempt_is_retried_when_the_policy_allows() -> None:
    outcome = apply_step_event(StepView("running", 1), Lost(1), NodePolicy(retries=1))
    assert outcome == StepOutcome(StepView("queued", 2), "retry")


def test_a_lost_running_attempt_without_retries_left_fails_the_step() -> None:
    outcome = apply_step_event(StepView("running", 1), Lost(1), DEFAULT)
    assert outcome == StepOutcome(StepView("failed", 1), "applied")


def test_a_queued_attempt_no_worker_took_is_dispatched_again_as_a_new_attempt() -> None:
    outcome = apply_step_event(StepView("queued", 1), Lost(1), NodePolicy(retries=1))
    assert outcome == StepOutcome(StepView("queued", 2), "retry")


def test_a_queued_attempt_no_worker_took_fails_the_step_when_out_of_attempts() -> None:
    outcome = apply_step_event(StepView("queued", 2), Lost(2), NodePolicy(retries=1))
    assert outcome == StepOutcome(StepView("failed", 2), "applied")


def test_a_lost_running_attempt_with_a_cancel_request_is_canceled() -> None:
    step = StepView("running", 1, cancel_requested=True)
    outcome = apply_step_event(step, Lost(1), NodePolicy(retries=1))
    assert outcome.effect == "applied"
    assert outcome.step.state == "canceled"


def test_a_lost_report_for_an_old_attempt_is_stale() -> None:
    step = StepView("running", 2)
    assert apply_step_event(step, Lost(1), NodePolicy(retries=2)) == StepOutcome(step, "stale")


# --- cancel of one step ---------------------------------------------------------------------


def test_a_cancel_request_on_a_running_step_asks_the_worker_to_stop() -> None:
    outcome = apply_step_event(StepView("running", 1), CancelRequested(), DEFAULT)
    assert outcome == StepOutcome(StepView("running", 1, cancel_requested=True), "cancel")


def test_a_repeated_cancel_request_on_a_running_step_is_a_duplicate() -> None:
    step = StepView("running", 1, cancel_requested=True)
    assert apply_step_event(step, CancelRequested(), DEFAULT) == StepOutcome(step, "duplicate")


@pytest.mark.parametrize("step", [StepView("pending"), StepView("queued", 1)])
def test_a_cancel_request_on_a_step_no_worker_runs_cancels_it_at_once(step: StepView) -> None:
    outcome = apply_step_event(step, CancelRequested(), DEFAULT)
    assert outcome.effect == "applied"
    assert outcome.step == StepView("canceled", step.attempt)


def test_a_claim_after_the_queued_step_was_canceled_is_stale() -> None:
    canceled = apply_step_event(StepView("queued", 1), CancelRequested(), DEFAULT).step
    assert apply_step_event(canceled, Claimed(1), DEFAULT).effect == "stale"


@pytest.mark.parametrize(
    ("state", "effect"),
    [
        ("canceled", "duplicate"),
        ("succeeded", "stale"),
        ("failed", "stale"),
        ("skipped", "stale"),
        ("reused", "stale"),
    ],
)
def test_a_cancel_request_on_a_finished_step_changes_nothing(state: str, effect: Effect) -> None:
    step = StepView(state, 1)
    assert apply_step_event(step, CancelRequested(), DEFAULT) == StepOutcome(step, effect)


# --- terminal states are absorbing ----------------------------------------------------------


@pytest.mark.parametrize("state", sorted(TERMINAL_STEP_STATES))
@pytest.mark.parametrize(
    "event",
    [
        Claimed(1),
        Claimed(2),
        Succeeded(1),
        Succeeded(2),
        Failed(1),
        Failed(2, retryable=False),
        Lost(1),
        Lost(2),
        CancelRequested(),
    ],
    ids=repr,
)
def test_terminal_states_are_absorbing(state: str, event: object) -> None:
    step = StepView(state, 1)
    outcome = apply_step_event(step, event, NodePolicy(retries=2))  # type: ignore[arg-type]
    assert outcome.step == step
    assert outcome.effect in ("duplicate", "stale")


# --- next_actions: scheduling ---------------------------------------------------------------


def test_steps_without_parents_are_ready() -> None:
    parents = {"a": [], "b": [], "c": ["a"]}
    actions = next_actions(parents, {}, pending(parents), canceling=False)
    assert actions == [Ready("a"), Ready("b")]


def test_a_step_waits_while_a_parent_is_not_done() -> None:
    for parent_view in (StepView("pending"), StepView("queued", 1), StepView("running", 1)):
        steps = {"prep": parent_view, "train": StepView("pending")}
        actions = next_actions({"prep": [], "train": ["prep"]}, {}, steps, canceling=False)
        assert Ready("train") not in actions


def test_the_join_of_a_diamond_is_ready_exactly_once_when_both_parents_succeed() -> None:
    steps = pending(DIAMOND) | {"prep": StepView("succeeded", 1)}
    steps |= {"left": StepView("running", 1), "right": StepView("running", 1)}
    readies = []
    # Each parent's success is its own event, and the server asks after each one.
    for parent in ("left", "right"):
        steps[parent] = apply_step_event(steps[parent], Succeeded(1), DEFAULT).step
        actions = next_actions(DIAMOND, {}, steps, canceling=False)
        readies += [action for action in actions if isinstance(action, Ready)]
        for action in actions:
            steps[action.node] = StepView("queued", 1)  # type: ignore[union-attr]
    assert readies == [Ready("join")]
    assert next_actions(DIAMOND, {}, steps, canceling=False) == []


def test_a_reused_parent_counts_as_done() -> None:
    steps = {"prep": StepView("reused"), "train": StepView("pending")}
    actions = next_actions({"prep": [], "train": ["prep"]}, {}, steps, canceling=False)
    assert actions == [Ready("train")]


def test_a_failure_skips_downstream_steps_one_generation_per_call() -> None:
    steps = pending(CHAIN) | {"prep": StepView("succeeded", 1), "train": StepView("failed", 1)}
    seen = []
    while actions := next_actions(CHAIN, {}, steps, canceling=False):
        seen.append(actions)
        if isinstance(actions[0], FinishRun):
            break
        for action in actions:
            steps[action.node] = StepView("skipped")  # type: ignore[union-attr]
    assert seen == [
        [Skip("evaluate", "parent train failed")],
        [Skip("report", "parent evaluate was skipped")],
        [FinishRun("failed")],
    ]


@pytest.mark.parametrize(
    ("prep", "reason"),
    [
        (StepView("failed", 1), "parent prep failed"),
        (StepView("skipped"), "parent prep was skipped"),
        (StepView("canceled", 1), "parent prep was canceled"),
    ],
)
def test_the_skip_reason_names_the_parent(prep: StepView, reason: str) -> None:
    steps = {"prep": prep, "other": StepView("running", 1), "train": StepView("pending")}
    parents = {"prep": [], "other": [], "train": ["other", "prep"]}
    # The child is skipped at once, without waiting for its other parent.
    assert next_actions(parents, {}, steps, canceling=False) == [Skip("train", reason)]


def test_continue_on_failure_lets_the_child_run() -> None:
    policies = {"train": NodePolicy(continue_on_failure=True)}
    steps = {"train": StepView("failed", 1), "report": StepView("pending")}
    parents = {"train": [], "report": ["train"]}
    assert next_actions(parents, policies, steps, canceling=False) == [Ready("report")]


@pytest.mark.parametrize("state", ["skipped", "canceled"])
def test_continue_on_failure_does_not_run_the_child_of_a_parent_that_never_ran(
    state: str,
) -> None:
    policies = {"train": NodePolicy(continue_on_failure=True)}
    steps = {"train": StepView(state), "report": StepView("pending")}
    parents = {"train": [], "report": ["train"]}
    actions = next_actions(parents, policies, steps, canceling=False)
    assert actions == [Skip("report", f"parent train was {state}")]


def test_actions_come_in_the_node_order_of_the_graph() -> None:
    parents: dict[str, list[str]] = {"z": [], "a": [], "m": []}
    actions = next_actions(parents, {}, pending(parents), canceling=False)
    assert actions == [Ready("z"), Ready("a"), Ready("m")]


def test_live_and_finished_steps_get_no_actions() -> None:
    steps = {
        "prep": StepView("succeeded", 1),
        "left": StepView("running", 1),
        "right": StepView("queued", 1),
        "join": StepView("pending"),
    }
    assert next_actions(DIAMOND, {}, steps, canceling=False) == []


def test_steps_that_do_not_match_the_graph_are_refused() -> None:
    with pytest.raises(ValueError, match=r"missing \['b'\]"):
        next_actions({"a": [], "b": []}, {}, {"a": StepView("pending")}, canceling=False)
    with pytest.raises(ValueError, match="unknown parent 'x'"):
        next_actions({"a": ["x"]}, {}, {"a": StepView("pending")}, canceling=False)


# --- next_actions: cancel (R12) -------------------------------------------------------------


def test_canceling_cancels_waiting_steps_and_asks_running_ones_to_stop() -> None:
    steps = {
        "prep": StepView("succeeded", 1),
        "left": StepView("running", 1),
        "right": StepView("queued", 1),
        "join": StepView("pending"),
    }
    actions = next_actions(DIAMOND, {}, steps, canceling=True)
    assert actions == [RequestCancel("left"), Cancel("right"), Cancel("join")]


def test_canceling_does_not_ask_a_running_step_twice() -> None:
    steps = pending(DIAMOND) | {
        "prep": StepView("succeeded", 1),
        "left": StepView("running", 1, cancel_requested=True),
        "right": StepView("canceled", 1),
        "join": StepView("canceled"),
    }
    assert next_actions(DIAMOND, {}, steps, canceling=True) == []


def test_canceling_starts_nothing_new() -> None:
    actions = next_actions(CHAIN, {}, pending(CHAIN), canceling=True)
    assert all(isinstance(action, Cancel) for action in actions)
    assert len(actions) == len(CHAIN)


def test_a_canceled_run_finishes_canceled_even_if_its_steps_succeeded() -> None:
    steps = {node: StepView("succeeded", 1) for node in CHAIN}
    assert next_actions(CHAIN, {}, steps, canceling=True) == [FinishRun("canceled")]


# --- finishing the run ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("train", "status"),
    [
        (StepView("succeeded", 1), "succeeded"),
        (StepView("reused"), "succeeded"),
        (StepView("failed", 1), "failed"),
        (StepView("canceled", 1), "canceled"),
    ],
)
def test_the_run_finishes_once_every_step_is_terminal(train: StepView, status: str) -> None:
    parents = {"prep": [], "train": ["prep"]}
    steps = {"prep": StepView("succeeded", 1), "train": train}
    assert next_actions(parents, {}, steps, canceling=False) == [FinishRun(status)]
    assert run_state(steps, canceling=False, policies={}) == status


def test_a_failure_with_continue_on_failure_does_not_fail_the_run() -> None:
    parents = {"train": [], "report": ["train"]}
    policies = {"train": NodePolicy(continue_on_failure=True)}
    steps = {"train": StepView("failed", 1), "report": StepView("succeeded", 1)}
    assert next_actions(parents, policies, steps, canceling=False) == [FinishRun("succeeded")]


def test_a_run_is_queued_until_a_step_starts_then_running() -> None:
    steps = {"prep": StepView("queued", 1), "train": StepView("pending")}
    assert run_state(steps, canceling=False, policies={}) == "queued"
    steps["prep"] = StepView("running", 1)
    assert run_state(steps, canceling=False, policies={}) == "running"
    # A retry waiting in the queue means an attempt already ran.
    steps["prep"] = StepView("queued", 2)
    assert run_state(steps, canceling=True, policies={}) == "running"


# --- the state machine (R15) ----------------------------------------------------------------


@dataclass(frozen=True)
class Graph:
    parents: dict[str, list[str]]
    policies: dict[str, NodePolicy]
    cached: frozenset[str]  # nodes the server finds an earlier result for, so it reuses them


@st.composite
def graphs(draw: st.DrawFn) -> Graph:
    """A random DAG of 2-6 nodes; edges only go from lower to higher index, so no cycles."""
    nodes = [f"n{i}" for i in range(draw(st.integers(2, 6)))]
    parents = {
        node: [earlier for earlier in nodes[:index] if draw(st.booleans())]
        for index, node in enumerate(nodes)
    }
    policies = {
        node: NodePolicy(retries=draw(st.integers(0, 2)), continue_on_failure=draw(st.booleans()))
        for node in nodes
    }
    cached = draw(st.frozensets(st.sampled_from(nodes), max_size=2))
    return Graph(parents, policies, cached)


ATTEMPT_EVENTS = (Claimed, Succeeded, Failed, Lost)


class RunMachine(RuleBasedStateMachine):
    """A server that keeps the step views of one run and feeds events through the rules.

    Rules are what workers, the reconciler and the user may send, in any order. Like the real
    server, it acts on `next_actions` right after each accepted event; the `advance` rule is a
    reconciler pass, and a cancel may leave the advance to a later pass, so the machine also
    sees events that land between the two.
    """

    def __init__(self) -> None:
        super().__init__()
        self.parents: dict[str, list[str]] = {}
        self.policies: dict[str, NodePolicy] = {}
        self.cached: frozenset[str] = frozenset()
        self.steps: dict[str, StepView] = {}
        self.canceling = False
        self.run_status: str | None = None
        self.finished: dict[str, StepView] = {}
        self.dispatches: set[tuple[str, int]] = set()
        self.last: tuple[str, object, str, StepView] | None = None

    @initialize(graph=graphs())
    def start_run(self, graph: Graph) -> None:
        self.parents, self.policies, self.cached = graph.parents, graph.policies, graph.cached
        self.steps = {node: StepView("pending") for node in self.parents}
        self.advance()

    # helpers

    def nodes_in(self, *states: str) -> list[str]:
        return [node for node, view in self.steps.items() if view.state in states]

    def dispatch(self, node: str, view: StepView) -> None:
        assert view.state == "queued"
        assert (node, view.attempt) not in self.dispatches, "an attempt was dispatched twice"
        self.dispatches.add((node, view.attempt))

    def send(self, node: str, event: object) -> tuple[str, StepView]:
        """Apply one event as the server does; advance the run when it changed something."""
        before = self.steps[node]
        outcome = apply_step_event(before, event, self.policies[node])  # type: ignore[arg-type]
        if outcome.effect in ("duplicate", "stale"):
            assert outcome.step == before, "a duplicate or stale event changed the step"
        else:
            assert outcome.step != before
        if outcome.effect == "retry":
            assert outcome.step.attempt == before.attempt + 1
            self.dispatch(node, outcome.step)
        self.steps[node] = outcome.step
        self.last = (node, event, outcome.effect, outcome.step)
        return outcome.effect, outcome.step

    def report(self, node: str, event: object) -> tuple[str, StepView]:
        """A worker's or the reconciler's event: the server advances the run if it was taken."""
        effect, view = self.send(node, event)
        if effect not in ("duplicate", "stale"):
            self.advance()
        return effect, view

    def expected_end(self, node: str, *, retryable: bool) -> tuple[str, str]:
        """The (effect, state) that a failure or loss of `node`'s attempt should lead to."""
        view = self.steps[node]
        if view.cancel_requested:
            return "applied", "canceled"
        if retryable and view.attempt < self.policies[node].max_attempts:
            return "retry", "queued"
        return "applied", "failed"

    def expected_status(self) -> str:
        if self.canceling or self.nodes_in("canceled"):
            return "canceled"
        for node in self.nodes_in("failed"):
            if not self.policies[node].continue_on_failure:
                return "failed"
        return "succeeded"

    # the server

    @rule()
    def advance(self) -> None:
        # Skips and cancels unlock more actions, so one pass repeats until nothing is left;
        # a chain of n nodes needs at most n rounds, plus one for FinishRun.
        for _ in range(len(self.parents) + 2):
            actions = next_actions(
                self.parents, self.policies, self.steps, canceling=self.canceling
            )
            if not actions:
                return
            for action in actions:
                if isinstance(action, FinishRun):
                    assert actions == [action], "FinishRun came with other actions"
                    assert self.run_status in (None, action.status), "the run status changed"
                    self.run_status = action.status
                    return
                view = self.steps[action.node]
                assert not is_terminal(view.state), f"{action} for a finished step"
                if isinstance(action, Ready):
                    assert view.state == "pending"
                    if action.node in self.cached:
                        self.steps[action.node] = StepView("reused")
                    else:
                        self.steps[action.node] = StepView("queued", 1)
                        self.dispatch(action.node, self.steps[action.node])
                elif isinstance(action, Skip):
                    assert view.state == "pending"
                    named = [
                        p
                        for p in self.parents[action.node]
                        if action.reason.startswith(f"parent {p} ")
                    ]
                    assert named, f"the reason {action.reason!r} names no parent"
                    self.steps[action.node] = StepView("skipped")
                elif isinstance(action, Cancel):
                    assert self.canceling
                    assert self.send(action.node, CancelRequested())[1].state == "canceled"
                elif isinstance(action, RequestCancel):
                    assert self.canceling
                    assert self.send(action.node, CancelRequested())[0] == "cancel"
        raise AssertionError("next_actions did not settle")

    @precondition(lambda self: self.run_status is None and not self.canceling)
    @rule(at_once=st.booleans())
    def cancel_run(self, at_once: bool) -> None:
        self.canceling = True
        if at_once:
            self.advance()

    # workers and the reconciler

    @precondition(lambda self: self.nodes_in("queued"))
    @rule(data=st.data(), offset=st.sampled_from([0, 0, 0, 1, -1]))
    def claim(self, data: st.DataObject, offset: int) -> None:
        node = data.draw(st.sampled_from(self.nodes_in("queued")), label="node")
        current = self.steps[node].attempt
        attempt = current + offset if current + offset >= 1 else current + 1
        effect, view = self.report(node, Claimed(attempt))
        if attempt == current:
            assert (effect, view.state) == ("applied", "running")
        else:
            assert effect == "stale"

    @precondition(lambda self: self.nodes_in("running"))
    @rule(data=st.data())
    def succeed(self, data: st.DataObject) -> None:
        node = data.draw(st.sampled_from(self.nodes_in("running")), label="node")
        effect, view = self.report(node, Succeeded(self.steps[node].attempt))
        assert (effect, view.state) == ("applied", "succeeded")

    @precondition(lambda self: self.nodes_in("running"))
    @rule(data=st.data(), retryable=st.booleans())
    def fail(self, data: st.DataObject, retryable: bool) -> None:
        node = data.draw(st.sampled_from(self.nodes_in("running")), label="node")
        expected = self.expected_end(node, retryable=retryable)
        effect, view = self.report(node, Failed(self.steps[node].attempt, retryable=retryable))
        assert (effect, view.state) == expected

    @precondition(lambda self: self.nodes_in("queued", "running"))
    @rule(data=st.data())
    def lose(self, data: st.DataObject) -> None:
        node = data.draw(st.sampled_from(self.nodes_in("queued", "running")), label="node")
        expected = self.expected_end(node, retryable=True)
        effect, view = self.report(node, Lost(self.steps[node].attempt))
        assert (effect, view.state) == expected

    @precondition(lambda self: self.last is not None)
    @rule()
    def report_again(self) -> None:
        assert self.last is not None
        node, event, first_effect, view_after = self.last
        unchanged_since = self.steps[node] == view_after
        effect, _ = self.report(node, event)
        assert effect in ("duplicate", "stale")
        if unchanged_since:
            # A repeat of what ended a step or asked it to cancel is answered 200; a repeat of
            # a claim, or of a failure that started a new attempt, is answered 409.
            repeat_is_stale = first_effect in ("stale", "retry") or (
                first_effect == "applied" and isinstance(event, Claimed)
            )
            assert effect == ("stale" if repeat_is_stale else "duplicate")

    @precondition(lambda self: any(view.attempt >= 2 for view in self.steps.values()))
    @rule(data=st.data(), kind=st.sampled_from(ATTEMPT_EVENTS))
    def report_from_an_old_attempt(self, data: st.DataObject, kind: type) -> None:
        nodes = [node for node, view in self.steps.items() if view.attempt >= 2]
        node = data.draw(st.sampled_from(nodes), label="node")
        old = data.draw(st.integers(1, self.steps[node].attempt - 1), label="attempt")
        assert self.report(node, kind(old))[0] == "stale"

    @precondition(lambda self: any(v.attempt and is_terminal(v.state) for v in self.steps.values()))
    @rule(data=st.data(), kind=st.sampled_from(ATTEMPT_EVENTS))
    def report_on_a_finished_step(self, data: st.DataObject, kind: type) -> None:
        nodes = [n for n, v in self.steps.items() if v.attempt and is_terminal(v.state)]
        node = data.draw(st.sampled_from(nodes), label="node")
        assert self.report(node, kind(self.steps[node].attempt))[0] in ("duplicate", "stale")

    # invariants

    @invariant()
    def terminal_states_never_change(self) -> None:
        for node, view in self.finished.items():
            assert self.steps[node] == view, f"finished step {node} changed"
        for node, view in self.steps.items():
            if is_terminal(view.state):
                self.finished[node] = view

    @invariant()
    def attempts_stay_within_the_budget(self) -> None:
        for node, view in self.steps.items():
            assert view.attempt <= self.policies[node].max_attempts
            # A step view holds a single attempt, so a second live attempt could only show up
            # as a live attempt nobody dispatched or as a repeated dispatch (checked in
            # `dispatch`); events for the attempts it replaced are checked to be stale.
            if view.state in ("queued", "running"):
                assert (node, view.attempt) in self.dispatches
            assert not view.cancel_requested or view.state in ("running", "canceled", "succeeded")

    @invariant()
    def no_step_starts_before_its_parents_are_done(self) -> None:
        for node, view in self.steps.items():
            if view.attempt >= 1 or view.state == "reused":
                for parent in self.parents[node]:
                    parent_view = self.steps[parent]
                    assert parent_view.state in DONE_OK_STATES or (
                        parent_view.state == "failed" and self.policies[parent].continue_on_failure
                    ), f"{node} started while parent {parent} is {parent_view.state}"

    @invariant()
    def the_run_finishes_exactly_when_every_step_is_terminal(self) -> None:
        if not self.steps:
            return
        actions = next_actions(self.parents, self.policies, self.steps, canceling=self.canceling)
        state = run_state(self.steps, canceling=self.canceling, policies=self.policies)
        if all(is_terminal(view.state) for view in self.steps.values()):
            expected = self.expected_status()
            assert actions == [FinishRun(expected)]
            # Whatever the steps did, a run that was being canceled ends canceled.
            assert next_actions(self.parents, self.policies, self.steps, canceling=True) == [
                FinishRun("canceled")
            ]
            assert state == expected
            assert self.run_status in (None, expected)
        else:
            assert self.run_status is None, "the run finished with steps still going"
            assert state in ("queued", "running")
            # Never stuck: either a worker holds a step or the server has something to do.
            assert self.nodes_in("queued", "running") or actions


RunMachine.TestCase.settings = settings(max_examples=200, stateful_step_count=40, deadline=None)
test_run_state_machine = RunMachine.TestCase
