"""Helpers shared by the tests: references, tolerances, model cases, machine capabilities."""
