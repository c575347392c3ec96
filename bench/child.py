"""Work that runs in its own process so its peak memory is its own: `python -m bench.child import
<schema> <csv>` prints one JSON line with the seconds, the import's report and the peak RSS."""

import json
import os
import resource
import sys
import time

import django


def main(argv):
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "crm_project.settings")

    django.setup()
    from django_tenants.utils import schema_context  # noqa: PLC0415  (reads settings at import: after django.setup() above)

    command = argv[0]
    if command != "import":
        sys.exit(f"unknown command {command!r}")
    schema, path = argv[1], argv[2]
    from customers.importer import import_customers_csv  # noqa: PLC0415  (imports models: after django.setup() above)

    before_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    with schema_context(schema):
        started = time.perf_counter()
        report = import_customers_csv(path_or_file=path)
        seconds = time.perf_counter() - started
    print(
        json.dumps(
            {
                "seconds": seconds,
                "rows": report.rows,
                "created": report.created,
                "updated": report.updated,
                "failed": report.failed,
                "errors": [list(error) for error in report.errors[:5]],
                "rss_before_mb": before_mb,
                "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1:])
