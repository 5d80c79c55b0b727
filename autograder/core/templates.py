"""The project's Jinja2 templates (``autograder/templates/``): pages and generated text.

One environment serves every template: HTML templates (``*.html``) are autoescaped, so
whatever a submission wrote (its id, messages, code, output) is escaped wherever a page
shows it; text templates are not. A template's sentences are catalogue messages
(``{{ _("English {field}").format(field=...) }}``, translated by :mod:`.catalogue` in the
run's language), so the course server's pages can share these templates and their text.
"""

from __future__ import annotations

from functools import cache

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from .catalogue import _


@cache
def environment() -> Environment:
    env = Environment(
        loader=PackageLoader("autograder", "templates"),
        autoescape=select_autoescape(["html"], default_for_string=False, default=False),
        undefined=StrictUndefined,  # a name the code forgot to pass is an error, not blank
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        extensions=["jinja2.ext.i18n"],
    )
    # old-style callables: _() returns the plain translated text (a str, escaped on output
    # like any other value), filled with str.format fields as in the code
    env.install_gettext_callables(  # type: ignore[attr-defined]
        gettext=_, ngettext=lambda singular, plural, n: _(singular if n == 1 else plural),
        newstyle=False)
    return env


def render(name: str, **context: object) -> str:
    """Template ``name`` (under autograder/templates/) filled with ``context``."""
    return environment().get_template(name).render(**context)
