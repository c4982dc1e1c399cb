"""Admin commands over the HTTP API (revoke, check, unrevoke, import, export)."""

from __future__ import annotations

import argparse


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Registered by ``revoker.cli``; the commands are built on ``revoker.client``."""
    del sub
