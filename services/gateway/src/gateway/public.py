"""The forwarded part of the public API, declared route by route with the owning services' own models.

Each route states its method, path, parameters, body model, role and answers, so that /openapi.json describes
the whole API; the body is the same pydantic model the service validates with. Underneath, every route does
the same thing: authenticate and check the role here, then forward the request untouched to the service that
owns it (which checks again) and return its answer untouched.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Body, Depends, Query, Request, Response, status
from fastapi.responses import StreamingResponse

from gateway.proxy import Upstreams
from rf_contracts.api import analytics as analytics_api
from rf_contracts.api import handoffs as handoffs_api
from rf_contracts.api import sessions as sessions_api
from rf_contracts.api import trees as trees_api
from rf_contracts.api.business_hours import BusinessHoursRead, BusinessHoursWrite, Clock
from rf_contracts.api.errors import ErrorResponse
from rfkit import sse
from rfkit.auth import Admin, CurrentPrincipal, Engineer, Principal
from rfkit.etags import IfMatch, if_match
from rfkit.problems import problem

_TEXT = {
    401: "no, invalid, expired or revoked token",
    400: "a request that cannot be forwarded as it is",
    403: "role too low",
    404: "not found, or belongs to another account",
    409: "state conflict (the detail says which)",
    412: "If-Match does not match the current ETag: the resource changed since it was read (code precondition_failed)",
    413: "request body too large",
    502: "the owning service failed",
    503: "the owning service is unavailable",
    504: "the owning service did not answer in time",
}


def _answers(*codes: int, extra: dict[int | str, dict[str, Any]] | None = None) -> dict[int | str, dict[str, Any]]:
    """The documented answers of a forwarded route besides its success: its errors, and the gateway's own."""
    answers: dict[int | str, dict[str, Any]] = {
        code: {"description": _TEXT[code], "model": ErrorResponse} for code in (400, 401, *codes, 413, 502, 503, 504)
    }
    # Documented on every route, so that FastAPI's own 422 (a list only) does not stand for it.
    answers[422] = {"description": "invalid input (each problem located), or input the current state refuses",
                    "model": ErrorResponse}
    answers.update(extra or {})
    return answers


async def _forward(request: Request, service: str) -> Response:
    upstreams: Upstreams | None = request.app.state.runtime.upstreams
    if upstreams is None:  # only between app construction and start
        return problem(503, "the gateway is starting", "service_unavailable")
    return await upstreams.forward(request, service)


async def _stream(request: Request, service: str, principal: Principal) -> Response:
    """Relay an event stream; the gateway ends it when the caller's token expires, whatever the service does."""
    upstreams: Upstreams | None = request.app.state.runtime.upstreams
    if upstreams is None:
        return Response('{"detail":"the gateway is starting"}', status_code=503, media_type="application/json")
    return await upstreams.stream(request, service, until=principal.expires_at)


Limit = Annotated[int, Query(ge=1, le=200, description="page size")]
# Bounded so that no value can overflow a database integer downstream.
Offset = Annotated[int, Query(ge=0, le=2**31 - 1)]
CategoryFilter = Annotated[trees_api.Category | None, Query(description="only trees of this category")]
# Checked again by the owning service, under its row lock; declared here for the document and early 412s.
IfMatchHeader = Annotated[IfMatch | None, Depends(if_match)]
_ETAG = {"ETag": {"description": "strong entity tag of this version of the resource; send it back as If-Match",
                  "schema": {"type": "string"}}}
_TREE_ETAG = {"description": "the tree", "headers": _ETAG}
_SESSION_ETAG = {"description": "the session", "headers": _ETAG}
_INVALID_TREE = {
    "description": "invalid input, or a tree that is not a valid graph (each violation names node and rule)",
    "model": ErrorResponse,
}
# Ids are UUIDs in the routes themselves: a path with anything else in an id's place names nothing (404), and
# /trees/categories is then no tree id, so PUT on it is a 405 (a method the path does not have).
TREE = "/{tree_id:uuid}"
SESSION = "/{session_id:uuid}"
HANDOFF = "/{handoff_id:uuid}"

# ---- decision trees (sessions service) ---------------------------------------------------------------

trees = APIRouter(prefix="/trees", tags=["trees"])


@trees.get("", response_model=trees_api.TreePage, responses=_answers(403), summary="List the account's trees")
async def list_trees(
    request: Request, _: CurrentPrincipal, category: CategoryFilter = None, limit: Limit = 50, offset: Offset = 0
) -> Response:
    return await _forward(request, "sessions")


