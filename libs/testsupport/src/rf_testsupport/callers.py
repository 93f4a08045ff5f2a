"""Callers in tests: users whose tokens are signed with the test key, as the gateway would sign them."""

from __future__ import annotations

import uuid

from rfkit.auth import issue_access_token


class Caller:
    """A test user: ids, role, and the Authorization header of a token signed with the test key."""

    def __init__(self, private_pem: str, *, role: str = "engineer", account_id: uuid.UUID | None = None,
                 user_id: uuid.UUID | None = None, issuer: str = "resolutionflow-gateway",
                 audience: str = "resolutionflow") -> None:
        self.role = role
        self.account_id = account_id or uuid.uuid4()
        self.user_id = user_id or uuid.uuid4()
        self.token = issue_access_token(
            private_pem, user_id=self.user_id, account_id=self.account_id, role=role,  # type: ignore[arg-type]
            issuer=issuer, audience=audience,
        )
        self.headers = {"Authorization": f"Bearer {self.token}"}

    def colleague(self, private_pem: str, role: str = "engineer") -> Caller:
        """Another user of the same account."""
        return Caller(private_pem, role=role, account_id=self.account_id)
