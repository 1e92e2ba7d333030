"""`ferkit recommend` (music for an emotion or a photo) and `ferkit music` (feedback, moods, catalog checks).

Light at import: the recognizer, spotipy and the catalog load only when a command runs.
"""
from __future__ import annotations

import json
import sys

from ..cli.errors import EXIT_ERROR, EXIT_NO_FACE, EXIT_OK, EXIT_USAGE, CommandError, print_error
from ..cli._args import add_detector, add_model
from .moods import MOODS


def add_parser(sub) -> None:
    """Register `recommend` and `music` on the top-level subparsers."""
    p = sub.add_parser(
        "recommend", help="music for an emotion, or for the face in a photo",
        description="Recommend tracks for an emotion (--emotion sad) or for the emotion detected in a photo. "
                    "Strategy 'match' fits the mood; 'lift' starts there and moves toward higher valence.")
    p.add_argument("photo", nargs="?", help="a photo: its largest face's emotion is used")
    p.add_argument("--emotion", "-e", help=f"an emotion instead of a photo: {', '.join(MOODS)}")
    p.add_argument("--strategy", "-s", default="match", help="match (default) or lift")
    p.add_argument("-n", type=int, default=10, help="how many tracks (default 10)")
    p.add_argument("--catalog", metavar="CSV", help="your own catalog in the Spotify audio-features CSV layout "
                                                    "(default: the catalog shipped with ferkit)")
    p.add_argument("--provider", default="local", help="local (default) or spotify (needs SPOTIPY_CLIENT_ID and "
                                                       "SPOTIPY_CLIENT_SECRET; falls back to local with a notice)")
    p.add_argument("--db", metavar="PATH", help="feedback database (default: $FERKIT_MUSIC_DB or "
                                                "~/.local/share/ferkit/music.sqlite)")
    p.add_argument("--no-feedback", action="store_true", help="ignore likes and skips for this ranking")
    p.add_argument("--json", action="store_true", help="print JSON (the same shape as the web API)")
    add_model(p, help="with a photo: shipped model name or .onnx path (default: ferplus)")
    add_detector(p)
    p.set_defaults(run=run_recommend)

    m = sub.add_parser("music", help="music feedback (like, skip, feedback, wipe), moods and catalog checks",
                       description="Likes and skips re-rank later recommendations: liked artists and genres "
                                   "move up, skipped ones down.")
    msub = m.add_subparsers(dest="music_command", required=True, metavar="ACTION")
    for action, text in (("like", "like a track (by the id shown by `ferkit recommend`)"),
                         ("skip", "skip a track: its artist and genre move down")):
        a = msub.add_parser(action, help=text)
        a.add_argument("track_id", nargs="+", help="track id(s)")
        a.add_argument("--emotion", "-e", help="the emotion the track was recommended for (weights the feedback)")
        a.add_argument("--catalog", metavar="CSV", help="the catalog the id comes from (default: the shipped one)")
        a.add_argument("--db", metavar="PATH", help="feedback database")
        a.set_defaults(run=run_feedback, action=action)
    f = msub.add_parser("feedback", help="list the likes and skips")
    f.add_argument("--db", metavar="PATH", help="feedback database")
    f.add_argument("--json", action="store_true")
    f.set_defaults(run=run_list)
    w = msub.add_parser("wipe", help="delete every like and skip")
    w.add_argument("--db", metavar="PATH", help="feedback database")
    w.set_defaults(run=run_wipe)
    mo = msub.add_parser("moods", help="show the emotion -> valence/energy map")
    mo.set_defaults(run=run_moods)
    c = msub.add_parser("check", help="validate a catalog CSV and summarise it")
    c.add_argument("catalog", help="a CSV file")
    c.set_defaults(run=run_check)


def _feedback_errors(run):
    """An unusable feedback file stops the command through main(): a one-line message and exit status 1."""
    import functools

    @functools.wraps(run)
    def wrapper(args) -> int:
        from .feedback import FeedbackStoreError

        try:
            return run(args)
        except FeedbackStoreError as e:
            raise CommandError(str(e), EXIT_ERROR) from e

    return wrapper


def _quiet_spotipy() -> None:
    # spotipy logs every HTTP error at ERROR level; the CLI prints its own one-line notice instead.
    import logging

    logging.getLogger("spotipy").setLevel(logging.CRITICAL)


def _emotion_from_photo(args) -> str:
    from .. import UnreadableImageError, load_image, load_recognizer

    rec = load_recognizer(args.model, detector=args.detector)
    try:
        faces = rec.analyze(load_image(args.photo))
    except UnreadableImageError as e:
        raise CommandError(str(e), EXIT_ERROR) from e
    if not faces:
        raise CommandError(f"{args.photo}: no face found", EXIT_NO_FACE)
    face = max(faces, key=lambda f: f.box[2] * f.box[3])
    which = f" (the largest of {len(faces)} faces)" if len(faces) > 1 else ""
    print(f"{args.photo}: {face.emotion} ({face.score:.0%}){which}", file=sys.stderr if args.json else sys.stdout)
    return face.emotion


