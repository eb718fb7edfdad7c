"""``make demo``: the nightly pipeline end to end on the shipped real data, then where to look."""

from __future__ import annotations

import json
import sys

from flows.retrain import nightly_flow
from flows.settings import locations


def main() -> int:
    where = locations()
    if not where.source_data.is_dir():
        sys.stderr.write(f"error: no source data at {where.source_data}; set MMOPS_SOURCE_DATA\n")
        return 1
    result = nightly_flow()
    print(json.dumps(result, indent=1, default=str))
    print(
        f"\nDone. Validated bars: {where.bars}\nFeatures: {where.features}\n"
        f"Data Docs: {where.gx_root}/gx/uncommitted/data_docs/local_site/index.html\n"
        f"MLflow: {where.tracking_uri} (`.venv/bin/mlflow ui --backend-store-uri {where.tracking_uri}`)\n"
        f"Optuna studies: {where.optuna_storage}\n"
        "Next: `.venv/bin/mmops registry status`, `mmops gate --version N`, `mmops approve ...`, `mmops serve`."
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
