"""Plugins used only by the test-suite (registered in-process, not through entry points)."""
