"""``POST /v1/events``: batches of up to ``max_batch_events``, answered per event."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool

from attune.api.deps import IngestDep, SettingsDep
from attune.errors import PayloadTooLargeError
from attune.ingest.schemas import EventBatchIn, EventBatchOut, EventResult

router = APIRouter(tags=["events"])


@router.post(
    "/v1/events",
    response_model=EventBatchOut,
    summary="Record a batch of events",
    responses={
        413: {"description": "Body or batch too large"},
        422: {"description": "Malformed body"},
    },
)
async def post_events(
    batch: EventBatchIn, ingest: IngestDep, settings: SettingsDep
) -> EventBatchOut:
    """Validate each event on its own: one bad event does not reject the others.

    Each answer is ``accepted`` (stored durably before this response is sent),
    ``duplicate`` (its ``event_id`` was seen before; nothing changes), ``rejected``
    (with the field path and reason) or ``dropped`` (not stored: the person has not
    consented to tracking; ``anonymized: true`` instead when such events are configured
    to be stored without the person's ids). ``context.consent`` (``{"tracking": …,
    "personalization": …}``) updates the person's consent before the event is judged.
    Each event is an object with the fields of ``EventIn``.
    """
    if len(batch.events) > settings.max_batch_events:
        raise PayloadTooLargeError(
            f"a batch holds at most {settings.max_batch_events} events; got {len(batch.events)}"
        )
    outcome = await run_in_threadpool(ingest.ingest_events, batch.events)
    results = [
        EventResult(
            index=o.index,
            event_id=o.event_id,
            status=o.status,
            errors=o.errors,
            reason=o.reason,
            anonymized=o.anonymized,
        )
        for o in outcome.outcomes
    ]
    return EventBatchOut(
        accepted=outcome.count("accepted"),
        duplicates=outcome.count("duplicate"),
        rejected=outcome.count("rejected"),
        dropped=outcome.count("dropped"),
        results=results,
    )