@_feedback_errors
def run_recommend(args) -> int:
    from . import FeedbackStore, Recommender, check_emotion, check_provider, check_strategy, load_catalog
    from .rank import MAX_N

    if (args.photo is None) == (args.emotion is None):
        raise CommandError("recommend: give either a PHOTO or --emotion (one of them)", EXIT_USAGE)
    try:
        strategy, provider = check_strategy(args.strategy), check_provider(args.provider)
        emotion = check_emotion(args.emotion) if args.emotion is not None else None
    except ValueError as e:
        raise CommandError(str(e), EXIT_USAGE) from e
    if not 1 <= args.n <= MAX_N:
        raise CommandError(f"-n must be between 1 and {MAX_N}, got {args.n}", EXIT_USAGE)
    catalog = load_catalog(args.catalog)  # CatalogError / FileNotFoundError -> main prints it, exit 1
    if emotion is None:
        emotion = _emotion_from_photo(args)
    _quiet_spotipy()
    rec = Recommender(catalog, FeedbackStore(args.db), provider)
    result = rec.recommend(emotion, strategy, args.n, use_feedback=not args.no_feedback)
    if result.notice:
        print_error(f"notice: {result.notice}")
    if args.json:
        print(json.dumps(result.to_dict(), indent=2, ensure_ascii=False))
        return EXIT_OK
    print(f"{len(result.tracks)} tracks for {emotion} ({strategy}, from {result.source}):")
    for i, r in enumerate(result.tracks, 1):
        t = r.track
        year = f", {t.year}" if t.year else ""
        genre = f" [{t.genre}]" if t.genre else ""
        print(f"{i:>3}. {t.artist} - {t.title}{year}{genre}   id {t.id}")
        print(f"     {r.reason}")
    print("Like or skip with: ferkit music like ID / ferkit music skip ID")
    return EXIT_OK


@_feedback_errors
def run_feedback(args) -> int:
    from . import FeedbackStore, Recommender, UnknownTrackError, check_emotion, load_catalog

    try:
        emotion = check_emotion(args.emotion) if args.emotion is not None else None
    except ValueError as e:
        raise CommandError(str(e), EXIT_USAGE) from e
    rec = Recommender(load_catalog(args.catalog), FeedbackStore(args.db))
    failed = 0
    for tid in args.track_id:
        try:
            t = rec.feedback(tid, args.action, emotion)
        except UnknownTrackError as e:  # the other ids are still recorded
            print_error(str(e))
            failed += 1
            continue
        print(f"{args.action}d: {t.artist} - {t.title}" if args.action == "like" else
              f"skipped: {t.artist} - {t.title}")
    return EXIT_ERROR if failed else EXIT_OK


@_feedback_errors
def run_list(args) -> int:
    from . import FeedbackStore

    store = FeedbackStore(args.db)
    events = store.events()
    if args.json:
        print(json.dumps(events, indent=2, ensure_ascii=False))
        return EXIT_OK
    if not events:
        print(f"no feedback yet in {store.path}")
    for e in events:
        print(f"{e['action']:<5} {e['artist']} - {e['title']}" + (f"  ({e['emotion']})" if e["emotion"] else "")
              + f"   id {e['track_id']}")
    return EXIT_OK


@_feedback_errors
def run_wipe(args) -> int:
    from . import FeedbackStore

    store = FeedbackStore(args.db)
    n = store.wipe()
    print(f"wiped {n} feedback entr{'y' if n == 1 else 'ies'} (likes and skips) from {store.path}")
    return EXIT_OK


def run_moods(args) -> int:
    from . import LIFT_GOAL, MOODS

    print(f"{'emotion':<9} {'valence':>7} {'energy':>7}  words")
    for name, m in MOODS.items():
        print(f"{name:<9} {m.valence:>7.2f} {m.energy:>7.2f}  {m.words}")
    print(f"{'lift goal':<9} {LIFT_GOAL.valence:>7.2f} {LIFT_GOAL.energy:>7.2f}  {LIFT_GOAL.words} "
          "(for negative moods; positive ones keep their energy)")
    return EXIT_OK


def run_check(args) -> int:
    from collections import Counter

    from . import load_catalog

    cat = load_catalog(args.catalog)
    artists = Counter(a for t in cat for a in t.artists)
    genres = Counter(t.genre for t in cat if t.genre)
    print(f"{args.catalog}: {len(cat)} tracks, {len(artists)} artists, {len(genres)} genres; ok")
    return EXIT_OK
