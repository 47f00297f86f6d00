"""Fixture firmware package."""

VERSION = "0.3.1"
