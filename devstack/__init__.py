"""The embedded dev stack: everything a rollout needs, on loopback, in one folder.

``rollout dev up`` starts it and ``rollout dev down`` stops it by pid. ``stack`` is its
lifecycle (up, down, status, fault); ``info`` describes a running stack (``stack.json``);
``configs`` writes each process's files; ``binaries`` finds the programs it runs; ``parts``
starts each process; ``processes`` starts and stops programs by pid; ``fleet`` is the
many-target stack a fleet demo uses; ``trust`` holds the dev stack's signing key and
allowed signers. It needs the devstack extra (``require_extra`` says so when it is missing).
"""

from devstack.processes import choose_ports
from devstack.stack import (
    StackError,
    StackInfo,
    StackOptions,
    down,
    envoy_binary,
    fault,
    is_up,
    load,
    running,
    stack_file,
    status,
    up,
)

__all__ = [
    "StackError",
    "StackInfo",
    "StackOptions",
    "choose_ports",
    "down",
    "envoy_binary",
    "fault",
    "is_up",
    "load",
    "running",
    "stack_file",
    "status",
    "up",
]
