"""`sarm <command> --help`: every flag's default said once, never "(default: None)"."""

from __future__ import annotations

import re

import pytest

from sarm.cli import _COMMANDS, main


@pytest.mark.parametrize("command", [c.__name__.rsplit(".", 1)[1] for c in _COMMANDS])
def test_help_says_each_default_once(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    text = re.sub(r"\s+", " ", capsys.readouterr().out)
    assert "(default: None)" not in text
    assert "(default: False)" not in text
    for option in re.split(r" (?=--?\w)", text):
        assert option.count("default") <= 1, f"`sarm {command} --help` repeats a default: {option!r}"
