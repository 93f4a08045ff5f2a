"""If-Match parsing and strong comparison (RFC 9110 section 13.1.1)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from rfkit.etags import PreconditionFailed, micros, parse_if_match, strong_etag
from rfkit.web import error_status

CURRENT = strong_etag("t", "abc", 3)


def test_a_strong_tag_is_quoted_and_joined() -> None:
    assert CURRENT == '"t-abc-3"'
    assert micros(datetime(1970, 1, 1, 0, 0, 1, 5, tzinfo=UTC)) == 1_000_005


@pytest.mark.parametrize("lines", [[], [""], ["  "]])
def test_no_if_match_is_no_condition(lines: list[str]) -> None:
    assert parse_if_match(lines) is None


@pytest.mark.parametrize(
    "lines",
    [['"t-abc-3"'], ['"x", "t-abc-3"'], ['"x"', '"t-abc-3"'], ['"a,b" ,"t-abc-3"'], ["*"], [' "t-abc-3" ,, ']],
)
def test_matching_preconditions_pass(lines: list[str]) -> None:
    condition = parse_if_match(lines)
    assert condition is not None
    condition.check(CURRENT)


@pytest.mark.parametrize("lines", [['"t-abc-2"'], ['W/"t-abc-3"'], ['W/"x", W/"t-abc-3"'], ['"a,b", "c"']])
def test_stale_or_weak_tags_fail(lines: list[str]) -> None:
    condition = parse_if_match(lines)
    assert condition is not None
    with pytest.raises(PreconditionFailed) as failed:
        condition.check(CURRENT)
    assert error_status(failed.value) == 412 and failed.value.code == "precondition_failed"


@pytest.mark.parametrize("value", ["t-abc-3", '"t-abc-3', '"t-abc-3"x', "*, \"t-abc-3\"", 'w/"t-abc-3"'])
def test_malformed_if_match_is_refused_with_a_reason(value: str) -> None:
    with pytest.raises(PreconditionFailed, match="quoted entity tags"):
        parse_if_match([value])
