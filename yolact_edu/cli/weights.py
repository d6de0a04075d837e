"""``yolact-edu weights``: list and download the original implementation's checkpoints."""
from __future__ import annotations

import sys

from .common import formatter, non_negative_int


def add_parser(sub) -> None:
    weights = sub.add_parser("weights", help="list or download the official checkpoints",
                             formatter_class=formatter,
                             epilog="examples:\n  yolact-edu weights list\n"
                                    "  yolact-edu weights download yolact_resnet50 --dir weights/\n"
                                    "  yolact-edu weights download all")
    wsub = weights.add_subparsers(dest="weights_command", required=True, metavar="ACTION")
    wsub.add_parser("list", help="released checkpoints, their URLs and whether they are here")
    download = wsub.add_parser("download", help="fetch checkpoints (resumable, verified by loading)",
                               formatter_class=formatter,
                               epilog="examples:\n  yolact-edu weights download yolact_base\n"
                                      "  yolact-edu weights download all --dir weights/")
    download.add_argument("names", nargs="+", help="config names, or 'all'")
    download.add_argument("--dir", help="target folder (default: $YOLACT_EDU_HOME/weights or "
                                        "~/.cache/yolact_edu/weights)")
    download.add_argument("--base-url", help="mirror serving the files as BASE_URL/FILE_NAME")
    download.add_argument("--force", action="store_true", help="download again even if present")
    download.add_argument("--retries", type=non_negative_int, default=3)


def run(args) -> int:
    from ..weights import OFFICIAL_FILES, download_official, official_url, weights_dir

    if args.weights_command == "list":
        here = weights_dir()
        for name, filename in OFFICIAL_FILES.items():
            status = "downloaded" if (here / filename).is_file() else "not downloaded"
            print(f"{name:22s} {filename:38s} {status}\n{'':22s} {official_url(name)}")
        print(f"folder: {here}  (yolact_im400 has no released checkpoint)")
        return 0
    names = list(OFFICIAL_FILES) if args.names == ["all"] else args.names
    unknown = [n for n in names if n not in OFFICIAL_FILES]
    if unknown:
        print(f"error: no released checkpoint for {', '.join(unknown)}; "
              f"choose from {', '.join(OFFICIAL_FILES)} or 'all'", file=sys.stderr)
        return 2
    for name in names:
        path = download_official(name, args.dir, base_url=args.base_url, overwrite=args.force,
                                 retries=args.retries)
        print(f"{name}: {path}")
    return 0


__all__ = ["add_parser", "run"]
