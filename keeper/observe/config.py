"""The [monitor] table: health and metrics server, heartbeat, alerts."""
from __future__ import annotations

from decimal import Decimal

from pydantic import Field, field_validator

from keeper.config_types import COMMENTED, Strict


def split_listen(v: str) -> tuple[str, int]:
    """``host:port`` -> (host, port); a bad value is a ValueError naming what is wrong."""
    host, sep, port = v.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"must be host:port (e.g. 127.0.0.1:9464), got {v!r}")
    return host.strip("[]"), int(port)


class MonitorConfig(Strict):
    """Health endpoint, Prometheus metrics, heartbeat log lines and alerts to a webhook."""
    enabled: bool = Field(
        default=False,
        description="Serve /healthz and /metrics (Prometheus text format) on `listen` while `keeper run` runs.")
    listen: str = Field(
        default="127.0.0.1:9464",
        description="host:port of the health and metrics server; loopback by default (port 0: any free port).")
    stale_after_seconds: float = Field(
        default=60.0, gt=0,
        description="/healthz answers 503 (and a 'head stale' alert goes out) when no new block was processed "
                    "for this long.")
    heartbeat_blocks: int = Field(
        default=100, ge=1,
        description="Log a heartbeat line (positions tracked, candidates, wallet ETH, head lag) every this many "
                    "blocks processed.")
    min_wallet_eth: Decimal = Field(
        default=Decimal("0.05"), ge=0,
        description="Alert once when the wallet's native balance falls below this (in ETH), again only after it "
                    "has recovered.")
    step_failures_alert: int = Field(
        default=5, ge=1, description="Alert once after this many consecutive failed block steps.")
    webhook_url: str | None = Field(
        default=None,
        description='Optional: alerts are POSTed here as JSON {"text": ...} (Slack, Discord via /slack, a '
                    "Telegram relay); better set from the environment (KEEPER_MONITOR__WEBHOOK_URL).",
        examples=["https://hooks.slack.com/services/..."], json_schema_extra=COMMENTED)
    webhook_timeout_seconds: float = Field(default=5.0, gt=0,
                                           description="Per webhook POST; a failed POST is logged, never retried.")

    @field_validator("listen")
    @classmethod
    def _listen(cls, v: str) -> str:
        split_listen(v)
        return v

    @field_validator("webhook_url")
    @classmethod
    def _webhook(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return v
