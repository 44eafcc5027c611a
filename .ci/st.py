"""schemathesis's command line, with one CPython 3.11 bug worked around.

Under Python 3.11.7, `ast.parse` can raise "SystemError: AST constructor
recursion depth mismatch" when called deep in a recursion; hypothesis calls
it only to describe a filter's lambda for its own messages, and the error
then aborts schemathesis on whichever operation was being generated. A
description is not needed to test anything, so a failed one becomes a
placeholder. Nothing else changes.
"""

import sys

import hypothesis.internal.lambda_sources as lambda_sources

_describe = lambda_sources._lambda_description


def _lambda_description(f, *args, **kwargs):
    try:
        return _describe(f, *args, **kwargs)
    except SystemError:
        return "lambda: <source not shown>"


lambda_sources._lambda_description = _lambda_description

from schemathesis.cli import schemathesis  # noqa: E402

if __name__ == "__main__":
    sys.argv[0] = "schemathesis"
    sys.exit(schemathesis())
