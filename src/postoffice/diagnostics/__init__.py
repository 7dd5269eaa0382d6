"""Diagnosis in plain words: `check` and `explain` commands, findings with a problem and a fix."""
