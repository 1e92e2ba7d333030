"""The labelling page's server: FastAPI on loopback, behind the web app's Guard (Host and Origin checks, body limit,
security headers), with three threads beside the event loop:
- the analyser: each photo not in the cache decoded once and its faces classified, in the background (the first
  face is asked as soon as one is found);
- the estimator: after answers, the running cross-validated estimate (store.estimate), never on the event loop;
- adapt, when the page's button asks: `ferkit adapt` on the CSV, writing the head and its report.
"""
from __future__ import annotations

import logging
import re
import threading
from collections import Counter
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, HTTPException
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel

from .store import MIN_PER_CLASS, NO_FACE, ORDER_RULE, SKIP, LabelError, LabelStore, estimate

log = logging.getLogger("ferkit.label")
STATIC = Path(__file__).resolve().parent / "static"
CROP_NAME = re.compile(r"[0-9a-f]{16}-(?:\d+|photo)\.jpg")
HISTORY = 8                  # thumbnails of the last answers on the page
UNREADABLE_SHOWN = 50        # unreadable photos listed on the page (all are counted)
ADAPT_FEATURES = ("blendshapes", "pose")  # `ferkit adapt`'s default: the button writes the head the command would


class Answer(BaseModel):
    id: str
    kind: str                # "label", "skip" or "no_face"
    label: str | None = None


class Session:
    """The store and what the threads beside it report."""

    def __init__(self, store: LabelStore, model: str | None, detector: str, head: Path, report: Path):
        self.store, self.model, self.detector, self.head, self.report = store, model, detector, head, report
        self.stop = threading.Event()
        self.answered = threading.Event()
        self.analysis_error: str | None = None
        self.analysing = True
        self.estimate: dict = {"ready": False, "reason": f"the estimate starts at {MIN_PER_CLASS} labels in each of "
                                                         f"2 classes"}
        self.adapt = {"state": "idle", "message": ""}
        self.adapt_lock = threading.Lock()

    def analyse_all(self) -> None:
        try:
            for i in self.store.pending_photos():
                if self.stop.is_set():
                    return
                self.store.analyse(i)
        except Exception as e:  # shown on the page and logged: the answers so far stay usable
            log.exception("analysis stopped")
            self.analysis_error = f"analysis stopped: {e}"
        finally:
            self.analysing = False

    def keep_estimating(self) -> None:
        seen = -1
        while not self.stop.is_set():
            self.answered.wait(1.0)
            self.answered.clear()
            version = self.store.version
            if version == seen:
                continue
            seen = version
            result = estimate(self.store.labelled(), self.store.labels, self.store.model_labels,
                              self.store.has_persons)
            self.estimate = {**result, "version": version}

    def run_adapt(self) -> None:
        from .. import load_recognizer
        from ..adapt import AdaptConfig, LabelledSet, adapt, read_labelled, write_report

        try:
            data = read_labelled(self.store.out)
            counts = Counter(data.labels)
            keep = [i for i, c in enumerate(data.labels) if counts[c] >= MIN_PER_CLASS]
            left = sorted(c for c in counts if counts[c] < MIN_PER_CLASS)
            data = LabelledSet([data.images[i] for i in keep], [data.labels[i] for i in keep],
                               [data.names[i] for i in keep],
                               None if data.groups is None else [data.groups[i] for i in keep], data.source)
            rec = load_recognizer(self.model, detector=self.detector, features=ADAPT_FEATURES)
            result = adapt(rec, data, AdaptConfig(), name=self.head.stem)
            try:
                write_report(result, self.report)
                where = f"report in {self.report}"
            except ImportError:  # the figure needs matplotlib; adapt-report.md is written before it
                where = f"report in {self.report / 'adapt-report.md'} (the figure needs the [plot] extra)"
            acc = result.report["accuracy"]
            figures = (f"adapted {acc['adapted_mean']:.0%} ± {acc['adapted_std'] * 100:.0f} vs base "
                       f"{acc['base_mean']:.0%}")
            notes = ([f"left out (under {MIN_PER_CLASS} labels): {', '.join(left)}"] if left else []) + \
                ([f"{len(result.skipped)} photos skipped (no face, or several: `ferkit adapt` reads one face a "
                  f"photo)"] if result.skipped else [])
            if result.helps:
                self.head.parent.mkdir(parents=True, exist_ok=True)
                result.head.save(self.head)
                message = f"wrote {self.head}: {figures}; {where}"
            else:
                message = (f"{self.head} not written: the head does not beat the base model beyond the folds' spread "
                           f"({figures}); {where}. `ferkit adapt {self.store.out} --out {self.head} --force` writes "
                           f"it anyway")
            self.adapt = {"state": "done", "message": "; ".join([message] + notes), "helps": result.helps}
        except (ValueError, OSError) as e:  # AdapterError and friends say what is wrong with which file
            self.adapt = {"state": "failed", "message": str(e)}
        except Exception as e:
            log.exception("adapt failed")
            self.adapt = {"state": "failed", "message": f"adapt failed: {e}"}


