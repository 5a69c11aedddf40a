"""Every error of the catalogue is accounted for in docs/api-coverage.md, and every e2e claim holds."""

from __future__ import annotations

import re
from pathlib import Path

from dingbox import errors

ROOT = Path(__file__).resolve().parent.parent
ROW = re.compile(r"^\| `(\w+)` \|(.*)\| (e2e|injectable|pending): ?(.*) \|$")


def rows() -> dict[str, tuple[str, str, str]]:
    found: dict[str, tuple[str, str, str]] = {}
    for line in (ROOT / "docs/api-coverage.md").read_text(encoding="utf-8").splitlines():
        match = ROW.match(line)
        if match:
            name, forms, kind, detail = match.groups()
            assert name not in found, f"{name} has two rows"
            found[name] = (forms, kind, detail)
    return found


def test_every_catalogue_error_has_exactly_one_row() -> None:
    """The catalogue and the coverage table name the same errors, each once."""
    assert sorted(rows()) == sorted(cls.__name__ for cls in errors.catalogue())


def test_every_e2e_row_names_modules_that_assert_its_code() -> None:
    """Each module an e2e row names exists and contains the error's oapi code or its message."""
    for name, (_forms, kind, detail) in rows().items():
        if kind != "e2e":
            continue
        cls = getattr(errors, name)
        marks = {str(cls.errcode), cls.errmsg, cls.v1[1]} | ({str(cls.top[0])} if cls.top else set())
        for module in (m.strip() for m in detail.split(",")):
            text = (ROOT / "tests" / f"{module}.py").read_text(encoding="utf-8")
            assert any(mark in text for mark in marks), f"{module} does not assert {name}"
