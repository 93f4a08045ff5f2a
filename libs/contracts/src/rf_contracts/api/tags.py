"""What each tag of the public API groups, shown with the tag in the OpenAPI document (one place for every app)."""

from typing import Final

TAG_DESCRIPTIONS: Final[dict[str, str]] = {
    "auth": "Sign up, sign in and out, tokens and one's own password. Answered by the gateway itself.",
    "users": "The account's users, managed by its admins: add, change role, deactivate, reset a password.",
    "trees": "Decision trees: versioned graphs of questions, actions, solutions and escalations that sessions follow.",
    "sessions": "Troubleshooting sessions: a walk through one tree version, with its journal of steps and outcome.",
    "handoffs": "Escalations of a session to a human: the queue and its live stream, claiming (one claimer wins), "
    "releasing, resolving, and the stale-claim policy.",
    "analytics": "Metrics computed from the event stream: escalation time-to-first-action, its breakdowns, "
    "drill-down, daily series and business hours.",
    "api-keys": "Credentials for machine clients, managed by the account's admins: created with a role and shown "
    "once, listed, revoked. `Authorization: Bearer rf_...` works wherever an access token does.",
}
