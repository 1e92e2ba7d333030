"""`ferkit label PHOTOS... --out labels.csv`: label faces in the browser, one at a time, into the CSV `ferkit adapt`
reads."""
from __future__ import annotations

import argparse
import socket
from pathlib import Path

from .errors import EXIT_OK, EXIT_USAGE, CommandError
from ._args import add_detector, add_model

DEFAULT_PORT = 8770
EPILOG = """\
The page (http://127.0.0.1:PORT/, this machine only) shows one face at a time with the model's guess and its
probabilities. Keys: 1-9 pick a label, Enter accepts the guess, Backspace goes back, S skips, N marks "no usable
face". Every answer is on disk before the next face shows (OUT.ferkit/answers.jsonl, fsync'ed); run the same command
again to resume. OUT is path,label[,person],box, the CSV `ferkit adapt OUT --out head.json` reads; the page's
"Run adapt" button does the same, writing --head and its report.
"""


def add_parser(sub) -> None:
    p = sub.add_parser("label", help="label the faces of your photos in the browser, for `ferkit adapt`",
                       description="Label the faces in a folder of photos on a local page: the least certain faces "
                                   "first, every answer written at once to a CSV that `ferkit adapt` reads.",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("photos", nargs="+", metavar="PHOTOS", help="photo files or folders (searched below)")
    p.add_argument("--out", required=True, metavar="CSV", help="the labels file to write (and resume)")
    p.add_argument("--labels", default=None, metavar="A,B,C",
                   help="the labels, 2 to 9, comma-separated (default: the model's own: angry,disgust,...)")
    p.add_argument("--person-from", default=None, metavar="folder|REGEX",
                   help="whose photo each is, for folds that keep a person on one side: 'folder' (the photo's "
                        "folder's name) or a regular expression searched in the path (its first group)")
    p.add_argument("--head", default=None, metavar="HEAD",
                   help="where the page's 'Run adapt' writes the head (default: OUT's name with -head.json; the "
                        "report goes to a folder named like it with -report)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help="the port on 127.0.0.1 (default: %(default)s; 0: "
                                                                  "any free port)")
    add_model(p)
    add_detector(p)
    p.set_defaults(run=run)


def run(args) -> int:
    from .. import load_recognizer
    from ..label.store import LabelError, LabelStore, find_photos, parse_labels, person_rule

    try:
        import uvicorn

        from ..label.app import Session, create_app, guarded
        from ..server.cli import uvicorn_options
        from ..server.settings import Settings
    except ImportError as e:
        raise CommandError(f"ferkit label needs the [serve] extra: pip install 'ferkit[serve]' ({e})", EXIT_USAGE) from e
    if not 0 <= args.port <= 65535:
        raise CommandError(f"--port {args.port}: a port is 0 to 65535", EXIT_USAGE)
    try:
        persons = person_rule(args.person_from)
        labels = parse_labels(args.labels, ()) if args.labels is not None else None
    except LabelError as e:  # a flag's value: bad usage
        raise CommandError(str(e), EXIT_USAGE) from None
    photos = find_photos(args.photos)
    rec = load_recognizer(args.model, detector=args.detector)
    labels = labels or parse_labels(None, rec.labels)
    store = LabelStore(photos, args.out, labels, rec, persons)
    out = Path(args.out)
    head = Path(args.head) if args.head else out.with_name(out.stem + "-head.json")
    if head.suffix.lower() != ".json":
        raise CommandError(f"--head {args.head}: a head file ends in .json", EXIT_USAGE)
    session = Session(store, args.model, args.detector, head, head.with_name(head.stem + "-report"))
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", args.port))  # loopback only: the page reads and writes your files
    except OSError as e:
        raise CommandError(f"--port {args.port}: cannot listen on 127.0.0.1:{args.port} ({e.strerror}); "
                           f"--port 0 picks a free one", EXIT_USAGE) from None
    port = sock.getsockname()[1]
    config = uvicorn.Config(guarded(create_app(session), port), **uvicorn_options(Settings(host="127.0.0.1", port=port)))
    counts = store.counts()
    print(f"ferkit label: {len(photos)} photos, {counts['answered']} answered so far; open http://127.0.0.1:{port}/ "
          f"(Ctrl+C stops; answers are saved as you go)", flush=True)
    uvicorn.Server(config).run(sockets=[sock])
    return EXIT_OK
