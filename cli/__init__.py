"""The `kb` command: the edge that wires the core (`kb`), the loaders (`ingest`) and the web app
(`web`) together. It sits above all three; none of them imports it."""

from .main import COMMANDS, build_parser, main

__all__ = ["COMMANDS", "build_parser", "main"]
