"""rf_testsupport.compare: answers equal but for a float sum's last bits agree; anything else is a difference."""

from __future__ import annotations

import pytest

from rf_testsupport import assert_same_answers, differences

ANSWER = {"groups": [{"key": "a", "avg_seconds": 0.1 + 0.2, "n": 3, "median": None}], "data_as_of": "2026-11-29"}


def test_a_float_summed_in_another_order_agrees() -> None:
    other = {"groups": [{"key": "a", "avg_seconds": 0.3, "n": 3, "median": None}], "data_as_of": "2026-11-29"}
    assert ANSWER != other, "the two differ in their last bits"
    assert differences(ANSWER, other) == []
    assert_same_answers(ANSWER, other)


@pytest.mark.parametrize(
    ("changed", "where"),
    [
        ({"groups": [{"key": "a", "avg_seconds": 0.31, "n": 3, "median": None}], "data_as_of": "2026-11-29"},
         "$.groups[0].avg_seconds"),
        ({"groups": [{"key": "b", "avg_seconds": 0.3, "n": 3, "median": None}], "data_as_of": "2026-11-29"},
         "$.groups[0].key"),
        ({"groups": [{"key": "a", "avg_seconds": 0.3, "n": 4, "median": None}], "data_as_of": "2026-11-29"},
         "$.groups[0].n"),
        ({"groups": [{"key": "a", "avg_seconds": 0.3, "n": 3, "median": 1.0}], "data_as_of": "2026-11-29"},
         "$.groups[0].median"),
        ({"groups": [{"key": "a", "avg_seconds": 0.3, "n": 3}], "data_as_of": "2026-11-29"}, "$.groups[0]: keys"),
        ({"groups": [], "data_as_of": "2026-11-29"}, "$.groups: 0 items"),
        ({"groups": [{"key": "a", "avg_seconds": 0.3, "n": 3, "median": None}], "data_as_of": None}, "$.data_as_of"),
    ],
)
def test_any_other_difference_is_named(changed: dict, where: str) -> None:
    found = differences(changed, ANSWER)
    assert len(found) == 1 and found[0].startswith(where), found
    with pytest.raises(AssertionError):
        assert_same_answers(changed, ANSWER)
