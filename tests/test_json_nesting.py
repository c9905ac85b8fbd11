"""search.params.json_nesting: the depth of raw JSON, read without parsing it (so without recursion)."""

from __future__ import annotations

import json

import pytest

from search.params import json_nesting


@pytest.mark.parametrize(
    ("raw", "depth"),
    [
        (b"1", 0),
        (b'"text"', 0),
        (b"[1, 2]", 1),
        (b'{"a": [1, {"b": null}]}', 3),
        (b'{"a": "[[[[{{{{"}', 1),  # brackets inside a string do not count
        (b'{"a": "say \\"[[[\\" twice"}', 1),  # nor after an escaped quote
        (b'["\\\\", [[1]]]', 3),  # an escaped backslash ends before the closing quote
        (b"[" * 5000, 5000),  # unbalanced: every opening counts
        (b"[]" * 100_000, 1),
        (b'"unterminated [[[[', 0),
    ],
)
def test_depth_of_raw_json(raw, depth):
    assert json_nesting(raw) == depth


def test_depth_agrees_with_the_parsed_structure():
    # given
    value = {"title": "Towel [large]", "specifications": {"size": ["70 x 140", {"unit": "cm"}]}, "tags": [[["x"]]]}
    # then
    assert json_nesting(json.dumps(value).encode()) == 4
