"""The contract tests; collected when ``--polyvisor-uri`` is given."""
