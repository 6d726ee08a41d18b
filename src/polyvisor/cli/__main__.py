"""``python -m polyvisor.cli``: the same as the ``polyvisor`` console script."""

from polyvisor.cli import main

main()
