"""Which channels are on, and their adapters built from the settings. A channel whose required
settings are missing is off."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any, AsyncIterator, Dict

from sqlalchemy.orm import sessionmaker

from channel_adapters.web import WebAdapter
from helpline.settings import Settings
from helpline.store import ChannelState

ZALO_TOKENS_KEY = "zalo.tokens"


def enabled_channels(settings: Settings) -> Dict[str, bool]:
    """Each channel and whether its settings are complete."""
    return {
        "wechat": bool(settings.wechat_token and settings.wechat_app_id and settings.wechat_app_secret),
        "zalo": bool(settings.zalo_app_id and settings.zalo_oa_secret and settings.zalo_access_token
                     and settings.zalo_refresh_token and settings.zalo_app_secret),
        "telegram": bool(settings.telegram_token and settings.telegram_secret),
        "web": settings.web_enabled,
    }


class DatabaseZaloTokens:
    """Zalo's tokens kept in the database, so a rotated refresh token survives a restart.

    The lock is per process (an asyncio lock); with several processes on PostgreSQL it is also a
    PostgreSQL advisory lock, so exactly one process refreshes at a time.
    """

    def __init__(self, sessions: sessionmaker, initial: Any) -> None:
        self._sessions = sessions
        self._initial = initial
        self._lock = asyncio.Lock()

    def _load(self) -> Any:
        from channel_adapters.zalo import ZaloTokens

        with self._sessions() as session:
            row = session.get(ChannelState, ZALO_TOKENS_KEY)
            if row is None:
                return self._initial
            return ZaloTokens(**json.loads(row.value))

    def _save(self, tokens: Any) -> None:
        value = json.dumps({"access_token": tokens.access_token, "refresh_token": tokens.refresh_token,
                            "expires_at": tokens.expires_at})
        with self._sessions.begin() as session:
            row = session.get(ChannelState, ZALO_TOKENS_KEY)
            if row is None:
                session.add(ChannelState(key=ZALO_TOKENS_KEY, value=value, version=1, updated_at=time.time()))
            else:
                row.value, row.version, row.updated_at = value, row.version + 1, time.time()

    async def load(self) -> Any:
        return await asyncio.to_thread(self._load)

    async def save(self, tokens: Any) -> None:
        await asyncio.to_thread(self._save, tokens)

    @contextlib.asynccontextmanager
    async def lock(self) -> AsyncIterator[None]:
        async with self._lock:
            engine = self._sessions.kw["bind"]
            if engine.dialect.name != "postgresql":
                yield
                return
            from sqlalchemy import text

            connection = await asyncio.to_thread(engine.connect)
            try:
                await asyncio.to_thread(connection.execute, text("SELECT pg_advisory_lock(hashtext('zalo.tokens'))"))
                try:
                    yield
                finally:
                    await asyncio.to_thread(connection.execute, text("SELECT pg_advisory_unlock(hashtext('zalo.tokens'))"))
            finally:
                await asyncio.to_thread(connection.close)


def build_adapters(settings: Settings, sessions: sessionmaker) -> Dict[str, Any]:
    """The adapters of the channels that are on."""
    on = enabled_channels(settings)
    adapters: Dict[str, Any] = {}
    if on["wechat"]:
        from channel_adapters.wechat import WeChatAdapter, WeChatConfig

        adapters["wechat"] = WeChatAdapter(WeChatConfig(
            token=settings.wechat_token, app_id=settings.wechat_app_id, app_secret=settings.wechat_app_secret,
            aes_key=settings.wechat_aes_key, api_base=settings.wechat_api_base, timeout=settings.channel_timeout,
        ))
    if on["zalo"]:
        from channel_adapters.zalo import ZaloAdapter, ZaloConfig, ZaloTokens

        initial = ZaloTokens(settings.zalo_access_token, settings.zalo_refresh_token, None)
        adapters["zalo"] = ZaloAdapter(
            ZaloConfig(app_id=settings.zalo_app_id, oa_secret=settings.zalo_oa_secret,
                       app_secret=settings.zalo_app_secret, api_base=settings.zalo_api_base,
                       oauth_base=settings.zalo_oauth_base, timeout=settings.channel_timeout),
            DatabaseZaloTokens(sessions, initial),
        )
    if on["telegram"]:
        from channel_adapters.telegram import TelegramAdapter, TelegramConfig

        adapters["telegram"] = TelegramAdapter(TelegramConfig(
            token=settings.telegram_token, secret=settings.telegram_secret, api_base=settings.telegram_api_base,
            timeout=settings.channel_timeout,
        ))
    if on["web"]:
        adapters["web"] = WebAdapter()
    return adapters
