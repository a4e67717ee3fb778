"""Trusted checks of exercise_08's graded cells (instructor side, never released)."""
