"""The one operationId rule: `<tag>_<action>` from any route, so routes added later get clean ids unasked."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI

from rfkit.web import operation_id


def _ids(router: APIRouter) -> dict[str, str]:
    app = FastAPI(generate_unique_id_function=operation_id)
    app.include_router(router, prefix="/api/v1")
    return {f"{method.upper()} {path}": op["operationId"]
            for path, ops in app.openapi()["paths"].items() for method, op in ops.items()}


def test_the_words_that_repeat_the_tag_are_dropped_singular_or_plural() -> None:
    router = APIRouter(prefix="/api-keys", tags=["api-keys"])

    @router.post("")
    async def create_api_key() -> None: ...

    @router.get("")
    async def list_api_keys() -> None: ...

    @router.delete("/{key_id}")
    async def revoke_api_key(key_id: str) -> None: ...

    @router.get("/{key_id}/usage", name="usage")
    async def anything_else(key_id: str) -> None: ...

    assert _ids(router) == {
        "POST /api/v1/api-keys": "api_keys_create",
        "GET /api/v1/api-keys": "api_keys_list",
        "DELETE /api/v1/api-keys/{key_id}": "api_keys_revoke",
        "GET /api/v1/api-keys/{key_id}/usage": "api_keys_usage",  # the decorator's name= wins over the function's
    }


def test_a_name_that_is_only_the_tag_is_kept_and_an_untagged_route_keeps_its_name() -> None:
    router = APIRouter()

    @router.get("/sessions", tags=["sessions"])
    async def sessions() -> None: ...

    @router.get("/health")
    async def health() -> None: ...

    assert _ids(router) == {"GET /api/v1/sessions": "sessions_sessions", "GET /api/v1/health": "health"}
