"""Track catalogs: the one shipped with ferkit and users' own CSV files in the Spotify audio-features layout.

The shipped file has the columns title, artist, genre, year, valence, energy. A user's file may use the column names
of the common Spotify datasets instead (track_id, track_name, artists / artist_name, track_genre / genre,
year / release_date, valence, energy, tempo ...); only a title, an artist, valence and energy are required.
"""
from __future__ import annotations

import ast
import csv
import hashlib
import re
from dataclasses import asdict, dataclass
from functools import cached_property
from importlib import resources
from pathlib import Path
from urllib.parse import quote

import numpy as np

__all__ = ["Track", "Catalog", "CatalogError", "load_catalog", "DEFAULT_CATALOG", "COLUMN_ALIASES"]

DEFAULT_CATALOG = "catalog.csv"  # inside the ferkit.music package
MAX_ERRORS_SHOWN = 5

# Our field -> accepted column names (compared lower-cased, with spaces and dashes read as underscores).
COLUMN_ALIASES: dict[str, tuple[str, ...]] = {
    "id": ("id", "track_id", "spotify_id", "uri", "track_uri"),
    "title": ("title", "track_name", "name", "track", "song", "song_name", "track_title"),
    "artist": ("artist", "artists", "artist_name", "artist_names", "artist(s)_name", "artist_s_name"),
    "genre": ("genre", "track_genre", "genres", "playlist_genre", "top_genre"),
    "year": ("year", "release_year", "released_year", "release_date", "album_release_date",
             "track_album_release_date"),
    "valence": ("valence", "valence_%"),
    "energy": ("energy", "energy_%"),
    "tempo": ("tempo", "bpm"),
    "url": ("url", "spotify_url", "external_url", "track_url"),
}
REQUIRED = ("title", "artist", "valence", "energy")
_SPOTIFY_ID = re.compile(r"^(?:spotify:track:)?([0-9A-Za-z]{22})$")


class CatalogError(ValueError):
    """A catalog file that cannot be used; the message names the file and, for bad rows, the rows."""


@dataclass(frozen=True)
class Track:
    """One recording. ``valence`` and ``energy`` are in [0, 1]; ``artists`` has every credited artist."""
    id: str
    title: str
    artists: tuple[str, ...]
    valence: float
    energy: float
    genre: str = ""
    year: int | None = None
    tempo: float | None = None
    url: str | None = None

    @property
    def artist(self) -> str:
        return ", ".join(self.artists)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["artist"] = self.artist
        del d["artists"], d["tempo"]
        return d


def track_id(artist: str, title: str) -> str:
    """A stable short id for a track without one: 10 hex digits of SHA-1 over 'artist|title' (lower case)."""
    return hashlib.sha1(f"{artist.strip().lower()}|{title.strip().lower()}".encode()).hexdigest()[:10]


def search_url(artist: str, title: str) -> str:
    """A Spotify search link: it needs no track id and never points at the wrong recording."""
    return "https://open.spotify.com/search/" + quote(f"{artist} {title}", safe="")


@dataclass(frozen=True)
class TrackIndex:
    """What ranking needs, as arrays and look-ups: built once per Catalog (cached), or per call for a plain list."""
    tracks: tuple[Track, ...]
    valence: np.ndarray                  # (N,)
    energy: np.ndarray                   # (N,)
    by_id: dict[str, int]
    by_artist: dict[str, np.ndarray]     # lower-cased artist -> indices of their tracks
    by_genre: dict[str, np.ndarray]      # lower-cased genre -> indices

    @classmethod
    def build(cls, tracks) -> "TrackIndex":
        tracks = tuple(tracks)
        artists: dict[str, list[int]] = {}
        genres: dict[str, list[int]] = {}
        for i, t in enumerate(tracks):
            for a in t.artists:
                artists.setdefault(a.lower(), []).append(i)
            if t.genre:
                genres.setdefault(t.genre.lower(), []).append(i)
        return cls(tracks, np.array([t.valence for t in tracks], float), np.array([t.energy for t in tracks], float),
                   {t.id: i for i, t in enumerate(tracks)},
                   {k: np.array(v) for k, v in artists.items()}, {k: np.array(v) for k, v in genres.items()})


class Catalog:
    """An immutable list of tracks with look-up by id; duplicates (same artist and title) are kept once."""

    def __init__(self, tracks, source: str = "<memory>"):
        self.source = source
        seen: set[tuple[str, str]] = set()
        kept: list[Track] = []
        for t in tracks:
            key = (t.artists[0].lower() if t.artists else "", t.title.lower())
            if key not in seen:
                seen.add(key)
                kept.append(t)
        self.tracks: tuple[Track, ...] = tuple(kept)
        self._by_id = {t.id: t for t in self.tracks}
        self._by_name = {(t.artists[0].lower(), _simplify(t.title)): t for t in self.tracks if t.artists}

    def __len__(self) -> int:
        return len(self.tracks)

    @cached_property
    def index(self) -> TrackIndex:
        return TrackIndex.build(self.tracks)

    def __iter__(self):
        return iter(self.tracks)

    def get(self, track_id: str) -> Track | None:
        return self._by_id.get(track_id)

    def find(self, artist: str, title: str) -> Track | None:
        """The catalog's track with this (first) artist and title, ignoring case and bracketed suffixes."""
        return self._by_name.get((artist.strip().lower(), _simplify(title)))

    def __repr__(self) -> str:
        return f"Catalog({len(self)} tracks from {self.source})"


