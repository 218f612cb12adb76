"""Helpers for testing QuestFoundry and its plugins: fake clock, conformance suites, fake servers.

Conformance suites are base classes: subclass one in your plugin's tests, implement its fixture that
returns an empty backend, and every standard test runs against your backend.
"""
