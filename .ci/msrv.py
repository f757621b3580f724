#!/usr/bin/env python3
"""Fails when a dependency needs a newer Rust than the crate's rust-version.

No older toolchain can be installed on CI, so the MSRV is checked from the
lockfile instead: for each feature set (default, --all-features,
--no-default-features) it walks the resolved graph from tower-par through
normal and build dependencies (what a user compiles; dev-dependencies only
matter for this repository's tests and are reported, not enforced) and
compares every package's declared `rust_version` with the crate's own.

Usage: python3 .ci/msrv.py [PACKAGE]   (default package: tower-par)
"""
import json
import subprocess
import sys

FEATURE_SETS = {
    "default": [],
    "all features": ["--all-features"],
    "no default features": ["--no-default-features"],
}


def version(text):
    parts = [int(p) for p in text.split(".")]
    return tuple(parts + [0] * (3 - len(parts)))


def metadata(args):
    out = subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--locked", *args],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(out)


def walk(meta, root_id, kinds):
    nodes = {n["id"]: n for n in meta["resolve"]["nodes"]}
    seen, todo = set(), [root_id]
    while todo:
        node = nodes[todo.pop()]
        for dep in node["deps"]:
            if any(k["kind"] in kinds for k in dep["dep_kinds"]):
                if dep["pkg"] not in seen:
                    seen.add(dep["pkg"])
                    todo.append(dep["pkg"])
    return seen


def main():
    name = sys.argv[1] if len(sys.argv) > 1 else "tower-par"
    failed = False
    for label, args in FEATURE_SETS.items():
        meta = metadata(args)
        pkgs = {p["id"]: p for p in meta["packages"]}
        root = next(p for p in meta["packages"] if p["name"] == name and p["source"] is None)
        if not root.get("rust_version"):
            print(f"{name}: no rust-version in Cargo.toml")
            return 1
        msrv = version(root["rust_version"])
        # Build scripts and proc macros run on the same toolchain: enforced too.
        shipped = walk(meta, root["id"], {None, "build"})
        dev_only = walk(meta, root["id"], {None, "build", "dev"}) - shipped
        too_new = sorted(
            (version(pkgs[i]["rust_version"]), pkgs[i]["name"], pkgs[i]["version"])
            for i in shipped
            if pkgs[i].get("rust_version") and version(pkgs[i]["rust_version"]) > msrv
        )
        newest = max(
            ((version(pkgs[i]["rust_version"]), pkgs[i]["name"]) for i in shipped if pkgs[i].get("rust_version")),
            default=((0, 0, 0), "-"),
        )
        dev_newest = max(
            ((version(pkgs[i]["rust_version"]), pkgs[i]["name"]) for i in dev_only if pkgs[i].get("rust_version")),
            default=((0, 0, 0), "-"),
        )
        fmt = lambda v: ".".join(map(str, v))
        print(
            f"{label}: {len(shipped)} packages, rust-version {root['rust_version']}, "
            f"newest requirement {fmt(newest[0])} ({newest[1]}); "
            f"dev-only newest {fmt(dev_newest[0])} ({dev_newest[1]})"
        )
        for v, pkg, ver in too_new:
            print(f"  FAIL {pkg} {ver} needs Rust {fmt(v)} > {root['rust_version']}")
            failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
