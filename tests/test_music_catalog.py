"""Catalogs: the shipped one, users' files in the Spotify audio-features layouts, and the errors of bad files."""
from __future__ import annotations

import math
from collections import Counter

import pytest

from ferkit import EMOTIONS
from ferkit.music import MOODS, CatalogError, load_catalog
from ferkit.music.catalog import parse_catalog, track_id

# The layout of the widely used "Spotify tracks dataset" (114k tracks, one genre each).
SPOTIFY_HEADER = ("track_id,artists,album_name,track_name,popularity,duration_ms,explicit,danceability,energy,"
                  "key,loudness,mode,speechiness,acousticness,instrumentalness,liveness,valence,tempo,time_signature,"
                  "track_genre")


def _spotify_row(tid, artists, name, energy, valence, genre, tempo="120.0"):
    return (f"{tid},{artists},Album,{name},50,200000,False,0.5,{energy},5,-6.0,1,0.04,0.1,0.0,0.1,{valence},{tempo},4,"
            f"{genre}")


@pytest.fixture(scope="module")
def shipped():
    return load_catalog()


def test_shipped_catalog_is_large_complete_and_varied(shipped):
    assert len(shipped) >= 300
    for t in shipped:
        assert t.title and t.artists and t.genre, t
        assert 0 <= t.valence <= 1 and 0 <= t.energy <= 1, t
        assert t.year is not None and 1600 <= t.year <= 2026, t
        assert t.url.startswith("https://open.spotify.com/search/")
    assert len({t.id for t in shipped}) == len(shipped)
    assert len({(t.artists[0].lower(), t.title.lower()) for t in shipped}) == len(shipped)
    artists = Counter(a for t in shipped for a in t.artists)
    assert len(artists) >= 250 and max(artists.values()) <= 5
    assert len({t.genre for t in shipped}) >= 30


@pytest.mark.parametrize("emotion", EMOTIONS)
def test_every_mood_has_varied_tracks_near_it(shipped, emotion):
    m = MOODS[emotion]
    near = [t for t in shipped if math.hypot(t.valence - m.valence, t.energy - m.energy) < 0.15]
    assert len({t.artists[0] for t in near}) >= 10, f"{emotion}: only {len(near)} tracks near its mood"


def test_ids_are_stable(shipped):
    t = shipped.find("Adele", "Someone Like You")
    assert t.id == track_id("Adele", "Someone Like You") == track_id(" adele ", "someone like you")
    assert shipped.get(t.id) is t and shipped.get("nope") is None


def test_spotify_tracks_dataset_layout(tmp_path):
    f = tmp_path / "dataset.csv"
    f.write_text("\n".join([
        SPOTIFY_HEADER,
        _spotify_row("5SuOikwiRyPMVoIQDJUgSV", "Gen Hoshino", "Comedy", 0.461, 0.715, "acoustic", "87.917"),
        _spotify_row("4qPNDBW1i3p13qLCt0Ki3A", "Ben Woodward", "Ghost - Acoustic", 0.166, 0.267, "acoustic"),
        _spotify_row("1iJBSr7s7jYXzM8EGcbK5b", "Ingrid Michaelson;ZAYN", "To Begin Again", 0.359, 0.12, "acoustic"),
        _spotify_row("6lfxq3CG4xtTiEg7opyCyx", "Kina Grannis", "Can't Help Falling In Love", 0.0596, 0.143, "pop"),
        # the same recording listed again under another genre: kept once
        _spotify_row("5SuOikwiRyPMVoIQDJUgSV", "Gen Hoshino", "Comedy", 0.461, 0.715, "j-pop"),
    ]) + "\n", encoding="utf-8")
    cat = load_catalog(f)
    assert len(cat) == 4 and cat.source == str(f)
    t = cat.get("spotify:track:5SuOikwiRyPMVoIQDJUgSV")
    assert (t.title, t.artist, t.genre, t.valence, t.energy, t.tempo) == ("Comedy", "Gen Hoshino", "acoustic",
                                                                          0.715, 0.461, 87.917)
    assert t.url == "https://open.spotify.com/track/5SuOikwiRyPMVoIQDJUgSV" and t.year is None
    duet = cat.find("Ingrid Michaelson", "To Begin Again")
    assert duet.artists == ("Ingrid Michaelson", "ZAYN")


def test_column_name_variants(tmp_path):
    f = tmp_path / "variants.csv"
    f.write_text(
        "Artist Name;Track Name;Genre;Release Date;Valence;Energy;Tempo\n"
        "Bill Withers;Lovely Day;soul;1977-12-01;0.8;0.5;97\n"
        "\n"
        "['Simon & Garfunkel'];Mrs. Robinson;folk rock;1968;0.8;0.7;\n", encoding="utf-8")
    cat = load_catalog(f)
    a, b = cat.tracks
    assert (a.artist, a.title, a.year, a.tempo) == ("Bill Withers", "Lovely Day", 1977, 97.0)
    assert b.artists == ("Simon & Garfunkel",) and b.tempo is None
    assert a.id == track_id("Bill Withers", "Lovely Day")
    assert a.url.startswith("https://open.spotify.com/search/")


