"""`ferkit data`: read a dataset and print its counts per split and class."""
from __future__ import annotations

from .errors import EXIT_OK


def add_parser(sub) -> None:
    p = sub.add_parser("data", help="read a dataset and print its counts per split and class")
    p.add_argument("path", help="fer2013.csv(.gz), an .npz(.xz) or an image folder")
    p.add_argument("--ferplus", help="fer2013new.csv: also show FER+ majority counts")
    p.add_argument("--chart", metavar="PNG", help="write a class-distribution bar chart")
    p.set_defaults(run=run)


def run(args) -> int:
    from ..data import load_dataset, read_ferplus_votes, with_ferplus

    ds = load_dataset(args.path)
    print(ds.summary())
    if args.ferplus:
        fp = with_ferplus(ds, read_ferplus_votes(args.ferplus, len(ds)), "majority")
        print()
        print(fp.summary())
    if args.chart:
        from ..plots import plot_class_distribution

        plot_class_distribution(ds, args.chart)
        print(f"wrote {args.chart}")
    return EXIT_OK
