"""A DataJoint 0.14.10 writer for the cleanup race test (tests/it/cleanup.rs,
datajoint_inserting_while_apply_runs_never_names_a_moved_file).

Inserts AnalysisNwbfile rows (a filepath@analysis attribute) for files that
are already in the analysis store, through DataJoint itself, until the file
named by SPYGLASS_RACE_STOP exists. Connection from DJ_HOST, DJ_PORT, DJ_USER,
DJ_PASS; the store from SPYGLASS_RACE_STORE; the schemas (comma-separated)
from SPYGLASS_RACE_SCHEMAS; candidate paths (relative to the store), one a
line, from SPYGLASS_RACE_PATHS. Prints one JSON line per committed row:
{"t": unix seconds, "schema": ..., "rel": ...}, then a summary line.
"""

import json
import os
import random
import sys
import time

import datajoint as dj

store = os.environ["SPYGLASS_RACE_STORE"]
dj.config["database.host"] = os.environ["DJ_HOST"]
dj.config["database.port"] = int(os.environ["DJ_PORT"])
dj.config["database.user"] = os.environ["DJ_USER"]
dj.config["database.password"] = os.environ.get("DJ_PASS", "")
# MariaDB's sandbox offers no TLS (and DataJoint's default asks for it).
if os.environ.get("SPYGLASS_RACE_TLS") == "off":
    dj.config["database.use_tls"] = False
dj.config["safemode"] = False
dj.config["loglevel"] = "ERROR"
dj.config["stores"] = {
    "analysis": {"protocol": "file", "location": store, "stage": store},
}

seed = int(os.environ.get("SPYGLASS_RACE_SEED", "1"))
rng = random.Random(seed)
paths = [p for p in open(os.environ["SPYGLASS_RACE_PATHS"]).read().split("\n") if p]
stop = os.environ["SPYGLASS_RACE_STOP"]

tables = []
for db in os.environ["SPYGLASS_RACE_SCHEMAS"].split(","):
    schema = dj.Schema(db, create_schema=False, create_tables=False)

    @schema
    class AnalysisNwbfile(dj.Manual):
        definition = """
        analysis_file_name: varchar(64)
        ---
        analysis_file_abs_path: filepath@analysis
        """

    tables.append((db, AnalysisNwbfile))

print(json.dumps({"ready": True}), flush=True)
ok = failed = 0
first_error = None
seq = 0
while not os.path.exists(stop):
    seq += 1
    rel = rng.choice(paths)
    db, table = rng.choice(tables)
    name = f"dj{seed}_{seq}"
    try:
        table.insert1(
            {"analysis_file_name": name, "analysis_file_abs_path": os.path.join(store, rel)}
        )
    except Exception as e:  # FileNotFoundError, DataJointError, IntegrityError: no row
        failed += 1
        if first_error is None:
            first_error = f"{type(e).__name__}: {e}"
        continue
    ok += 1
    print(json.dumps({"t": time.time(), "schema": db, "rel": rel}), flush=True)
print(json.dumps({"ok": ok, "failed": failed, "first_error": first_error}), flush=True)
