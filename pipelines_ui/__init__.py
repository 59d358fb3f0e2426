"""Pipelines UI: the Django project that owns the state (database) and the broadcasting."""
