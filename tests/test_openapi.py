"""The API against its own OpenAPI document: schemathesis makes requests from the document, valid
and invalid (boundaries, wrong types, values over the declared limits, other methods), anonymous
and signed in, and checks every answer against it: the status is declared, valid requests are
accepted and invalid ones refused, the body has the declared shape, a 405 names the allowed
methods. So the document and the code cannot drift apart. In process (WSGI), bounded to stay
quick: a fixed seed, a few fuzzed examples per operation, no stateful phase (about 10 s a reader)."""

from __future__ import annotations

import time

import pytest
import schemathesis
from schemathesis.engine import events

SETTINGS = {
    "seed": 17,  # without a time limit each phase runs once: the examples, the coverage, one round of fuzzing
    "generation": {"mode": "all", "max-examples": 8, "deterministic": True},
    "phases": {"stateful": {"enabled": False}},
    # a q with nothing to search in it (spaces, control characters) is a 422: no schema keyword says so
    "checks": {"positive_data_acceptance": {"expected-statuses": ["2xx", "401", "403", "404", "422"]}},
}


def session_cookie(app, role: str) -> str:
    """A signed-in reader's session cookie, made as a sign-in makes one."""
    accounts = app.extensions["accounts"]
    user = accounts.add(f"openapi-{role}", role, "a long passphrase nobody guesses")
    serializer = app.session_interface.get_signing_serializer(app)
    return f"session={serializer.dumps({'sid': accounts.open_session(user.id)})}"


@pytest.fixture(scope="module")
def readers(corpus_app):
    """Request headers for each kind of reader: a visitor, a partner, a curator."""
    yield {"anonymous": {}, **{role: {"Cookie": session_cookie(corpus_app, role)} for role in ("partner", "curator")}}
    for role in ("partner", "curator"):
        corpus_app.extensions["accounts"].remove(f"openapi-{role}")


@pytest.mark.parametrize("reader", ["anonymous", "partner", "curator"])
def test_the_api_keeps_to_its_openapi_document(corpus_app, readers, reader):
    config = schemathesis.config.SchemathesisConfig.from_dict({**SETTINGS, "headers": readers[reader]})
    schema = schemathesis.openapi.from_wsgi("/api/openapi.json", corpus_app, config=config).include(method="GET")
    found, finished, started = {}, None, time.monotonic()
    for event in schemathesis.engine.from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished | events.FuzzScenarioFinished):
            for checks in event.recorder.checks.values():
                for check in checks:
                    if check.failure_info is not None:
                        failure = check.failure_info.failure
                        found.setdefault(f"{failure.code} {failure.operation}: {failure.title}",
                                         f"{failure.message}\n{check.failure_info.code_sample}")
        elif isinstance(event, events.NonFatalError | events.FatalError):
            error = getattr(event, "value", None) or getattr(event, "exception", None)
            found[f"error in {getattr(event, 'label', 'the run')}"] = str(error)
        elif isinstance(event, events.EngineFinished):
            finished = event
    assert finished is not None and finished.stop_reason == "completed", finished
    assert time.monotonic() - started < 60  # bounded: each phase runs once
    assert not found, "\n\n".join(f"{title}\n{detail}" for title, detail in found.items())
