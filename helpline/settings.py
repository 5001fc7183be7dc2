"""The service's settings: one typed object, read once at start from the environment (HELPLINE_*)
and an optional `.env` file. No other module reads `os.environ`.

A channel whose required settings are missing is off: its webhook answers 404.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional

from pydantic import BaseSettings, Field

from helpline.paths import ROOT


class Settings(BaseSettings):
    host: str = "127.0.0.1"
    port: int = 8000
    # SQLite under var/ by default (the embedded mode); postgresql://... in production.
    database_url: str = f"sqlite:///{ROOT / 'var' / 'helpline.db'}"
    # Keys the hashes of platform ids in logs, so logs can be correlated but not read back.
    secret_key: str = Field("", description="set in production; a random one is made per install under var/")
    max_body_bytes: int = 64 * 1024
    # Per sender: at most `rate_limit` messages in `rate_window` seconds are answered by the bot;
    # more are kept for operators, and the worker is asked (once a window) to slow down.
    rate_limit: int = 12
    rate_window: float = 60.0
    wechat_passive_seconds: float = 4.0  # WeChat waits 5 s for the HTTP answer
    web_wait_seconds: float = 15.0
    outbox_max_attempts: int = 8
    outbox_backoff_seconds: float = 1.0  # doubled per attempt, at most 5 minutes
    channel_timeout: float = 10.0  # seconds for each call to a platform's API
    assistant_delay: float = 0.0  # for tests and benchmarks only: a slow assistant
    default_language: str = "zh"

    wechat_token: Optional[str] = None
    wechat_app_id: Optional[str] = None
    wechat_app_secret: Optional[str] = None
    wechat_aes_key: Optional[str] = None
    wechat_api_base: str = "https://api.weixin.qq.com/"

    zalo_app_id: Optional[str] = None
    zalo_oa_secret: Optional[str] = None
    zalo_access_token: Optional[str] = None
    zalo_refresh_token: Optional[str] = None
    zalo_app_secret: Optional[str] = None
    zalo_api_base: str = "https://openapi.zalo.me/"
    zalo_oauth_base: str = "https://oauth.zaloapp.com/"

    telegram_token: Optional[str] = None
    telegram_secret: Optional[str] = None
    telegram_api_base: str = "https://api.telegram.org"

    web_enabled: bool = True

    # Handoff and the console.
    office_hours: str = "11:00-21:00"
    office_timezones: Dict[str, str] = {"zh": "Asia/Shanghai", "vi": "Asia/Ho_Chi_Minh"}
    # Days operators are off, per language's country (YYYY-MM-DD). The helpline closes for the
    # Chinese New Year holiday: the default lists the 2027 one (verify each year).
    office_closed_days: Dict[str, List[str]] = {
        "zh": ["2027-02-05", "2027-02-06", "2027-02-07", "2027-02-08", "2027-02-09", "2027-02-10", "2027-02-11"],
        "vi": [],
    }
    minutes_per_waiting_case: int = 5  # the wait a worker is told: this many minutes per case ahead, at least 5
    still_waiting_interval: float = 15 * 60.0  # at most one "still waiting" note per this many seconds
    wechat_window_hours: float = 48.0  # customer-service messages: within 48 h of the worker's last message
    zalo_window_hours: float = 7 * 24.0  # Zalo refuses OA messages 7 days after the worker's last one
    oncall_webhook_url: Optional[str] = None  # urgent cases are POSTed here (no message text, no platform id)
    cookie_secure: bool = True
    redis_url: Optional[str] = None  # scale-out: console events across processes

    class Config:
        env_prefix = "HELPLINE_"
        env_file = ".env"

    @property
    def reply_windows(self) -> Dict[str, Optional[float]]:
        """Hours after the worker's last message during which the channel lets us write (None: no limit)."""
        return {"wechat": self.wechat_window_hours, "zalo": self.zalo_window_hours, "telegram": None, "web": None}

    @property
    def channel_languages(self) -> Dict[str, str]:
        """The language to answer a new conversation in before its worker has written any."""
        return {"wechat": "zh", "zalo": "vi", "telegram": self.default_language, "web": self.default_language}

    def with_secret(self, var: Path) -> "Settings":
        """These settings with a secret key: the configured one, or one made once and kept in `var`."""
        if self.secret_key:
            return self
        import secrets

        var.mkdir(parents=True, exist_ok=True)
        path = var / "secret_key"
        if not path.exists():
            path.write_text(secrets.token_hex(32), encoding="utf-8")
            path.chmod(0o600)
        return self.copy(update={"secret_key": path.read_text(encoding="utf-8").strip()})
