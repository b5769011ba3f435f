"""The reason an admin must give for a decision that weakens a safeguard (an
accepted advisory risk, a cool-down exemption): kept in the row and the audit
event, for whoever asks later why it was allowed."""

from __future__ import annotations

from packyard.errors import InvalidRequest

MAX_REASON_LENGTH = 2000


def required_reason(reason: str, ask: str) -> str:
    """`reason` on one line, its runs of white space made single spaces.

    Raises:
        InvalidRequest: nothing but white space (the message is `ask`, say
            "Say why the risk is accepted: a reason is required."), or longer
            than `MAX_REASON_LENGTH`.
    """
    text = " ".join(reason.split())
    if not text:
        raise InvalidRequest(ask)
    if len(text) > MAX_REASON_LENGTH:
        raise InvalidRequest(f"A reason is at most {MAX_REASON_LENGTH} characters.")
    return text
