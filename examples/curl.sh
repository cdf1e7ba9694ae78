#!/usr/bin/env bash
# Calling a running `host serve` by hand (see examples/host.toml; tokens from $AM_TOKEN and $RUNBOOK_API_TOKEN).
set -euo pipefail
host=${HOST:-http://127.0.0.1:9095}

# A generic webhook: any JSON object becomes the playbook's parameters.
curl -sS -X POST "$host/hooks/run/bot-down" \
    -H "Authorization: Bearer $AM_TOKEN" -H "Idempotency-Key: deploy-1234" \
    -d '{"container": "telegram-bot", "health-url": "http://127.0.0.1:8081/health"}'

# An Alertmanager payload, as Alertmanager itself would send it.
curl -sS -X POST "$host/hooks/alertmanager" -H "Authorization: Bearer $AM_TOKEN" -d '{
  "version": "4", "status": "firing",
  "alerts": [{"status": "firing", "fingerprint": "5f3c1a2b9d8e7f60",
              "labels": {"alertname": "BotDown", "container": "telegram-bot", "severity": "critical"},
              "annotations": {"summary": "bot is not answering"},
              "startsAt": "2026-11-25T10:00:00Z"}]}'

# The read views need [webhooks.api] auth (here a bearer token from $RUNBOOK_API_TOKEN).
curl -sS "$host/runs?limit=5" -H "Authorization: Bearer $RUNBOOK_API_TOKEN"
curl -sS "$host/metrics" | grep '^runbook_runs_total'
