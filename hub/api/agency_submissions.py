"""`POST /api/v1/agencies/{agency_id}/submissions`: an agency's native file, through its adapter."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, HTTPException, Request, status
from pydantic import BaseModel

from hub.api.deps import CurrentCaller, HubDep
from hub.intake import UnreadableFile, parse_native, publish_envelopes
from hub.observability import get_logger

__all__ = ["router"]

log = get_logger(__name__)

router = APIRouter(prefix="/api/v1/agencies", tags=["submissions"])

MAX_FILE_BYTES = 20 * 1024 * 1024


class RecordProblem(BaseModel):
    """One record the adapter dropped (error) or kept with a note (warning)."""

    record: str
    field: str
    reason: str
    severity: str


class NativeSubmissionAccepted(BaseModel):
    """What was sent to ingest, and every problem found per record."""

    accepted: int
    event_ids: list[str]
    rejected: int
    errors: list[RecordProblem]


@router.post(
    "/{agency_id}/submissions",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=NativeSubmissionAccepted,
    summary="Submit a native file (FHIR JSON, CTF or CIN census XML, CSV) from your agency.",
    responses={
        403: {"description": "The path names another agency than the caller's."},
        404: {"description": "No such agency."},
        413: {"description": "File too large."},
        422: {"description": "The file cannot be read at all; nothing was sent."},
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                media: {"schema": {"type": "string", "format": "binary"}}
                for media in (
                    "application/fhir+json",
                    "application/json",
                    "application/xml",
                    "text/xml",
                    "text/csv",
                )
            },
        }
    },
)
async def submit_native(
    agency_id: str, request: Request, hub: HubDep, caller: CurrentCaller
) -> NativeSubmissionAccepted:
    """Parse the file with the agency's adapter; send the good records, list the bad ones."""
    if agency_id not in hub.registry:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such agency")
    if agency_id != caller.agency.id:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            f"an agency may only submit its own records (token is for {caller.agency.id})",
        )
    body = await request.body()
    if len(body) > MAX_FILE_BYTES:
        raise HTTPException(
            status.HTTP_413_CONTENT_TOO_LARGE, f"file exceeds {MAX_FILE_BYTES} bytes"
        )
    agency = hub.registry.get(agency_id)
    content_type = request.headers.get("content-type", "")
    try:
        result = parse_native(agency, body, content_type, now=datetime.now(UTC))
    except UnreadableFile as exc:
        log.info("native_submission.unreadable", agency_id=agency_id)
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            detail=[{"loc": "body", "msg": str(exc), "type": "unreadable_file"}],
        ) from exc
    ids = await publish_envelopes(hub.streams, hub.topics, agency.kind, result.envelopes)
    hub.metrics.submissions.labels("accepted").inc(len(ids))
    if result.rejected:
        hub.metrics.submissions.labels("rejected").inc(len(result.rejected))
    log.info(
        "native_submission.accepted",
        agency_id=agency_id,
        accepted=len(ids),
        rejected=len(result.rejected),
        warnings=len(result.warnings),
    )
    return NativeSubmissionAccepted(
        accepted=len(ids),
        event_ids=ids,
        rejected=len(result.rejected),
        errors=[
            RecordProblem(record=e.record, field=e.field, reason=e.reason, severity=e.severity)
            for e in result.errors
        ],
    )
