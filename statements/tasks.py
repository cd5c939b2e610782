"""Celery tasks of the traders' side: sending an account email (a password reset) off the
request, so that the answer takes as long for an unknown address as for a known one."""

import smtplib

from celery import shared_task
from django.core.mail import EmailMultiAlternatives


@shared_task(
    name="statements.tasks.send_account_email",
    ignore_result=True,
    autoretry_for=(OSError, smtplib.SMTPServerDisconnected, smtplib.SMTPConnectError),
    retry_backoff=30,
    max_retries=5,
)
def send_account_email(subject: str, body: str, html: str | None, to: str) -> None:
    message = EmailMultiAlternatives(subject, body, to=[to])
    if html:
        message.attach_alternative(html, "text/html")
    message.send()
