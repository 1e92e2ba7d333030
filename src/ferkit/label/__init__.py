"""`ferkit label`: a local page that shows the faces of a folder of photos one at a time, with the model's guess, and
writes the answers into the CSV `ferkit adapt` reads. store.py holds the photos, the faces and the answers (no web
code); app.py serves them on loopback."""
from .store import LabelError, LabelStore, find_photos, person_rule

__all__ = ["LabelError", "LabelStore", "find_photos", "person_rule"]
