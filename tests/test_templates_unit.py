"""Unit tests of template substitution and `data` reading (domain/templates.py), which are pure."""

from __future__ import annotations

import pytest

from dingbox import errors
from dingbox.domain.templates import coerce_data, fill


@pytest.mark.parametrize(
    ("text", "filled", "missing"),
    [
        ("${a}${b}", "AB", []),
        ("$${a} ${ a } ${}", "$A ${ a } ${}", [" a "]),
        ("${a", "${a", []),
        ("${c}-${c}-${d}", "${c}-${c}-${d}", ["c", "d"]),
        ("${loop}", "${a}", []),
    ],
)
def test_fill_replaces_placeholders_in_one_pass(text: str, filled: str, missing: list[str]) -> None:
    data = {"a": "A", "b": "B", "loop": "${a}"}
    msg = {"msgtype": "markdown", "markdown": {"title": text, "text": "x", "n": 1}}
    result = fill(msg, data)
    assert result.msg == {"msgtype": "markdown", "markdown": {"title": filled, "text": "x", "n": 1}}
    assert result.missing == missing
    assert msg["markdown"]["title"] == text  # the template itself is left as it was


ESCAPED = "data had its quotes escaped as \\\", as in DingTalk's own curl sample"


@pytest.mark.parametrize(
    ("value", "data", "warnings"),
    [
        (None, {}, []),
        ("", {}, []),
        ({"k": "v", "n": 1.5}, {"k": "v", "n": "1.5"}, []),
        ('{"k": "v"}', {"k": "v"}, []),
        ('{\\"k\\":\\"v\\"}', {"k": "v"}, [ESCAPED]),
    ],
)
def test_coerce_data(value: object, data: dict[str, str], warnings: list[str]) -> None:
    assert coerce_data(value) == (data, warnings)


@pytest.mark.parametrize(
    ("value", "name"),
    [("[]", "data"), ("{", "data"), (7, "data"), ({"k": None}, "data.k"), ({"k": True}, "data.k")],
)
def test_coerce_data_refuses(value: object, name: str) -> None:
    with pytest.raises(errors.InvalidParameter) as raised:
        coerce_data(value)
    assert raised.value.message == f"不合法的参数 {name}"
