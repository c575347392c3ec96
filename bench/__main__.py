"""`python -m bench [--scale small|full] [--only 1,2] [--sizes 10000,100000] [--tenants 10,100]`."""

import argparse
import os
import sys

import django


def _numbers(text):
    return [int(part.replace("_", "")) for part in text.split(",") if part.strip()]


def main(argv=None):
    parser = argparse.ArgumentParser(prog="bench", description=__doc__)
    parser.add_argument("--scale", choices=["small", "full"], default="small")
    parser.add_argument("--only", type=_numbers, help="rows to run, e.g. 1,2,6 (default: all)")
    parser.add_argument("--sizes", type=_numbers, help="customer counts instead of the scale's")
    parser.add_argument("--tenants", type=_numbers, help="tenant counts for row 7 instead of the scale's")
    parser.add_argument(
        "--idle-tenants", type=_numbers, help="row 11's idle tenant counts instead of the scale's"
    )
    parser.add_argument("--import-sizes", type=_numbers, help="row 1's CSV sizes (default: --sizes)")
    parser.add_argument("--out", help="results directory (default bench/results)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch tenants (to look at the data)")
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="start from the data tenant and row 11's idle tenants an earlier --keep run left",
    )
    args = parser.parse_args(argv)

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "crm_project.settings")
    # Measured as production runs: no per-query bookkeeping of DEBUG.
    os.environ.setdefault("DEBUG", "false")

    django.setup()
    from bench import runner  # noqa: PLC0415  (imports models: after django.setup() above)

    report = runner.run(
        scale=args.scale,
        only=args.only,
        sizes=args.sizes,
        tenants=args.tenants,
        import_sizes=args.import_sizes,
        idle_tenants=args.idle_tenants,
        out_dir=args.out or runner.RESULTS_DIR,
        keep=args.keep,
        reuse=args.reuse,
    )
    broken = [row.key for row in report.rows if row.status == "error"]
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
