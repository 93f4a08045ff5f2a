"""HTTP routes of the sessions service (mounted under /api/v1), by subject: trees, then sessions."""

from sessions.api import sessions, trees

routers = [trees.router, sessions.router]
