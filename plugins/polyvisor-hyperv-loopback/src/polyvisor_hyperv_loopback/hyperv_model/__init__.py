"""The rooms of the in-memory Hyper-V host, composed by :class:`~polyvisor_hyperv_loopback.hyperv.HyperVHost`."""
