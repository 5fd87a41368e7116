"""Watching a running keeper: telemetry the engine reports to, Prometheus metrics and /healthz
(server), webhook alerts, the [monitor] config."""
