"""The README stays true: every setting is documented, and its commands exist."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from argus.cli.main import build_parser
from argus.config import Settings

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def test_every_setting_is_in_the_configuration_table() -> None:
    documented = set(re.findall(r"^\| `(ARGUS_[A-Z0-9_]+)` \|", README, re.MULTILINE))
    assert documented == {f"ARGUS_{name.upper()}" for name in Settings.model_fields}


def test_readme_argus_commands_parse() -> None:
    parser = build_parser()
    lines = re.findall(r"^((?:\.venv/bin/)?argus [^#\n]+?)\s*(?:#.*)?$", README, re.MULTILINE)
    commands = [part.split("argus ", 1)[1] for line in lines for part in line.split("&") if "argus " in part]
    assert len(commands) >= 12
    for command in commands:
        parser.parse_args(shlex.split(re.sub(r"\[[^\]]*\]", "", command)))  # optional [parts] left out
