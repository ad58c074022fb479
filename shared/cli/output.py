"""How the CLI prints: JSON for machines (--json), aligned tables for people."""

from __future__ import annotations

import json
from typing import Any

from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message


def as_dict(message: Message) -> dict[str, Any]:
    """A protobuf message as JSON-ready data, field names as in the .proto, defaults included."""
    return MessageToDict(message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)


def print_json(data: Any) -> None:
    print(json.dumps(as_dict(data) if isinstance(data, Message) else data, indent=2))


def table(rows: list[list[Any]], header: list[str]) -> str:
    cells = [[str(cell) for cell in row] for row in [header, *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) for row in cells]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(line.rstrip() for line in lines)


def print_figures(figures: dict[str, Any]) -> None:
    """One figure a line, floats to four places: for evaluation results."""
    width = max(len(key) for key in figures)
    for key, value in figures.items():
        if isinstance(value, (list, dict)):
            continue
        shown = f"{value:.4f}" if isinstance(value, float) else str(value)
        print(f"{key:<{width}}  {shown}")
