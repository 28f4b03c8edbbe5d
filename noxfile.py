"""Local sessions for the project's habits: ``nox -l`` lists them, ``nox -s lint`` runs one.

Each session runs with the checkout's .venv (made by scripts/test.sh), not a venv of its
own: the compiled build takes minutes, and one install is what CI tests.
"""

from __future__ import annotations

import nox

nox.options.default_venv_backend = "none"
nox.options.sessions = ["checks", "tests"]


@nox.session
def checks(session: nox.Session) -> None:
    """ruff check and mypy --strict (scripts/check.sh)."""
    session.run("bash", "scripts/check.sh", external=True)


@nox.session
def tests(session: nox.Session) -> None:
    """The test suite, as CI runs it; arguments go to pytest: ``nox -s tests -- tests/store``."""
    session.run("bash", "scripts/test.sh", *session.posargs, external=True)


@nox.session
def docs(session: nox.Session) -> None:
    """The documentation site, warnings as errors, into site/."""
    session.run(".venv/bin/mkdocs", "build", "--strict", external=True)
