"""`ferkit report RESULTS --out report.html`: one self-contained HTML file to share (ferkit.report)."""
from __future__ import annotations

from pathlib import Path

from .errors import EXIT_OK, EXIT_USAGE, CommandError


def add_parser(sub) -> None:
    p = sub.add_parser("report", help="an HTML report of a video's output folder or a batch result",
                       description="Write one self-contained HTML file (no network needed to open it) from the output "
                                   "folder of `ferkit video` (one section per person) or a `ferkit batch` result "
                                   "(.csv, .jsonl, .parquet).")
    p.add_argument("results", help="a `ferkit video` output folder, or a `ferkit batch` result file")
    p.add_argument("--out", metavar="FILE", help="the HTML file to write (default: report.html in the video's output "
                                                 "folder, or RESULTS.html beside a batch result)")
    p.set_defaults(run=run)


def run(args) -> int:
    try:
        from ..report import write_report
    except ImportError as e:  # pandas, an extra: the message says how to install it
        raise CommandError(str(e)) from None

    src = Path(args.results)
    out = Path(args.out) if args.out else (src / "report.html" if src.is_dir() else src.with_name(src.name + ".html"))
    if out.is_dir():
        raise CommandError(f"{out} is a folder; name the HTML file to write", EXIT_USAGE)
    if not out.parent.is_dir():
        raise CommandError(f"{out}: the folder {out.parent} does not exist; create it first", EXIT_USAGE)
    write_report(src, out)
    print(f"wrote {out}")
    return EXIT_OK
