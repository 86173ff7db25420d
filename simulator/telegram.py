"""A double of the Telegram Bot API's ``sendMessage`` (``GET`` or ``POST /bot<token>/sendMessage``).

Answers with the Bot API's envelope (``{"ok": true, "result": {Message}}``), 401 for a wrong
token, 400 for a missing ``chat_id`` or ``text``, and - while
:meth:`TelegramDouble.rate_limit` is active - 429 ``Too Many Requests: retry after N`` with
``parameters.retry_after``. Every delivered message is recorded.
"""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from simulator.faulthandle import FaultHandle
from simulator.httpbase import HttpRequest, HttpResponse, HttpService, json_response

__all__ = ["SentMessage", "TelegramDouble"]

_PATH = re.compile(r"^/bot(?P<token>[^/]+)/(?P<method>[A-Za-z]+)$")
MAX_TEXT = 4096


@dataclass(frozen=True, slots=True)
class SentMessage:
    """One delivered message."""

    message_id: int
    chat_id: int | str
    text: str
    params: dict[str, Any]
    http_method: str
    at: float


def _error(code: int, description: str, **extra: Any) -> HttpResponse:
    body: dict[str, Any] = {"ok": False, "error_code": code, "description": description}
    body.update(extra)
    return json_response(code, body)


class TelegramDouble(HttpService):
    """``https://api.telegram.org`` on loopback.

    Args:
        token: the bot token the double accepts.
        port: port to bind (0: any free port).
    """

    def __init__(
        self,
        token: str = "123456:TEST-token",  # noqa: S107 - the double's default test token
        *,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        super().__init__("telegram", host, port, hold_seconds=30.0)
        self.token = token
        self._cond = threading.Condition()
        self._messages: list[SentMessage] = []
        self._next_id = 1
        self._limit: FaultHandle | None = None
        self._retry_after = 0
        self.rate_limited = 0
        """How many requests got a 429."""

    @property
    def messages(self) -> list[SentMessage]:
        """Every delivered message, oldest first."""
        with self._cond:
            return list(self._messages)

    def wait_for(self, count: int, timeout: float) -> list[SentMessage]:
        """Block until ``count`` messages were delivered.

        Raises:
            TimeoutError: fewer arrived within ``timeout`` real seconds.
        """
        with self._cond:
            ok = self._cond.wait_for(lambda: len(self._messages) >= count, timeout)
            got = list(self._messages)
        if not ok:
            raise TimeoutError(f"{len(got)} of {count} messages after {timeout}s")
        return got

    def rate_limit(
        self, retry_after: int = 5, *, count: int | None = None, seconds: float | None = None
    ) -> FaultHandle:
        """Answer ``sendMessage`` with 429 and ``parameters.retry_after`` while active."""
        self._retry_after = retry_after
        self._limit = FaultHandle(
            f"telegram: 429 retry after {retry_after}", count=count, seconds=seconds
        )
        return self._limit

    def _params(self, req: HttpRequest) -> dict[str, Any]:
        params: dict[str, Any] = dict(req.query)
        if req.method == "POST" and req.body:
            ctype = req.headers.get("content-type", "")
            if "application/json" in ctype:
                try:
                    body = json.loads(req.body)
                except ValueError:
                    body = None
                if isinstance(body, dict):
                    params.update(body)
            else:
                params.update(
                    dict(parse_qsl(req.body.decode("utf-8", "replace"), keep_blank_values=True))
                )
        return params

    def handle(self, request: HttpRequest) -> HttpResponse:
        """Route one Bot API request."""
        match = _PATH.match(request.path)
        if match is None:
            return _error(404, "Not Found")
        if match["token"] != self.token:
            return _error(401, "Unauthorized")
        method = match["method"].lower()
        if method == "getme":
            return json_response(200, {"ok": True, "result": self._bot()})
        if method != "sendmessage":
            return _error(404, "Not Found")
        limit = self._limit
        if limit is not None and limit.consume():
            self.rate_limited += 1
            n = self._retry_after
            return _error(429, f"Too Many Requests: retry after {n}", parameters={"retry_after": n})
        params = self._params(request)
        chat_id = params.get("chat_id")
        text = params.get("text")
        if chat_id in (None, ""):
            return _error(400, "Bad Request: chat_id is empty")
        if not text:
            return _error(400, "Bad Request: message text is empty")
        if len(str(text)) > MAX_TEXT:
            return _error(400, "Bad Request: message is too long")
        with self._cond:
            message_id = self._next_id
            self._next_id += 1
            sent = SentMessage(message_id, chat_id, str(text), params, request.method, time.time())
            self._messages.append(sent)
            self._cond.notify_all()
        return json_response(200, {"ok": True, "result": {
            "message_id": message_id,
            "from": self._bot(),
            "chat": self._chat(chat_id),
            "date": int(sent.at),
            "text": str(text),
        }})  # fmt: skip

    def fault_response(self, request: HttpRequest, status: int) -> HttpResponse:
        """Bot API error envelope for injected statuses."""
        del request
        return _error(status, "Internal Server Error" if status >= 500 else "Bad Request")

    def _bot(self) -> dict[str, Any]:
        bot_id = int(self.token.split(":", 1)[0]) if self.token.split(":", 1)[0].isdigit() else 1
        return {
            "id": bot_id,
            "is_bot": True,
            "first_name": "VolSpike Sim",
            "username": "volspike_sim_bot",
        }

    @staticmethod
    def _chat(chat_id: Any) -> dict[str, Any]:
        text = str(chat_id)
        if text.startswith("@"):
            return {
                "id": -1001000000001,
                "title": text[1:],
                "username": text[1:],
                "type": "channel",
            }
        try:
            num = int(text)
        except ValueError:
            return {"id": text, "type": "private"}
        if num < 0:
            return {
                "id": num,
                "title": "Simulated group",
                "type": "supergroup" if text.startswith("-100") else "group",
            }
        return {"id": num, "first_name": "Sim", "type": "private"}
