"""Unit tests of the handoff rules (pure Python, no I/O)."""

from __future__ import annotations

import uuid

import pytest

from handoffs import domain
from handoffs.domain import Actor, HandoffState
from rfkit.errors import Conflict, Forbidden

HOLDER = uuid.uuid4()
OTHER = uuid.uuid4()


def state(status: str, claimed_by: uuid.UUID | None = None) -> HandoffState:
    return HandoffState(id=uuid.uuid4(), status=status, claimed_by=claimed_by)


def engineer(user: uuid.UUID) -> Actor:
    return Actor(user_id=user, is_admin=False)


def admin() -> Actor:
    return Actor(user_id=uuid.uuid4(), is_admin=True)


def test_holder_claiming_again_is_a_no_op() -> None:
    assert domain.explain_lost_claim(state("claimed", HOLDER), engineer(HOLDER)) == "already_yours"


def test_losing_a_claim_names_the_holder() -> None:
    with pytest.raises(Conflict) as err:
        domain.explain_lost_claim(state("claimed", HOLDER), engineer(OTHER))
    assert err.value.detail["claimed_by"] == str(HOLDER)


@pytest.mark.parametrize("status", ["resolved", "open"])
def test_a_claim_that_missed_a_resolved_or_reopened_handoff_is_a_conflict(status: str) -> None:
    with pytest.raises(Conflict):
        domain.explain_lost_claim(state(status), engineer(OTHER))


def test_release_is_for_the_holder_or_an_admin() -> None:
    domain.check_release(state("claimed", HOLDER), engineer(HOLDER))
    domain.check_release(state("claimed", HOLDER), admin())
    with pytest.raises(Forbidden):
        domain.check_release(state("claimed", HOLDER), engineer(OTHER))


@pytest.mark.parametrize("status", ["open", "resolved"])
def test_only_a_claimed_handoff_can_be_released(status: str) -> None:
    with pytest.raises(Conflict):
        domain.check_release(state(status), admin())


def test_resolve_is_for_the_holder_or_an_admin() -> None:
    domain.check_resolve(state("claimed", HOLDER), engineer(HOLDER))
    domain.check_resolve(state("claimed", HOLDER), admin())
    with pytest.raises(Forbidden):
        domain.check_resolve(state("claimed", HOLDER), engineer(OTHER))


def test_an_admin_may_resolve_an_open_handoff_an_engineer_must_claim_it_first() -> None:
    domain.check_resolve(state("open"), admin())
    with pytest.raises(Conflict):
        domain.check_resolve(state("open"), engineer(OTHER))


def test_a_resolved_handoff_cannot_be_resolved_again() -> None:
    with pytest.raises(Conflict):
        domain.check_resolve(state("resolved"), admin())


def test_completion_is_attributed_to_the_holder_else_the_requester() -> None:
    requester = uuid.uuid4()
    assert domain.system_resolver(claimed_by=HOLDER, requested_by=requester) == HOLDER
    assert domain.system_resolver(claimed_by=None, requested_by=requester) == requester
