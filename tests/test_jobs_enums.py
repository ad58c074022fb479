"""The job store's State and Kind copy the proto's JobState and JobKind (the domain does not import the proto):
the same names with the same numbers, the proto's UNSPECIFIED (0) aside, so a number converts either way."""

from __future__ import annotations

from enum import IntEnum

import pytest

from argus.proto.jobs.v1 import jobs_pb2
from argus.services.jobs.store import Kind, State


@pytest.mark.parametrize(
    ("domain", "proto", "unspecified"),
    [
        (State, dict(jobs_pb2.JobState.items()), "JOB_STATE_UNSPECIFIED"),
        (Kind, dict(jobs_pb2.JobKind.items()), "JOB_KIND_UNSPECIFIED"),
    ],
)
def test_the_domain_enum_matches_the_proto_enum(domain: type[IntEnum], proto: dict[str, int], unspecified: str) -> None:
    assert proto.pop(unspecified) == 0
    assert {member.name: member.value for member in domain} == proto
