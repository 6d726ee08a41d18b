"""Metrics: a VM's counters (:mod:`~polyvisor.metrics.counters`) and rates from two samples
(:mod:`~polyvisor.metrics.rates`)."""

from polyvisor.metrics.counters import DiskCounters, MemoryCounters, NicCounters, VMStats
from polyvisor.metrics.rates import DiskRates, NicRates, VMRates, rates, rates_by_uuid

__all__ = [
    "DiskCounters",
    "DiskRates",
    "MemoryCounters",
    "NicCounters",
    "NicRates",
    "VMRates",
    "VMStats",
    "rates",
    "rates_by_uuid",
]
