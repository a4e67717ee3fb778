"""Trusted checks of exercise_08_optional's graded cells (instructor side, never released)."""
