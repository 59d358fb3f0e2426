"""Spans of time as the run pages and the API write them for people."""

from __future__ import annotations

from datetime import timedelta


def format_duration(span: timedelta | None) -> str:
    """1.2 s, 4 m 05 s, 3 h 02 m: as precise as a person reading a table needs."""
    if span is None:
        return ""
    seconds = max(span.total_seconds(), 0)
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, seconds = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} m {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} m"
