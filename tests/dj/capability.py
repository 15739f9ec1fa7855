"""What one account can do through DataJoint, as one JSON object on stdout.

Run by tests/it/datajoint.rs with the interpreter of the DataJoint virtual
environment the xtask makes (SPYGLASS_IT_PYTHON). Connection settings and
passwords come from the environment only, never from argv:

    DJ_HOST, DJ_PORT, DJ_USER   the server and the account
    DJ_PASS                     its password
    DJ_NEW_PASS                 a new password (for set_password)

Each argument is one attempt, LABEL=KIND[:ARG], run in order:

    login:ENVVAR    dj.conn(..., reset=True) with the password in $ENVVAR and
                    DataJoint's default TLS setting (use_tls=None, "preferred");
                    later attempts use the last connection that worked
    login_plain:ENVVAR
                    the same with use_tls=False (what a user of a server
                    without TLS has to set: with PyMySQL 1.2, DataJoint 0.14's
                    default asks for TLS and fails without falling back)
    read:DB.TABLE   fetch every row of an existing table (a FreeTable)
    write:DB        dj.Schema(DB), declare a Manual table in it, insert a row
                    and fetch it back
    set_password:ENVVAR
                    dj.set_password($ENVVAR, update_config=False)

The output maps each LABEL to {"ok": true, ...} or
{"ok": false, "error": CLASS, "code": SERVER_ERROR_CODE_OR_NULL, "message": ...}.
The server error code is looked up through the exception's causes, because
DataJoint re-raises access errors as its own DataJointError.
"""

import json
import os
import sys

import datajoint as dj


def server_code(exc):
    """The MySQL error number behind exc, following __cause__/__context__."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        args = getattr(exc, "args", ())
        if args and isinstance(args[0], int):
            return args[0]
        exc = exc.__cause__ or exc.__context__
    return None


def failure(exc):
    return {
        "ok": False,
        "error": type(exc).__name__,
        "code": server_code(exc),
        "message": str(exc),
    }


def login(envvar, use_tls=None):
    host = os.environ["DJ_HOST"]
    port = os.environ["DJ_PORT"]
    return dj.conn(
        host=f"{host}:{port}",
        user=os.environ["DJ_USER"],
        password=os.environ[envvar],
        reset=True,
        use_tls=use_tls,
    )


def read(connection, full_name):
    db, table = full_name.split(".", 1)
    t = dj.FreeTable(connection, f"`{db}`.`{table}`")
    rows = t.fetch(as_dict=True)
    return {"ok": True, "rows": len(rows)}


def write(connection, db):
    schema = dj.Schema(db, connection=connection)

    class Probe(dj.Manual):
        definition = """
        # a row written through DataJoint by a server test
        owner: varchar(64)
        ---
        note: varchar(64)
        """

    schema(Probe)
    me = os.environ["DJ_USER"]
    row = {"owner": me, "note": f"written by {me}"}
    Probe.insert1(row)
    back = (Probe & {"owner": me}).fetch1()
    if dict(back) != row:
        raise AssertionError(f"fetched {back!r}, inserted {row!r}")
    return {"ok": True}


def set_password(connection, envvar):
    dj.set_password(os.environ[envvar], connection=connection, update_config=False)
    return {"ok": True}


def main(argv):
    out = {}
    connection = None
    for arg in argv:
        label, _, attempt = arg.partition("=")
        kind, _, value = attempt.partition(":")
        try:
            if kind in ("login", "login_plain"):
                connection = login(value, use_tls=False if kind == "login_plain" else None)
                out[label] = {"ok": True}
                continue
            if connection is None:
                out[label] = {"ok": False, "error": "NoConnection", "code": None,
                              "message": "no login worked before this attempt"}
                continue
            if kind == "read":
                out[label] = read(connection, value)
            elif kind == "write":
                out[label] = write(connection, value)
            elif kind == "set_password":
                out[label] = set_password(connection, value)
            else:
                print(f"capability.py: unknown attempt {arg!r}", file=sys.stderr)
                return 2
        except Exception as exc:  # every outcome is reported, the test judges it
            out[label] = failure(exc)
    print(json.dumps(out, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
