"""``invertkit zoo``: the named offline models, where each comes from and whether it is present."""

from __future__ import annotations

import argparse
import json

from ..generators.zoo import ZOO


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("zoo", help="list the named pretrained generators that work offline",
                       description="List the named pretrained generators (zoo models) that work offline: what each is, "
                       "where its weights come from and whether they are present here. Pass a name as -g NAME.")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..encoders.shipped import shipped_encoders

    encoders = shipped_encoders()
    rows = []
    for name in ZOO:
        entry = ZOO.get(name)
        path = entry.locate()
        rows.append(
            {
                "name": name,
                "present": path is not None,
                "path": str(path) if path else None,
                "resolution": entry.resolution,
                "channels": entry.channels,
                "spaces": list(entry.spaces),
                "description": entry.description,
                "source": entry.source,
                "how_to_get": entry.how_to_get,
                "encoders": encoders.get(name, []),
            }
        )
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for r in rows:
        status = f"present: {r['path']}" if r["present"] else f"missing: {r['how_to_get']}"
        print(f"{r['name']}\n  {r['description']}\n  source: {r['source']}\n  {status}")
        if r["encoders"]:
            print(f"  shipped encoders: {', '.join(r['encoders'])} (--method encoder / restyle / hybrid / pti)")
    return 0
