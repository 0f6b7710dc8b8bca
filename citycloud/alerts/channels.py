"""Senders: small adapters that put one alert message on one channel, or raise SendFailed.

- webhook: the alert's JSON object (alerts.md), POSTed; any 2xx is delivered.
- 企业微信 group robot: {"msgtype": "markdown", "markdown": {"content": ...}}; the robot answers
  {"errcode": 0, "errmsg": "ok"} (anything else is a failure).
- 钉钉 group robot: {"msgtype": "markdown", "markdown": {"title", "text"}}; with a signing secret
  (加签) the URL gets &timestamp=<ms>&sign=<base64(HMAC-SHA256(secret, "<ms>\\n<secret>"))>,
  URL-encoded; same errcode answer.
- e-mail: SMTP, plain text plus HTML, STARTTLS and login when configured.
Retries (tenacity, exponential back-off) are the caller's: citycloud.alerts.notify."""
from __future__ import annotations

import base64
import hashlib
import hmac
import html
import os
import smtplib
import time
import urllib.parse
from email.message import EmailMessage

import httpx

from citycloud.alerts.config import Dingtalk, Email, Webhook, Wecom, secret_from_env


class SendFailed(Exception):
    """The channel refused or did not answer; the message stays pending."""


def _markdown(body: dict) -> tuple[str, str]:
    """A title and the robots' markdown: the Chinese line first (what a phone notification shows)."""
    state = "已恢复" if body["status"] == "resolved" else ("数据交付" if body["kind"] == "delivery" else "指标异常")
    title = f"citycloud {state} {body['city_code']} {body['day']}"
    colour = "info" if body["status"] == "resolved" else "warning"
    text = f"### {title}\n> <font color=\"{colour}\">{body['message']}</font>\n\n`{body['key']}`"
    return title, text


def dingtalk_url(url: str, secret: str, timestamp_ms: int) -> str:
    """The robot URL with 钉钉's timestamp-and-HMAC signature (加签)."""
    to_sign = f"{timestamp_ms}\n{secret}".encode()
    sign = base64.b64encode(hmac.new(secret.encode(), to_sign, hashlib.sha256).digest()).decode()
    return f"{url}{'&' if '?' in url else '?'}timestamp={timestamp_ms}&sign={urllib.parse.quote_plus(sign)}"


def payload(channel, body: dict) -> dict:
    """The JSON a robot or webhook receives for one alert message."""
    if isinstance(channel, Webhook):
        return body
    title, text = _markdown(body)
    if isinstance(channel, Wecom):
        return {"msgtype": "markdown", "markdown": {"content": text}}
    return {"msgtype": "markdown", "markdown": {"title": title, "text": text}}


def _post(url: str, data: dict, timeout: float, robot: bool) -> None:
    try:
        response = httpx.post(url, json=data, timeout=timeout, headers={"Idempotency-Key": data.get("key", "")}
                              if not robot else None)
    except httpx.HTTPError as exc:
        raise SendFailed(f"{type(exc).__name__}: {exc}") from None
    if not response.is_success:
        raise SendFailed(f"HTTP {response.status_code}")
    if robot:
        try:
            answer = response.json()
        except ValueError:
            raise SendFailed("the robot's answer is not JSON") from None
        if answer.get("errcode") != 0:
            raise SendFailed(f"errcode {answer.get('errcode')}: {answer.get('errmsg')}")


def email_message(channel: Email, body: dict) -> EmailMessage:
    msg = EmailMessage()
    title, _ = _markdown(body)
    msg["Subject"] = title
    msg["From"] = channel.sender
    msg["To"] = ", ".join(channel.to)
    msg.set_content(f"{body['message']}\n\n{body['key']}\n")
    msg.add_alternative(f"<p>{html.escape(body['message'])}</p><p><code>{html.escape(body['key'])}</code></p>",
                        subtype="html")
    return msg


def send(name: str, channel, body: dict, timeout: float) -> None:
    """Put one message on the channel `name`; SendFailed when it did not take it."""
    if isinstance(channel, Email):
        try:
            with smtplib.SMTP(channel.smtp_host, channel.smtp_port, timeout=timeout) as smtp:
                if channel.starttls:
                    smtp.starttls()
                password = os.environ.get(channel.password_env or "", "")
                if password:  # a relay that takes mail without login needs no password
                    smtp.login(channel.username or channel.sender, password)
                smtp.send_message(email_message(channel, body))
        except (OSError, smtplib.SMTPException) as exc:
            raise SendFailed(f"SMTP: {exc}") from None
        return
    url = channel.address(name)
    if isinstance(channel, Dingtalk) and channel.secret_env:
        url = dingtalk_url(url, secret_from_env(channel.secret_env, f"channel {name}"), int(time.time() * 1000))
    _post(url, payload(channel, body), timeout, robot=not isinstance(channel, Webhook))
