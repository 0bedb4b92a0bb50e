"""`POST /api/v1/submissions`: agencies submit envelopes to the ingest topic of their kind."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, HTTPException, Request, status
from pydantic import BaseModel

from contracts import ContractValidationError, Envelope, FieldError, parse_envelope
from hub.api.deps import CurrentCaller, HubDep
from hub.intake import publish_envelopes
from hub.observability import get_logger

__all__ = ["router"]

log = get_logger(__name__)

router = APIRouter(prefix="/api/v1", tags=["submissions"])

MAX_BODY_BYTES = 5 * 1024 * 1024
MAX_ENVELOPES = 1000


class SubmissionAccepted(BaseModel):
    """The envelopes were written to the ingest topic; processing continues asynchronously."""

    accepted: int
    event_ids: list[str]


def _unprocessable(errors: list[FieldError]) -> HTTPException:
    return HTTPException(
        status.HTTP_422_UNPROCESSABLE_CONTENT,
        detail=[{"loc": e.loc, "msg": e.msg, "type": e.type} for e in errors],
    )


@router.post(
    "/submissions",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=SubmissionAccepted,
    summary="Submit one envelope (a JSON object) or several (a JSON array) from your agency.",
    responses={
        401: {"description": "No valid bearer token."},
        403: {"description": "The envelope is for another agency than the caller's."},
        413: {"description": "Body too large or too many envelopes."},
        415: {"description": "Body is not application/json."},
        422: {"description": "Every field error, with its location; nothing was published."},
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "oneOf": [
                            {"$ref": "#/components/schemas/Envelope"},
                            {"type": "array", "items": {"$ref": "#/components/schemas/Envelope"}},
                        ]
                    }
                }
            },
        }
    },
)
async def submit(request: Request, hub: HubDep, caller: CurrentCaller) -> SubmissionAccepted:
    """Validate every envelope; publish all of them only if all are valid."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/json":
        raise HTTPException(status.HTTP_415_UNSUPPORTED_MEDIA_TYPE, "body must be application/json")
    body = await request.body()
    if len(body) > MAX_BODY_BYTES:
        raise HTTPException(
            status.HTTP_413_CONTENT_TOO_LARGE, f"body exceeds {MAX_BODY_BYTES} bytes"
        )
    try:
        raw: Any = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise _unprocessable(
            [FieldError("body", "body is not valid JSON", "json_invalid")]
        ) from exc
    items = raw if isinstance(raw, list) else [raw]
    if not items:
        raise _unprocessable([FieldError("body", "no envelopes in the submission", "too_short")])
    if len(items) > MAX_ENVELOPES:
        raise HTTPException(
            status.HTTP_413_CONTENT_TOO_LARGE, f"at most {MAX_ENVELOPES} envelopes per submission"
        )
    envelopes: list[Envelope] = []
    errors: list[FieldError] = []
    for index, item in enumerate(items):
        prefix = f"{index}." if isinstance(raw, list) else ""
        try:
            envelope = parse_envelope(item)
        except ContractValidationError as exc:
            errors.extend(FieldError(f"{prefix}{e.loc}", e.msg, e.type) for e in exc.errors)
            continue
        if envelope.agency_id != caller.agency.id:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                f"{prefix}agency_id: an agency may only submit its own records "
                f"(token is for {caller.agency.id})",
            )
        if envelope.agency_kind != caller.agency.kind:
            errors.append(
                FieldError(
                    f"{prefix}agency_kind",
                    f"agency {caller.agency.id} is registered as {caller.agency.kind.value}",
                    "agency_kind_mismatch",
                )
            )
            continue
        envelopes.append(envelope)
    ids = [e.id for e in envelopes]
    if len(set(ids)) != len(ids):
        errors.append(FieldError("body", "the same event id appears twice", "duplicate_id"))
    if errors:
        hub.metrics.submissions.labels("rejected").inc()
        log.info(
            "submission.rejected",
            agency_id=caller.agency.id,
            errors=len(errors),
            fields=[e.loc for e in errors][:20],
        )
        raise _unprocessable(errors)
    await publish_envelopes(hub.streams, hub.topics, caller.agency.kind, envelopes, raw=items)
    hub.metrics.submissions.labels("accepted").inc(len(envelopes))
    log.info("submission.accepted", agency_id=caller.agency.id, count=len(envelopes))
    return SubmissionAccepted(accepted=len(envelopes), event_ids=ids)
