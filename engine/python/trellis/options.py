"""Celery-style options, translated to the engine's option names.

Options are keyword arguments, named and measured as in Celery (seconds,
exception classes), on ``@app.task(...)``, ``sig.set(...)`` and
``apply_async(...)``. The engine's names (the workflow-file shape of
docs/canvas.md) are accepted as they are too. ``to_engine`` returns the
workflow-file ``options`` map; the C++ parser then checks every value, so
a bad one raises ``InvalidWorkflow`` naming it.

=======================  ===================================================
Celery-style             engine option
=======================  ===================================================
queue                    queue
countdown (s)            countdown_ms
eta (datetime or str)    eta (RFC 3339; a naive datetime is UTC)
expires (s or datetime)  expires_ms
time_limit (s)           time_limit_ms
soft_time_limit (s)      soft_time_limit_ms
rate_limit ("10/s")      rate_limit
priority (0-9)           priority
idempotency_key          idempotency_key
max_retries              retry.max_retries
default_retry_delay (s)  retry.countdown_ms
retry_backoff            retry.backoff: True exponential from 1 s, a number
                         exponential from that many seconds, False fixed
retry_backoff_max (s)    retry.backoff_max_ms
retry_jitter             retry.jitter
autoretry_for            retry.retry_on (exception classes or names)
dont_autoretry_for       retry.dont_retry_on
retry (dict)             retry, in the engine's shape
=======================  ===================================================

Retry filters compare names: ``autoretry_for=(ConnectionError,)`` retries a
task that raised ``ConnectionError``, not one that raised a subclass of it
(list the subclasses too). Without ``autoretry_for`` every failure type is
retried up to ``max_retries``.
"""

import datetime

_SECONDS = {
    "countdown": "countdown_ms",
    "time_limit": "time_limit_ms",
    "soft_time_limit": "soft_time_limit_ms",
}
_AS_IS = ("queue", "rate_limit", "priority", "idempotency_key", "countdown_ms", "expires_ms",
          "time_limit_ms", "soft_time_limit_ms")
_RETRY = ("max_retries", "default_retry_delay", "retry_backoff", "retry_backoff_max", "retry_jitter",
          "autoretry_for", "dont_autoretry_for")

#: Every option name ``to_engine`` knows.
NAMES = frozenset(_SECONDS) | frozenset(_AS_IS) | frozenset(_RETRY) | {"eta", "expires", "retry"}


def _ms(seconds, name):
    if isinstance(seconds, datetime.timedelta):
        seconds = seconds.total_seconds()
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        raise TypeError(f"option {name}: seconds as a number, not {seconds!r}")
    return int(round(seconds * 1000))


def _utc(when):
    if when.tzinfo is None:
        return when.replace(tzinfo=datetime.timezone.utc)
    return when.astimezone(datetime.timezone.utc)


def _rfc3339(when):
    if isinstance(when, str):
        return when
    if not isinstance(when, datetime.datetime):
        raise TypeError(f"option eta: a datetime or an RFC 3339 string, not {when!r}")
    return _utc(when).strftime("%Y-%m-%dT%H:%M:%S.") + f"{_utc(when).microsecond // 1000:03d}Z"


def _type_names(types, name):
    if isinstance(types, (type, str)):
        types = (types,)
    names = []
    for t in types:
        if isinstance(t, str):
            names.append(t)
        elif isinstance(t, type) and issubclass(t, BaseException):
            names.append(t.__name__)
        else:
            raise TypeError(f"option {name}: exception classes or their names, not {t!r}")
    return names


def _retry(options, into):
    retry = dict(into.get("retry", {}))
    if "max_retries" in options:
        retry["max_retries"] = options["max_retries"]
    if "default_retry_delay" in options:
        retry["countdown_ms"] = _ms(options["default_retry_delay"], "default_retry_delay")
    if "retry_backoff" in options:
        backoff = options["retry_backoff"]
        if backoff is True:
            retry["backoff"] = "exponential"
            retry.setdefault("countdown_ms", 1000)
        elif backoff is False:
            retry["backoff"] = "fixed"
        else:
            retry["backoff"] = "exponential"
            retry["countdown_ms"] = _ms(backoff, "retry_backoff")
    if "retry_backoff_max" in options:
        retry["backoff_max_ms"] = _ms(options["retry_backoff_max"], "retry_backoff_max")
    if "retry_jitter" in options:
        retry["jitter"] = options["retry_jitter"]
    if "autoretry_for" in options:
        retry["retry_on"] = _type_names(options["autoretry_for"], "autoretry_for")
    if "dont_autoretry_for" in options:
        retry["dont_retry_on"] = _type_names(options["dont_autoretry_for"], "dont_autoretry_for")
    return retry


def to_engine(options):
    """Celery-style (or engine) options as the engine's options map."""
    unknown = sorted(set(options) - NAMES)
    if unknown:
        raise TypeError(f"unknown option(s) {', '.join(unknown)}; known: {', '.join(sorted(NAMES))}")
    out = {}
    for name, value in options.items():
        if value is None:
            continue
        if name in _SECONDS:
            out[_SECONDS[name]] = _ms(value, name)
        elif name in _AS_IS:
            out[name] = value
        elif name == "eta":
            out["eta"] = _rfc3339(value)
        elif name == "expires":
            if isinstance(value, datetime.datetime):
                now = datetime.datetime.now(datetime.timezone.utc)
                value = max(0.0, (_utc(value) - now).total_seconds())
            out["expires_ms"] = _ms(value, name)
        elif name == "retry":
            if not isinstance(value, dict):
                raise TypeError("option retry: a dict in the engine's shape (max_retries, countdown_ms, ...)")
            out["retry"] = dict(value)
    if any(name in options for name in _RETRY):
        out["retry"] = _retry(options, out)
    return out
