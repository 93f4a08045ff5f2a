"""What each tag of the public API groups, shown with the tag in the OpenAPI document (one place for every app)."""

from typing import Final

TAG_DESCRIPTIONS: Final[dict[str, str]] = {
    "auth": "Sign up, sign in and out, tokens and one's own password. Answered by the gateway itself.",
    "users": "The account's users, managed by its admins: add, change role, deactivate, reset a password.",
    "trees": "Decision trees: versioned graphs of questions, actions, solutions and escalations that sessions follow.",
    "sessions": "Troubleshooting sessions: a walk through one tree version, with its journal of steps and outcome.",
    "handoffs": "Escalations of a session to a human: the queue, claiming (one claimer wins), releasing, resolving.",
    "analytics": "Metrics computed from the event stream, such as escalation time-to-first-action.",
}
