"""Music for the detected emotion: GET /api/v1/recommendations and POST /api/v1/feedback.

The routes are self-contained: their one dependency, `get_recommender`, builds a `ferkit.music.Recommender` from
the FERKIT_MUSIC_* / SPOTIPY_* environment variables the first time it is needed and keeps it on `app.state`.
Tests swap it with `app.dependency_overrides[get_recommender] = lambda: Recommender(...)`.
"""
from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BaseModel, Field
from starlette.requests import HTTPConnection

from ...music.moods import MOODS
from .schemas import error_responses

router = APIRouter(prefix="/api/v1", tags=["music"])


def get_recommender(conn: HTTPConnection) -> Any:
    """The app's one Recommender (catalog, feedback store, provider), created lazily from the environment."""
    rec = getattr(conn.app.state, "ferkit_music", None)
    if rec is None:
        from ...music import Recommender

        rec = conn.app.state.ferkit_music = Recommender.from_env()
    return rec


RecommenderDep = Annotated[Any, Depends(get_recommender)]


class FeedbackIn(BaseModel):
    track_id: str = Field(min_length=1, max_length=200)
    action: Literal["like", "skip"]
    emotion: str | None = Field(None, max_length=40, description="the mood the track was offered for, one of "
                                + ", ".join(MOODS) + " (any case)", json_schema_extra={"enum": [*MOODS, None]})


def _check_emotion(emotion: str | None) -> str | None:
    from ...music import check_emotion

    try:
        return check_emotion(emotion) if emotion is not None else None
    except ValueError as e:
        raise HTTPException(422, str(e)) from None


@router.get("/recommendations", responses=error_responses(s422="unknown emotion or strategy, or n out of range"))
def recommendations(rec: RecommenderDep,
                    emotion: Annotated[str, Query(max_length=40, description="one of " + ", ".join(MOODS) + " (any case)",
                                                  json_schema_extra={"enum": list(MOODS)})],
                    strategy: str = "match", n: Annotated[int, Query(ge=1, le=50)] = 10) -> dict:
    """Tracks for a mood: `match` fits the emotion, `lift` starts there and climbs toward higher valence.
    A Spotify failure never fails the request: the local catalog answers, with a `notice` saying why."""
    try:
        result = rec.recommend(emotion, strategy, n)
    except ValueError as e:  # unknown emotion or strategy (n is bounded by the query's own limits)
        raise HTTPException(422, str(e)) from None
    return result.to_dict()


@router.post("/feedback", responses=error_responses(
    s404="unknown track id", s413="body over max_json_bytes", s422="a malformed body or an unknown emotion",
    s503="the feedback store cannot be written (the like or skip was not saved)"))
def feedback(body: FeedbackIn, rec: RecommenderDep) -> dict:
    """Record a like or a skip; later rankings move that track's artist and genre up (like) or down (skip)."""
    from ...music import FeedbackStoreError, UnknownTrackError

    # Checked here rather than by catching rec.feedback's ValueError, which also means "no feedback store" (not a 422).
    emotion = _check_emotion(body.emotion)
    try:
        rec.feedback(body.track_id, body.action, emotion)
    except UnknownTrackError as e:
        raise HTTPException(404, str(e)) from None
    except FeedbackStoreError as e:
        raise HTTPException(503, f"feedback not saved: {e}") from None
    return {"ok": True}
