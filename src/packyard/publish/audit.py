"""The audit trail: every upload, yank, deletion, ownership change and refusal.

Each event is a row in `audit_events`, written in the caller's transaction (so a
change and its record commit or roll back together), and a JSON line on the
`packyard.audit` logger, which the telemetry set-up sends to the event log.
A refusal is recorded in a transaction of its own, since the refused change
itself is rolled back.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from sqlalchemy.orm import Session

from packyard.db.audit import AuditEvent

AUDIT_LOGGER = logging.getLogger("packyard.audit")

Outcome = Literal["ok", "refused"]


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a request came from: the client address and its user agent."""

    client_ip: str | None = None
    user_agent: str | None = None


COMMAND_LINE = Origin(client_ip=None, user_agent="packyard-cli")


def record(
    session: Session,
    *,
    actor: str,
    action: str,
    outcome: Outcome = "ok",
    origin: Origin = COMMAND_LINE,
    project: str | None = None,
    version: str | None = None,
    filename: str | None = None,
    **detail: object,
) -> AuditEvent:
    """Add one event to `session` (not committed here) and log it as a JSON line.

    `action` is a short verb phrase such as `upload`, `yank`, `delete`,
    `owner-add`; `detail` holds anything else worth keeping (a reason, a message).
    """
    event = AuditEvent(
        at=datetime.now(UTC),
        actor=actor,
        action=action,
        outcome=outcome,
        project_name=project,
        version=version,
        filename=filename,
        client_ip=origin.client_ip,
        user_agent=origin.user_agent,
        detail=json.dumps(detail, default=str, sort_keys=True),
    )
    session.add(event)
    AUDIT_LOGGER.info(
        json.dumps(
            {
                "event": "audit",
                "at": event.at.isoformat().replace("+00:00", "Z"),
                "actor": actor,
                "action": action,
                "outcome": outcome,
                "project": project,
                "version": version,
                "filename": filename,
                "client_ip": origin.client_ip,
                "user_agent": origin.user_agent,
                **detail,
            },
            default=str,
            sort_keys=True,
        )
    )
    return event
