"""`python -m benchmarks`: run every case (or one), print the table, write the JSON.

    python -m benchmarks [--quick] [--case NAME] [--markdown] [--out FILE] [--cache DIR] [--keep]

Every figure is voxbatch's against a baseline measured in the same run on the same machine;
voxbatch and the emulator run as real processes (`voxbatch process`, `voxbatch run`,
`voxbatch emulator`). --quick runs the same cases on short files: a smoke run, not figures.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import machine, report
from benchmarks.cases import CASES
from benchmarks.context import FULL, QUICK, Context
from voxbatch.media.ffmpeg import find_ffmpeg

HERE = Path(__file__).resolve().parent


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="short files: a smoke run")
    parser.add_argument(
        "--case", choices=list(CASES), action="append", help="run only this case (repeatable)"
    )
    parser.add_argument(
        "--markdown", action="store_true", help="print the table as the README shows it"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=HERE / "results.json",
        help="JSON results (default: %(default)s)",
    )
    parser.add_argument(
        "--cache", type=Path, default=HERE / ".cache", help="generated audio, kept between runs"
    )
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder (homes, logs)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    ffmpeg = find_ffmpeg()
    described = machine.describe(ffmpeg)
    scratch = Path(tempfile.mkdtemp(prefix="voxbatch-bench-"))
    ctx = Context(
        ffmpeg=ffmpeg, cache=args.cache, scratch=scratch, sizes=QUICK if args.quick else FULL
    )
    names = args.case or list(CASES)
    rows: list[report.Row] = []
    failed: list[str] = []
    started = time.monotonic()
    try:
        for name in names:
            try:
                rows += CASES[name](ctx)
            except Exception as exc:  # one broken case must not lose the others' figures
                failed.append(name)
                ctx.say(f"[{name}] failed: {type(exc).__name__}: {exc}")
    finally:
        if args.keep or failed:
            ctx.say(f"scratch kept: {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    options = {
        "quick": args.quick,
        "cases": names,
        "failed": failed,
        "sizes": vars(ctx.sizes),
        "total_s": round(time.monotonic() - started, 1),
    }
    report.write_json(args.out, rows, described, options)
    print(
        report.markdown_table(rows, described, quick=args.quick)
        if args.markdown
        else report.text_table(rows)
    )
    ctx.say(f"results: {args.out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
