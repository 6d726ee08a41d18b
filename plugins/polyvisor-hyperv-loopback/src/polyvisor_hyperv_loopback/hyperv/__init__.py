"""The Hyper-V model: the in-memory host (:class:`HyperVHost`) and the rooms it is made of.

``state`` holds what every room shares (VMs, switches, files, the lock); ``lifecycle`` (New-VM, Set-VM,
Remove-VM), ``power`` (the state machine), ``checkpoints``, ``disks`` (VHD files, chains, merges), ``drives``,
``network``, ``guest`` (shutdown and KVP behaviour) and ``display`` (screens through WMI) model the verbs;
``memory`` and ``storage`` the memory and
file operations of the provisioning cmdlets; ``records`` and ``labels`` the values they share.
"""

from .host import HyperVHost
from .lifecycle import require_generation_2
from .records import (
    DEFAULT_SWITCH_ID,
    GUEST_BEHAVIOURS,
    GUEST_LABEL,
    SECURE_BOOT_TEMPLATES,
    AlreadyInState,
    DvdDriveRecord,
    HardDiskRecord,
    NetAdapterRecord,
    NetworkAdapterRecord,
    SnapshotRecord,
    SwitchRecord,
    VMConfig,
    VMRecord,
)

__all__ = [
    "DEFAULT_SWITCH_ID",
    "GUEST_BEHAVIOURS",
    "GUEST_LABEL",
    "SECURE_BOOT_TEMPLATES",
    "AlreadyInState",
    "DvdDriveRecord",
    "HardDiskRecord",
    "HyperVHost",
    "NetAdapterRecord",
    "NetworkAdapterRecord",
    "SnapshotRecord",
    "SwitchRecord",
    "VMConfig",
    "VMRecord",
    "require_generation_2",
]
