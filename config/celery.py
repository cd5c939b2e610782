"""The Celery app. Without REDIS_URL tasks run in-process (eager); with it, on workers."""

import logging
import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.base")

app = Celery("config")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


def dispatch(task, *args) -> None:
    """Sends a task to the workers, or runs it here when tasks run in-process. (In-process, the
    call is direct rather than `delay()`: Celery's eager `delay()` flips a process-wide "no
    result.get() now" flag, and two threads doing so at once can leave it set for good.)"""
    if task.app.conf.task_always_eager:
        task(*args)
    else:
        task.delay(*args)


def dispatch_or_log(task, *args, failed: str) -> None:
    """`dispatch`, for work sent after a change committed: a broker that cannot be reached (or a
    failure of the in-process run) is logged with `failed`, never raised into the change that
    committed; the beat's sweeps pick the work up."""
    try:
        dispatch(task, *args)
    except Exception:
        logging.getLogger(__name__).exception(failed)