def create_app(session: Session) -> FastAPI:
    store = session.store

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        threads = [threading.Thread(target=session.analyse_all, name="label-analyse", daemon=True),
                   threading.Thread(target=session.keep_estimating, name="label-estimate", daemon=True)]
        for t in threads:
            t.start()
        yield
        session.stop.set()
        for t in threads:
            t.join(timeout=5)

    app = FastAPI(title="ferkit label", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC / "label.html", headers={"cache-control": "no-store"})

    @app.get("/crops/{name}", include_in_schema=False)
    def crop(name: str) -> FileResponse:
        path = store.crops / name
        if not CROP_NAME.fullmatch(name) or not path.is_file():
            raise HTTPException(404, f"no crop {name[:40]!r}")
        return FileResponse(path, media_type="image/jpeg", headers={"cache-control": "private, max-age=86400"})

    @app.get("/api/face")
    def face(back: int = 0) -> dict:
        """The face to show: `back` answers ago (Backspace), or the next one (back=0)."""
        item = store.back(back) if back > 0 else store.next_face()
        if item is None:
            why = "waiting" if back == 0 and session.analysing else ("start" if back > 0 else "done")
            return {"face": None, "why": why, "back": back}
        answer = store.answer_of(item)
        return {"back": back, "face": {
            "id": item.id, "path": store.paths[item.photo], "person": store.persons[item.photo],
            "index": item.index, "faces_in_photo": item.faces_in_photo, "box": item.box, "size": item.size,
            "probabilities": [[c, item.probabilities[c]] for c in store.model_labels],
            "guess": store.guess(item), "crop": f"/crops/{item.crop}",
            "context": f"/crops/{item.context}" if item.context else None,
            "answer": None if answer is None else {"kind": answer["kind"], "label": answer["label"]}}}

    @app.post("/api/answer")
    def answer(body: Answer) -> dict:
        try:
            store.answer(body.id, body.kind, body.label)
        except LabelError as e:
            raise HTTPException(400, str(e)) from None
        session.answered.set()
        return {"ok": True}

    @app.get("/api/state")
    def state() -> dict:
        history = []
        for item, a in store.recent(HISTORY):
            if item is not None:
                history.append({"crop": f"/crops/{item.crop}", "path": a["path"], "index": a["face"],
                                "answer": a["label"] if a["kind"] == "label" else
                                {SKIP: "skipped", NO_FACE: "no usable face"}[a["kind"]]})
        return {"labels": store.labels, "counts": store.counts(), "rule": ORDER_RULE, "out": str(store.out),
                "persons": store.has_persons, "analysing": session.analysing, "error": session.analysis_error,
                "unreadable": store.unreadable[:UNREADABLE_SHOWN], "estimate": session.estimate,
                "adapt": session.adapt, "head": str(session.head), "history": history, "version": store.version}

    @app.post("/api/adapt")
    def run_adapt() -> dict:
        with session.adapt_lock:
            if session.adapt["state"] == "running":
                raise HTTPException(409, "adapt is already running")
            session.adapt = {"state": "running", "message": f"running adapt on {store.out} …"}
        threading.Thread(target=session.run_adapt, name="label-adapt", daemon=True).start()
        return session.adapt

    return app


def guarded(app: FastAPI, port: int):
    """The app behind the web app's Guard, for a server bound to 127.0.0.1:port."""
    from ..server.security import Guard
    from ..server.settings import Settings

    return Guard(app, Settings(host="127.0.0.1", port=port))