def test_percent_columns(tmp_path):
    f = tmp_path / "top.csv"
    f.write_text('track_name,artist(s)_name,released_year,valence_%,energy_%\n'
                 '"Flowers",Miley Cyrus,2023,65,69\n', encoding="utf-8")
    t = load_catalog(f).tracks[0]
    assert (t.valence, t.energy, t.year) == (0.65, 0.69, 2023)


def test_byte_order_mark_is_accepted(tmp_path):
    f = tmp_path / "bom.csv"
    f.write_bytes("\ufefftitle,artist,valence,energy\nA,B,0.5,0.5\n".encode("utf-8"))
    assert len(load_catalog(f)) == 1


# ---------------------------------------------------------------- errors name the file and the row
def test_missing_columns_are_named(tmp_path):
    f = tmp_path / "nocols.csv"
    f.write_text("track_name,artists,danceability\nX,Y,0.5\n", encoding="utf-8")
    with pytest.raises(CatalogError) as e:
        load_catalog(f)
    msg = str(e.value)
    assert str(f) in msg and "valence" in msg and "energy" in msg
    assert "the header has: track_name, artists, danceability" in msg
    assert "title" not in msg.split("missing column(s)")[1].split(";")[0]  # title was found (track_name)


@pytest.mark.parametrize("row, problem", [
    ("Song,Artist,abc,0.5", "valence 'abc' is not a number"),
    ("Song,Artist,1.5,0.5", "valence '1.5' is outside [0, 1]"),
    ("Song,Artist,0.5,nan", "energy 'nan' is outside [0, 1]"),
    ("Song,Artist,0.5", "3 fields where the header has 4"),
    (",Artist,0.5,0.5", "empty title"),
    ("Song,,0.5,0.5", "empty artist"),
])
def test_bad_row_is_named(tmp_path, row, problem):
    f = tmp_path / "bad.csv"
    f.write_text(f"title,artist,valence,energy\nGood,One,0.1,0.2\n{row}\n", encoding="utf-8")
    with pytest.raises(CatalogError) as e:
        load_catalog(f)
    assert str(e.value) == f"{f}: row 3: {problem}"


def test_bad_year_and_tempo(tmp_path):
    f = tmp_path / "bad.csv"
    f.write_text("title,artist,valence,energy,year,tempo\nA,B,0.1,0.2,soon,\nC,D,0.1,0.2,1999,fast\n",
                 encoding="utf-8")
    with pytest.raises(CatalogError, match=r"row 2: year 'soon' does not start with four digits; "
                                           r"row 3: tempo 'fast' is not a number"):
        load_catalog(f)


def test_many_bad_rows_are_summarised(tmp_path):
    f = tmp_path / "many.csv"
    f.write_text("title,artist,valence,energy\n" + "".join(f"S{i},A,x,0.5\n" for i in range(12)), encoding="utf-8")
    with pytest.raises(CatalogError) as e:
        load_catalog(f)
    msg = str(e.value)
    assert msg.startswith(f"{f}: row 2: valence 'x'") and "row 6:" in msg and "row 7:" not in msg
    assert msg.endswith("(and 7 more bad rows)")


def test_multiline_field_keeps_line_numbers(tmp_path):
    f = tmp_path / "ml.csv"
    f.write_text('title,artist,valence,energy\n"Two\nlines",A,0.5,0.5\nB,C,bad,0.5\n', encoding="utf-8")
    with pytest.raises(CatalogError, match=r"row 4: valence 'bad'"):
        load_catalog(f)


@pytest.mark.parametrize("content, problem", [
    (b"", "the file is empty"),
    (b"\n\n", "the file is empty"),
    (b"title,artist,valence,energy\n", "no tracks, only a header"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "not a UTF-8 CSV file"),
    (b"title,artist,valence,energy\nA,B,\x00,0.5\n", "not a CSV file (binary data)"),
])
def test_unusable_files(tmp_path, content, problem):
    f = tmp_path / "x.csv"
    f.write_bytes(content)
    with pytest.raises(CatalogError) as e:
        load_catalog(f)
    assert str(e.value).startswith(f"{f}: ") and problem in str(e.value)


def test_missing_file_or_folder(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_catalog(tmp_path / "nope.csv")
    with pytest.raises(CatalogError, match=f"^{tmp_path}: is a folder, not a CSV file$"):
        load_catalog(tmp_path)


def test_parse_catalog_names_its_source():
    with pytest.raises(CatalogError, match=r"^upload\.csv: row 2: "):
        parse_catalog("title,artist,valence,energy\nA,B,2,0\n", "upload.csv")
