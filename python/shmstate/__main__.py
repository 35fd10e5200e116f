"""`python -m shmstate stubgen NAME [-o FILE]`: a `.pyi` for an object's
stored type; `list` and `inspect NAME` print JSON."""

import argparse
import json
import sys

import shmstate


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m shmstate")
    sub = parser.add_subparsers(dest="command", required=True)
    stub = sub.add_parser("stubgen", help="a .pyi with a class per struct and enum of NAME's stored schema")
    stub.add_argument("name")
    stub.add_argument("-o", "--output", help="the file to write (stdout without it)")
    sub.add_parser("list", help="the objects in /dev/shm, as JSON")
    inspect = sub.add_parser("inspect", help="one object, as JSON")
    inspect.add_argument("name")
    args = parser.parse_args(argv)
    try:
        if args.command == "stubgen":
            text = shmstate.stubgen(args.name, args.output)
            if args.output is None:
                sys.stdout.write(text)
        elif args.command == "list":
            print(json.dumps(shmstate.list(), indent=2))
        else:
            print(json.dumps(shmstate.inspect(args.name), indent=2))
    except shmstate.Error as e:
        print(f"{type(e).__name__}: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