def _simplify(title: str) -> str:
    # "Song - 2011 Remaster" / "Song (feat. X)" -> "song"
    return re.split(r" - | \(|\[", title.lower(), maxsplit=1)[0].strip()


def _norm(col: str) -> str:
    return re.sub(r"[\s\-]+", "_", col.strip().lower())


def _columns(header: list[str], name: str) -> dict[str, int]:
    """Map our fields to column indices; raise CatalogError naming the missing columns and the ones found."""
    normed = [_norm(h) for h in header]
    found: dict[str, int] = {}
    for field, aliases in COLUMN_ALIASES.items():
        for alias in aliases:
            if alias in normed:
                found[field] = normed.index(alias)
                break
    missing = [f for f in REQUIRED if f not in found]
    if missing:
        want = "; ".join(f"{f} (one of: {', '.join(COLUMN_ALIASES[f])})" for f in missing)
        raise CatalogError(f"{name}: missing column(s) {want}; the header has: {', '.join(header) or '(nothing)'}")
    return found


def _artists(value: str) -> tuple[str, ...]:
    value = value.strip()
    if value.startswith("[") and value.endswith("]"):  # "['A', 'B']" in some Spotify exports
        try:
            parsed = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            parsed = None
        if isinstance(parsed, list) and all(isinstance(a, str) for a in parsed):
            return tuple(a.strip() for a in parsed if a.strip())
    return tuple(a.strip() for a in re.split(r";|\|", value) if a.strip())


def _unit(value: str, field: str, percent: bool) -> float:
    try:
        x = float(value)
    except ValueError:
        raise ValueError(f"{field} {value!r} is not a number") from None
    if percent:
        x /= 100.0
    if not 0.0 <= x <= 1.0:  # also rejects nan
        raise ValueError(f"{field} {value!r} is outside " + ("0..100" if percent else "[0, 1]"))
    return x


def _row_to_track(row: list[str], cols: dict[str, int], header: list[str]) -> Track:
    def cell(field: str) -> str:
        i = cols.get(field)
        return row[i].strip() if i is not None and i < len(row) else ""

    if len(row) < len(header):
        raise ValueError(f"{len(row)} fields where the header has {len(header)}")
    title, artists = cell("title"), _artists(cell("artist"))
    if not title:
        raise ValueError("empty title")
    if not artists:
        raise ValueError("empty artist")
    valence = _unit(cell("valence"), "valence", _norm(header[cols["valence"]]).endswith("%"))
    energy = _unit(cell("energy"), "energy", _norm(header[cols["energy"]]).endswith("%"))
    year = None
    if cell("year"):
        m = re.match(r"^(\d{4})", cell("year"))
        if not m:
            raise ValueError(f"year {cell('year')!r} does not start with four digits")
        year = int(m.group(1))
    tempo = None
    if cell("tempo"):
        try:
            tempo = float(cell("tempo"))
        except ValueError:
            raise ValueError(f"tempo {cell('tempo')!r} is not a number") from None
    raw_id = cell("id")
    spotify = _SPOTIFY_ID.match(raw_id)
    tid = (f"spotify:track:{spotify.group(1)}" if spotify else raw_id) or track_id(artists[0], title)
    url = cell("url") or (f"https://open.spotify.com/track/{spotify.group(1)}" if spotify
                          else search_url(artists[0], title))
    return Track(id=tid, title=title, artists=artists, valence=valence, energy=energy,
                 genre=cell("genre"), year=year, tempo=tempo, url=url)


def parse_catalog(text: str, name: str) -> Catalog:
    """Parse CSV text; raise CatalogError naming ``name`` and the bad rows (line numbers, header = line 1)."""
    lines = text.splitlines(keepends=True)
    if not any(line.strip() for line in lines):
        raise CatalogError(f"{name}: the file is empty")
    try:
        dialect = csv.Sniffer().sniff(lines[0], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    reader = csv.reader(lines, dialect)
    header = next(reader)
    cols = _columns(header, name)
    tracks, errors, n_errors = [], [], 0
    for row in reader:
        if not any(c.strip() for c in row):
            continue
        try:
            tracks.append(_row_to_track(row, cols, header))
        except ValueError as e:
            n_errors += 1
            if len(errors) < MAX_ERRORS_SHOWN:
                errors.append(f"row {reader.line_num}: {e}")
    if n_errors:
        more = f" (and {n_errors - len(errors)} more bad rows)" if n_errors > len(errors) else ""
        raise CatalogError(f"{name}: " + "; ".join(errors) + more)
    if not tracks:
        raise CatalogError(f"{name}: no tracks, only a header")
    return Catalog(tracks, source=name)


def load_catalog(path: str | Path | None = None) -> Catalog:
    """Read a catalog CSV; ``None`` reads the catalog shipped with ferkit.

    Raises FileNotFoundError for a missing file and CatalogError (a ValueError) for one that is not a usable
    catalog, naming the file and the first bad rows.
    """
    if path is None:
        text = resources.files(__package__).joinpath(DEFAULT_CATALOG).read_text(encoding="utf-8")
        return parse_catalog(text, f"ferkit/music/{DEFAULT_CATALOG}")
    path = Path(path)
    if path.is_dir():
        raise CatalogError(f"{path}: is a folder, not a CSV file")
    try:
        data = path.read_bytes()
    except PermissionError as e:
        raise CatalogError(f"{path}: cannot be read ({e.strerror})") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise CatalogError(f"{path}: not a UTF-8 CSV file (undecodable byte at offset {e.start})") from None
    if "\x00" in text[:4096]:
        raise CatalogError(f"{path}: not a CSV file (binary data)")
    return parse_catalog(text, str(path))
