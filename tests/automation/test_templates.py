"""The template sandbox: rendering, typed values, sandbox refusals, errors and bounds."""

from __future__ import annotations

import pytest

from edgeiot_gateway.automation.errors import DefinitionError
from edgeiot_gateway.automation.templates import (
    MAX_OUTPUT_CHARS,
    TemplateError,
    compile_template,
)


def render(source: str, **variables: object) -> str:
    return compile_template(source, "actions[0].params.body").render(variables)


def test_renders_like_home_assistant_templates() -> None:
    assert render("{{ value * 1.8 + 32 }}", value=20) == "68.0"
    assert render("{% if value > 3 %}high{% else %}low{% endif %}", value=5) == "high"
    assert render("{{ names | join(', ') }}", names=["a", "b"]) == "a, b"
    assert render("{{ value | round(1) }}", value=2.345) == "2.3"


def test_render_value_is_typed() -> None:
    def value(source: str, **variables: object) -> object:
        return compile_template(source, "transform").render_value(variables)

    assert value("{{ value * 2 }}", value=21) == 42
    assert value("{{ value > 1 }}", value=2) is True
    assert value("{{ [1, 'a'] }}") == [1, "a"]
    assert value('{"k": {{ value }}}', value=3) == {"k": 3}
    assert value("{{ none }}") is None
    assert value("hello {{ who }}", who="you") == "hello you"
    assert value("{{ (1, 2) }}") == "(1, 2)"  # a tuple is no JSON value: the text


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ value.__class__ }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ names.append(1) }}",  # immutable sandbox: no changing values
        "{{ data.update({'x': 1}) }}",
        "{{ func.__code__ }}",
    ],
)
def test_sandbox_blocks_internals(source: str) -> None:
    names: list[int] = []
    data: dict[str, int] = {}
    with pytest.raises(TemplateError, match=r"^actions\[0\]\.params\.body: "):
        render(source, value=1, names=names, data=data, func=len)
    assert names == []
    assert data == {}


def test_syntax_errors_name_the_place() -> None:
    with pytest.raises(DefinitionError) as err:
        compile_template("ok\n{{ value + }}", "conditions[1].template")
    assert str(err.value) == "conditions[1].template: line 2: unexpected 'end of print statement'"
    with pytest.raises(DefinitionError, match=r"^transform: line 1: .*endif"):
        compile_template("{% if x %}", "transform")
    with pytest.raises(DefinitionError, match="must be a string"):
        compile_template(5, "transform")  # type: ignore[arg-type]
    with pytest.raises(DefinitionError, match="longer than 4096 bytes"):
        compile_template("x" * 4097, "transform")


def test_render_errors_are_clear() -> None:
    with pytest.raises(TemplateError, match=r"^t: 'missing' is undefined"):
        compile_template("{{ missing }}", "t").render({})
    with pytest.raises(TemplateError, match=r"^t: ZeroDivisionError"):
        compile_template("{{ 1 / 0 }}", "t").render({})


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("{% for i in range(10) %}{{ 'x' * 10000 }}{% endfor %}", "output longer than 65536"),
        ("{{ 'x' * 100000000 }}", "'\\*' would build 100000000 items"),
        ("{{ [0] * 100000000 }}", "would build"),
        ("{{ 10 ** 100000000 }}", "exponent 100000000 is too large"),
        ("{% for i in range(10**7) %}{% endfor %}", "range\\(\\) of 10000000 items"),
        (
            "{% for a in range(10000) %}{% for b in range(10000) %}{% endfor %}{% endfor %}",
            "took longer than 1 s",
        ),
    ],
)
def test_bounds(source: str, message: str) -> None:
    with pytest.raises(TemplateError, match=message):
        compile_template(source, "t").render({})


def test_output_at_the_bound_is_fine_and_later_renders_are_unaffected() -> None:
    assert len(render("{{ 'x' * n }}", n=MAX_OUTPUT_CHARS)) == MAX_OUTPUT_CHARS
    with pytest.raises(TemplateError):
        render("{{ 'x' * n }}{{ 'y' }}", n=MAX_OUTPUT_CHARS)
    assert render("{{ 1 + 1 }}") == "2"
