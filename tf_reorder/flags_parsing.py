"""absl flag parsing for the command-line tool and the benchmark binaries.

It defines no flags itself, so any absl app can import it.

Example:

    from tf_reorder.flags_parsing import flags_parser

    app.run(main, flags_parser=flags_parser("graph_pass_speed.py"))
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

from absl import flags


def flags_parser(prog: str) -> Callable[[Sequence[str]], list[str]]:
    """An ``app.run`` flags parser: a bad flag is a usage error (one line, exit status 2).

    absl's --help, --helpshort, --helpfull and --helpxml print the help and exit
    with status 1 while parsing; asking for help is not an error here, so they
    exit with 0. (Parsing errors are `flags.Error`, never SystemExit.)
    """
    def parse(argv: Sequence[str]) -> list[str]:
        try:
            return flags.FLAGS(list(argv))
        except flags.Error as error:
            lines = [line.strip() for line in str(error).splitlines() if line.strip()]
            message = lines[0] if lines else type(error).__name__
            print(f"{prog}: error: {message} (see {prog} --help)", file=sys.stderr)
            sys.exit(2)
        except SystemExit as done:
            sys.exit(0 if done.code == 1 else done.code)

    return parse