@trees.get("/categories", response_model=list[trees_api.TreeCategory], responses=_answers(403),
           summary="Categories with their tree counts")
async def tree_categories(request: Request, _: CurrentPrincipal) -> Response:
    return await _forward(request, "sessions")


@trees.get("/search", response_model=trees_api.TreeSearchPage, responses=_answers(403),
           summary="Ranked full-text search")
async def search_trees(
    request: Request,
    _: CurrentPrincipal,
    q: Annotated[str, Query(min_length=1, max_length=500, description='words, "a phrase", or, -word')],
    category: CategoryFilter = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Response:
    return await _forward(request, "sessions")


@trees.get(TREE, response_model=trees_api.TreeRead, responses=_answers(403, 404, extra={200: _TREE_ETAG}),
           summary="A tree with its nodes (latest or ?version=N)")
async def get_tree(
    request: Request,
    _: CurrentPrincipal,
    tree_id: UUID,
    version: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
) -> Response:
    return await _forward(request, "sessions")


@trees.post("", response_model=trees_api.TreeRead, status_code=status.HTTP_201_CREATED,
            responses=_answers(403, extra={201: _TREE_ETAG, 422: _INVALID_TREE}), summary="Create a tree (engineer+)")
async def create_tree(request: Request, _: Engineer, body: trees_api.TreeCreate) -> Response:
    return await _forward(request, "sessions")


@trees.put(TREE, response_model=trees_api.TreeRead,
           responses=_answers(403, 404, 412, extra={200: _TREE_ETAG, 422: _INVALID_TREE}),
           summary="Replace a tree: a new version (engineer+); 412 if If-Match is stale")
async def replace_tree(
    request: Request, _: Engineer, tree_id: UUID, body: trees_api.TreeReplace, __: IfMatchHeader
) -> Response:
    return await _forward(request, "sessions")


@trees.delete(TREE, status_code=status.HTTP_204_NO_CONTENT, response_class=Response,
              responses=_answers(403, 404), summary="Soft delete (admin)")
async def delete_tree(request: Request, _: Admin, tree_id: UUID) -> Response:
    return await _forward(request, "sessions")


# ---- sessions and steps (sessions service) -----------------------------------------------------------

sessions = APIRouter(prefix="/sessions", tags=["sessions"])


@sessions.get("", response_model=sessions_api.SessionPage, responses=_answers(403),
              summary="The caller's sessions (engineer+: ?scope=account)")
async def list_sessions(
    request: Request,
    _: CurrentPrincipal,
    scope: Literal["mine", "account"] = "mine",
    status_: Annotated[sessions_api.SessionStatus | None, Query(alias="status")] = None,
    tree_id: UUID | None = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Response:
    return await _forward(request, "sessions")


@sessions.get(SESSION, response_model=sessions_api.SessionRead,
              responses=_answers(403, 404, extra={200: _SESSION_ETAG}),
              summary="A session with its tree version, current node and status")
async def get_session(request: Request, _: CurrentPrincipal, session_id: UUID) -> Response:
    return await _forward(request, "sessions")


@sessions.post("", response_model=sessions_api.SessionRead, status_code=status.HTTP_201_CREATED,
               responses=_answers(403, 404, extra={201: _SESSION_ETAG}),
               summary="Start a session at a tree's root (engineer+)")
async def start_session(request: Request, _: Engineer, body: sessions_api.SessionCreate) -> Response:
    return await _forward(request, "sessions")


@sessions.put(SESSION, response_model=sessions_api.SessionRead,
              responses=_answers(403, 404, 409, 412, extra={200: _SESSION_ETAG}),
              summary="Update title/notes, or answer the current node (engineer+); 412 if If-Match is stale")
async def update_session(
    request: Request, _: Engineer, session_id: UUID, body: sessions_api.SessionUpdate, __: IfMatchHeader
) -> Response:
    return await _forward(request, "sessions")


@sessions.get(SESSION + "/steps", response_model=sessions_api.StepPage, responses=_answers(403, 404),
              summary="The journal, oldest first")
async def list_steps(
    request: Request, _: CurrentPrincipal, session_id: UUID, limit: Limit = 50, offset: Offset = 0
) -> Response:
    return await _forward(request, "sessions")


@sessions.post(SESSION + "/steps", response_model=sessions_api.StepRead, status_code=status.HTTP_201_CREATED,
               responses=_answers(403, 404, 409), summary="Add a step to the journal (engineer+)")
async def add_step(request: Request, _: Engineer, session_id: UUID, body: sessions_api.StepCreate) -> Response:
    return await _forward(request, "sessions")


@sessions.post(SESSION + "/complete", response_model=sessions_api.SessionRead,
               responses=_answers(403, 404, 409, extra={200: _SESSION_ETAG}),
               summary="Complete with an outcome (engineer+); 409 if already completed")
async def complete_session(
    request: Request, _: Engineer, session_id: UUID, body: sessions_api.SessionComplete
) -> Response:
    return await _forward(request, "sessions")


@sessions.post(
    SESSION + "/export",
    response_model=sessions_api.SessionExport,
    responses=_answers(403, 404, extra={200: {"content": {"text/markdown": {}},
                                            "description": "the session as a document (JSON or Markdown)"}}),
    summary="Export the session with its steps as Markdown or JSON",
)
async def export_session(
    request: Request, _: CurrentPrincipal, session_id: UUID, format: sessions_api.ExportFormat = "markdown"
) -> Response:
    return await _forward(request, "sessions")


# ---- handoffs (handoffs service) ---------------------------------------------------------------------

handoffs = APIRouter(prefix="/handoffs", tags=["handoffs"])


@handoffs.post("", response_model=handoffs_api.HandoffRead, status_code=status.HTTP_201_CREATED,
               responses=_answers(403, 404, 409), summary="Escalate a session (engineer+)")
async def escalate(request: Request, _: Engineer, body: handoffs_api.HandoffCreate) -> Response:
    return await _forward(request, "handoffs")


@handoffs.get("", response_model=handoffs_api.HandoffPage, responses=_answers(403),
              summary="The queue, most urgent first, then oldest first")
async def list_handoffs(
    request: Request,
    _: CurrentPrincipal,
    status: handoffs_api.StatusFilter | None = None,
    mine: Annotated[bool, Query(description="Only handoffs claimed by the caller")] = False,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Offset = 0,
) -> Response:
    return await _forward(request, "handoffs")


@handoffs.get("/queue/stream", response_class=StreamingResponse, responses={**_answers(403), **sse.OK},
              summary="The live queue: Server-Sent Events of the account's handoff changes",
              description=sse.DESCRIPTION)
async def queue_stream(
    request: Request,
    principal: CurrentPrincipal,
    last_event_id: sse.LastEventIdQuery = None,
    last_event_id_header: sse.LastEventIdHeader = None,
) -> Response:
    sse.check_unexpired(principal.expires_at)
    sse.resume_after(last_event_id_header, last_event_id)  # a malformed id is refused here already (422)
    return await _stream(request, "handoffs", principal)


# Declared before /handoffs/{handoff_id} so that "stats" is not taken for an id.
@handoffs.get("/stats", response_model=handoffs_api.HandoffStats, responses=_answers(403),
              summary="The queue stat card")
async def handoff_stats(request: Request, _: CurrentPrincipal) -> Response:
    return await _forward(request, "handoffs")


# Declared before /handoffs/{handoff_id} so that "policy" is not taken for an id.
@handoffs.get("/policy", response_model=handoffs_api.StalePolicy, responses=_answers(403),
              summary="The account's stale-claim policy (engineer+)")
async def get_stale_policy(request: Request, _: Engineer) -> Response:
    return await _forward(request, "handoffs")


@handoffs.put("/policy", response_model=handoffs_api.StalePolicy, responses=_answers(403),
              summary="Replace the account's stale-claim policy (admin); it applies to running claims")
async def put_stale_policy(request: Request, _: Admin, body: handoffs_api.StalePolicy) -> Response:
    return await _forward(request, "handoffs")


@handoffs.get(HANDOFF, response_model=handoffs_api.HandoffDetail, responses=_answers(403, 404),
              summary="One handoff with its history")
async def get_handoff(request: Request, _: CurrentPrincipal, handoff_id: UUID) -> Response:
    return await _forward(request, "handoffs")


@handoffs.post(HANDOFF + "/claim", response_model=handoffs_api.HandoffRead, responses=_answers(403, 404, 409),
               summary="Claim it (engineer+); one concurrent claimer wins, the others get 409")
async def claim_handoff(request: Request, _: Engineer, handoff_id: UUID) -> Response:
    return await _forward(request, "handoffs")


@handoffs.post(HANDOFF + "/release", response_model=handoffs_api.HandoffRead, responses=_answers(403, 404, 409),
               summary="Back to open (the claimer or an admin)")
async def release_handoff(request: Request, _: Engineer, handoff_id: UUID) -> Response:
    return await _forward(request, "handoffs")


@handoffs.post(HANDOFF + "/resolve", response_model=handoffs_api.HandoffRead, responses=_answers(403, 404, 409),
               summary="Resolve it (the claimer or an admin)")
async def resolve_handoff(
    request: Request, _: Engineer, handoff_id: UUID, body: Annotated[handoffs_api.HandoffResolve | None, Body()] = None
) -> Response:
    return await _forward(request, "handoffs")


# ---- analytics (analytics service) -------------------------------------------------------------------

analytics = APIRouter(prefix="/analytics", tags=["analytics"])


AnalyticsPeriod = Annotated[analytics_api.Period, Query(description="the window: the last 7, 30 or 90 days up to now")]
AnalyticsClock = Annotated[
    Clock, Query(description="wall: elapsed seconds; business: only the open seconds of the account's business hours")
]


@analytics.get("/flowpilot/escalations", response_model=analytics_api.EscalationMetricRead,
               responses=_answers(403, 409),
               summary="Escalation time-to-first-action of the caller's account (engineer+)")
async def escalations(
    request: Request, _: Engineer, period: AnalyticsPeriod, clock: AnalyticsClock = "wall"
) -> Response:
    return await _forward(request, "analytics")


@analytics.get("/flowpilot/escalations/breakdown", response_model=analytics_api.EscalationBreakdownRead,
               responses=_answers(403, 409),
               summary="The escalation metric per tree, category, priority or claimer (engineer+)")
async def escalation_breakdown(
    request: Request,
    _: Engineer,
    period: AnalyticsPeriod,
    by: Annotated[
        analytics_api.BreakdownBy,
        Query(description="group by the session's tree, its category, the priority or claimer"),
    ],
    clock: AnalyticsClock = "wall",
) -> Response:
    return await _forward(request, "analytics")


@analytics.get("/flowpilot/escalations/handoffs", response_model=analytics_api.EscalationHandoffPage,
               responses=_answers(403, 409, extra={200: {
                   "content": {"text/csv": {"schema": {"type": "string"}, "example": analytics_api.CSV_EXAMPLE}},
                   "description": "one page as JSON; with format=csv or Accept: text/csv every row as an RFC 4180 "
                                  "attachment"}}),
               summary="The handoffs the escalation metric counts, slowest or newest first; CSV (engineer+)")
async def escalation_handoffs(
    request: Request,
    _: Engineer,
    period: AnalyticsPeriod,
    order: Annotated[
        analytics_api.DrillDownOrder,
        Query(description="slowest (delta, else waiting time) or newest claim first"),
    ] = "slowest",
    limit: Annotated[int, Query(ge=1, le=500, description="page size, 1 to 500")] = 50,
    offset: Offset = 0,
    format: Annotated[
        analytics_api.DrillDownFormat | None, Query(description="csv: every row as a CSV attachment")
    ] = None,
    clock: AnalyticsClock = "wall",
) -> Response:
    return await _forward(request, "analytics")


@analytics.get("/flowpilot/escalations/series", response_model=analytics_api.EscalationSeriesRead,
               responses=_answers(403, 409),
               summary="The escalation metric per day in a time zone, and a histogram of deltas (engineer+)")
async def escalation_series(
    request: Request,
    _: Engineer,
    period: AnalyticsPeriod,
    tz: Annotated[str, Query(min_length=1, max_length=64, description="IANA time zone name, e.g. Europe/Paris")]
    = "UTC",
    clock: AnalyticsClock = "wall",
) -> Response:
    return await _forward(request, "analytics")


@analytics.get("/business-hours", response_model=BusinessHoursRead, responses=_answers(403, 404),
               summary="The account's business hours, behind clock=business (engineer+); 404 when none is set")
async def get_business_hours(request: Request, _: Engineer) -> Response:
    return await _forward(request, "analytics")


@analytics.put("/business-hours", response_model=BusinessHoursRead, responses=_answers(403),
               summary="Replace the account's business hours (admin); the next clock=business answer uses them")
async def put_business_hours(request: Request, _: Admin, body: BusinessHoursWrite) -> Response:
    return await _forward(request, "analytics")


def routers() -> list[APIRouter]:
    return [trees, sessions, handoffs, analytics]
