"""The run layer: everything between the pages/CLI and the smoothing engine.

- :mod:`.store`      the results store (SQLite): runs, rows, status, worker bookkeeping
- :mod:`.cohen_tsv`  Cohen et al.'s TSV certification logs: read, write, import into the store
- :mod:`.pipeline`   the per-dataset certification runner (config -> one certificate per input)
- :mod:`.jobs`       background runs: queue, worker process, cancel and resume
- :mod:`.ray_shards` the same run split into shards on a Ray cluster
- :mod:`.summary`    certified accuracy at radii, curves, table rows

The store's names are re-exported here (``from semsmooth_core.runs import Store``); the other
modules import torch and are imported by name.
"""

from semsmooth_core.runs.store import (DEFAULT_UNIT, ROW_FIELDS, STATUSES, Store, db_path, model_sha256,
                                       progress_info)
from semsmooth_core.runs.cohen_tsv import (COHEN_COLUMNS, export_tsv, import_tsv, load_rows, parse_time,
                                           parse_tsv)

__all__ = ["DEFAULT_UNIT", "ROW_FIELDS", "STATUSES", "Store", "db_path", "model_sha256", "progress_info",
           "COHEN_COLUMNS", "export_tsv", "import_tsv", "load_rows", "parse_time", "parse_tsv"]
