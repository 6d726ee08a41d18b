"""``minimal://``: a backend with only the methods every backend must implement, and no optional feature.

It exists to prove that the conformance kit demands nothing beyond the required methods: a backend like this one
must pass the whole kit, every case it cannot run skipping with the capability it lacks. It is a test
distribution of its own (``tests/kit/minimal-backend``), installed by the kit's CI runs, never by polyvisor.
"""
