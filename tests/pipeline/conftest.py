"""The whole-path modules each train once (a module-scoped `trained` fixture: its state folder and
what the pipeline printed); `state` points each test at that state folder."""

import pytest


@pytest.fixture
def state(trained, monkeypatch):
    monkeypatch.setenv("GREC_HOME", str(trained["home"]))
    return trained
