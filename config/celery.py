"""The Celery app. Without REDIS_URL tasks run in-process (eager); with it, on workers."""

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
