"""Credentials never reach the server's logs or error reports (docs/reliability.md S7).

Django's SafeExceptionReporterFilter hides settings and request headers by *name*
(`API|AUTH|TOKEN|KEY|SECRET|PASS|SIGNATURE|HTTP_COOKIE`), which misses a password inside a
URL: `DATABASE_URL`, `CELERY_BROKER_URL`, `REDIS_URL`, `CHANNEL_LAYERS`. It also shows frame
variables of undecorated functions in full, and never touches the exception's own message.
So, on top of it:

- `redact(text)` replaces URL passwords, API tokens (`pui_…`), worker keys (`pwk_…`) and the
  credential after `Authorization: Token|StepToken|WorkerKey|Bearer|Basic`;
- `SafeExceptionReporterFilter` also cleanses every setting and frame variable by value with
  `redact`, and frame variables by name like settings;
- `ExceptionReporter` passes the finished report (text and HTML: the e-mail to ADMINS and
  the DEBUG page) through `redact`, which covers the exception message;
- `RedactingFilter`, on every log handler, rewrites a record's message and traceback.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from django.views import debug

CLEANSED = debug.SafeExceptionReporterFilter.cleansed_substitute  # "********************"

_PATTERNS = [
    # scheme://user:password@host -> scheme://user:********@host
    (re.compile(r"(?P<head>\b[a-z][a-z0-9+.-]*://[^\s:/@'\"<>]*:)[^\s@/'\"<>]+@", re.I),
     rf"\g<head>{CLEANSED}@"),
    # API tokens and worker keys: keep the public prefix, which finds the row and is no secret.
    (re.compile(r"\b(?P<head>pui_[0-9a-f]+_)[A-Za-z0-9_-]+"), rf"\g<head>{CLEANSED}"),
    (re.compile(r"\b(?P<head>pwk_[A-Za-z0-9-]+_)[A-Za-z0-9_-]+"), rf"\g<head>{CLEANSED}"),
    # Whatever follows an authorization scheme, in a header dump or a message.
    # (A credential has a digit or one of _./+=, so "Token authentication" stays readable.)
    (re.compile(r"\b(?P<head>(?:Token|StepToken|WorkerKey|Bearer|Basic)\s+)"
                r"(?=[^\s'\"<>,;]*[0-9_./+=])[^\s'\"<>,;]{8,}"), rf"\g<head>{CLEANSED}"),
]


def redact(text: str) -> str:
    """The text with every credential the patterns know replaced by asterisks."""
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: _redact_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_redact_value(v) for v in value)
    return value


class SafeExceptionReporterFilter(debug.SafeExceptionReporterFilter):
    """Django's filter, plus credentials found by value (settings.
    DEFAULT_EXCEPTION_REPORTER_FILTER)."""

    def cleanse_setting(self, key, value):
        return _redact_value(super().cleanse_setting(key, value))

    def get_traceback_frame_variables(self, request, tb_frame):
        variables = super().get_traceback_frame_variables(request, tb_frame)
        cleansed = []
        for name, value in variables:
            if self.hidden_settings.search(str(name)):
                value = CLEANSED
            elif isinstance(value, str | dict | list | tuple):
                value = _redact_value(value)
            else:
                # Objects are shown by repr(); an object holding a URL or token shows it there.
                value = _RedactedRepr(value)
            cleansed.append((name, value))
        return cleansed


class _RedactedRepr:
    """Shows an object in a report as its repr() with credentials removed."""

    def __init__(self, wrapped: Any) -> None:
        self._wrapped = wrapped

    def __repr__(self) -> str:
        try:
            return redact(repr(self._wrapped))
        except Exception:  # a broken __repr__ must not break the error report
            return f"<{type(self._wrapped).__name__} (repr failed)>"


class ExceptionReporter(debug.ExceptionReporter):
    """The report's text and HTML, with the exception message and all else redacted
    (settings.DEFAULT_EXCEPTION_REPORTER)."""

    def get_traceback_text(self):
        return redact(super().get_traceback_text())

    def get_traceback_html(self):
        return redact(super().get_traceback_html())


class RedactingFilter(logging.Filter):
    """On a handler: the record's message and traceback, redacted, for every handler after."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string is the logging module's to report
            return True
        cleaned = redact(message)
        if cleaned != message or record.args:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True
