#!/usr/bin/python
# Copyright (c) polyvisor developers
# MIT License (see the polyvisor repository's LICENSE)
"""Module: an image from the controller's disk in a pool of the hypervisor, uploaded only when it is not there."""

from __future__ import annotations

DOCUMENTATION = r"""
module: image
short_description: Upload a disk image into a storage pool (libvirt) or image folder (Hyper-V), once
version_added: "0.1.0"
author:
  - polyvisor developers (!UNKNOWN)
description:
  - Makes sure a pool of the hypervisor holds an image file of the machine the module runs on (usually the
    controller, with C(connection=local)), or does not, through the polyvisor library - libvirt's sparse volume
    upload (holes are not sent), Hyper-V's chunked upload checked with C(Get-FileHash) on the host. An upload that
    is cut off leaves nothing under the image's name.
  - Idempotent. An image of the same name is not uploaded again when it holds the same bytes - the same format
    and virtual size, and with O(compare=content) the same SHA-256 (read by downloading the volume to a
    temporary file next to the task's temporary files) - and one with other contents fails the task unless
    O(force) replaces it. Deleting an image a VM uses fails naming the VM (C(InUseError)).
  - Check mode predicts the outcome (the comparison included) without changing anything; diff mode shows the
    image before and after.
  - The result's RV(image.path) is what a VM spec's disk C(image) takes.
requirements:
  - polyvisor (Python library) with the backend of the hypervisor (polyvisor-libvirt, polyvisor-hyperv) on the
    managed node
extends_documentation_fragment:
  - polyvisor.hypervisors.connection
attributes:
  check_mode:
    description: Predicts whether the image would be uploaded, replaced or deleted, and changes nothing.
    support: full
  diff_mode:
    description: Shows the image (name, format, size, SHA-256) before and after.
    support: full
options:
  src:
    description:
      - The image file to upload (qcow2, raw, VHDX, VHD or ISO), on the machine the module runs on. Required with
        O(state=present).
    type: path
  name:
    description: The image's name in the pool; the file name of O(src) without it.
    type: str
  pool:
    description: The pool (image folder); the host's default pool without it.
    type: str
  state:
    description: Whether the image should be in the pool.
    type: str
    choices: [present, absent]
    default: present
  compare:
    description:
      - How an image already in the pool is compared with O(src). V(content) compares SHA-256 digests, which costs
        a download of the image (on hosts with the C(image-download) capability); V(size) trusts an image of the
        same name, format and virtual size.
      - Without it, V(content) where the host can send the image back, else V(size); RV(compared) says which.
    type: str
    choices: [content, size]
  force:
    description: Replace an image of the same name whose contents differ (delete it, then upload O(src)).
    type: bool
    default: false
  timeout:
    description: Seconds the upload (or the comparison's download) may take.
    type: float
    default: 3600
"""

EXAMPLES = r"""
- name: The base image in the lab pool, uploaded only if it is not there yet
  polyvisor.hypervisors.image:
    uri: qemu+ssh://root@kvm1.example.com/system
    pool: lab-images
    src: /srv/images/debian-12.qcow2
  register: base

- name: A VM whose disk is a linked clone of it
  polyvisor.hypervisors.vm:
    uri: qemu+ssh://root@kvm1.example.com/system
    name: web1
    spec:
      memory_mib: 1024
      disks:
        - image: "{{ base.image.path }}"
          clone: linked

- name: A VHDX on Hyper-V, replaced when the local file changed
  polyvisor.hypervisors.image:
    connection: hv01
    src: /srv/images/base.vhdx
    force: true
"""

RETURN = r"""
image:
  description: The image in the pool after the task (predicted in check mode); null once deleted.
  returned: success
  type: dict
  contains:
    name:
      description: Its name in the pool.
      type: str
      sample: debian-12.qcow2
    pool:
      description: Its pool.
      type: str
    path:
      description: Its path on the host, which a disk spec's C(image) takes (null when only predicted).
      type: str
    format:
      description: Its format.
      type: str
      sample: qcow2
    size_mib:
      description: Its virtual size, in MiB.
      type: int
    capacity:
      description: Its virtual size, in bytes.
      type: int
    allocation:
      description: Bytes it occupies on the host.
      type: int
    sha256:
      description: The SHA-256 of its bytes, when the task read or sent them.
      type: str
uploaded:
  description: Whether the task sent the image (false when it was already there, and in check mode).
  returned: success
  type: bool
compared:
  description: How an image already in the pool was compared (V(content) or V(size)); null when there was none.
  returned: success
  type: str
error_type:
  description: The class of polyvisor error that failed the task (C(AlreadyExistsError), C(InUseError), ...).
  returned: failure
  type: str
  sample: AlreadyExistsError
"""

import contextlib
import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any

from ansible_collections.polyvisor.hypervisors.plugins.module_utils.host_task import (
    connected,
    diffed,
    host_module,
    run_host_module,
)
from ansible_collections.polyvisor.hypervisors.plugins.module_utils.tasks import Module
from ansible_collections.polyvisor.hypervisors.plugins.module_utils.volumes import find_volume, shown, volume_facts

with contextlib.suppress(ImportError):  # run_module() reports it, with an install hint
    import polyvisor
    from polyvisor.storage import LocalImage, validate_volume_name

OPTIONS: dict[str, Any] = {
    "src": {"type": "path"},
    "name": {"type": "str"},
    "pool": {"type": "str"},
    "state": {"type": "str", "default": "present", "choices": ["present", "absent"]},
    "compare": {"type": "str", "choices": ["content", "size"]},
    "force": {"type": "bool", "default": False},
    "timeout": {"type": "float", "default": 3600.0},
}


def sha256(path: str | os.PathLike[str]) -> str:
    """The file's SHA-256, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1024 * 1024), b""):
            digest.update(chunk)
    return digest.hexdigest()


def remote_sha256(module: Module, conn: polyvisor.Connection, name: str, pool: str | None, timeout: float) -> str:
    """The SHA-256 of the image in the pool, downloaded into a temporary directory that is removed after."""
    with tempfile.TemporaryDirectory(prefix="polyvisor-image-", dir=module.tmpdir) as scratch:
        copy = conn.download_image(name, Path(scratch) / "copy", pool=pool, timeout=timeout)
        return sha256(copy)


def differs(
    module: Module, conn: polyvisor.Connection, local: LocalImage, digest: str, before: dict[str, Any]
) -> str | None:
    """How the image in the pool differs from the local file (None when it holds the same bytes); fills in
    ``before["sha256"]`` when it was read."""
    params = module.params
    before["compared"] = params["compare"]
    if params["compare"] is None:
        before["compared"] = "content" if conn.supports(polyvisor.Feature.IMAGE_DOWNLOAD) else "size"
    elif params["compare"] == "content":
        conn.capabilities.require(polyvisor.Feature.IMAGE_DOWNLOAD, host=conn.host)
    if before["format"] != local.format.value:
        return f"it is {before['format']}, the file is {local.format.value}"
    if before["capacity"] != local.virtual_size:
        return f"its virtual size is {before['capacity']} bytes, the file's {local.virtual_size}"
    if before["compared"] == "content":
        before["sha256"] = remote_sha256(module, conn, before["name"], params["pool"], params["timeout"])
        if before["sha256"] != digest:
            return f"its SHA-256 is {before['sha256']}, the file's {digest}"
    return None


def run(module: Module) -> dict[str, Any]:
    """Do the task; return its result."""
    params = module.params
    pool, timeout, src = params["pool"], params["timeout"], params["src"]
    if params["state"] == "present" and src is None:
        raise polyvisor.ValidationError("state: present uploads src; give src (a local image file)", field="src")
    if src is None and params["name"] is None:
        raise polyvisor.ValidationError("give name (or src, whose file name it defaults to)", field="name")
    name = validate_volume_name(params["name"] or Path(src).name)
    uploaded = False
    with connected(module) as conn:
        before = volume_facts(find_volume(conn, name, pool))
        after = before
        if params["state"] == "absent":
            if before is not None:
                after = None
                if not module.check_mode:
                    conn.delete_volume(name, pool=pool, timeout=timeout)
        else:
            local = LocalImage.open(src, "src")
            digest = sha256(local.path)
            conn.capabilities.require(polyvisor.Feature.IMAGE_UPLOAD, host=conn.host)
            why = differs(module, conn, local, digest, before) if before is not None else None
            if before is not None and why is not None and not params["force"]:
                raise polyvisor.AlreadyExistsError(
                    f"the pool already has an image named {name!r}, with other contents ({why}); give force: true "
                    "to replace it, or another name",
                    host=conn.host,
                )
            if before is None or why is not None:
                size_mib = -(-local.virtual_size // (1024 * 1024))
                after = {"name": name, "pool": pool, "path": None, "format": local.format.value, "size_mib": size_mib}
                if not module.check_mode:
                    if before is not None:
                        conn.delete_volume(name, pool=pool, timeout=timeout)
                    after = volume_facts(conn.upload_image(local.path, pool=pool, name=name, timeout=timeout))
                    uploaded = True
                after = {**(after or {}), "sha256": digest}
            else:
                after = {**before, "sha256": before.get("sha256")}  # the same image: left as it is
    compared = before.pop("compared", None) if before is not None else None
    if after is not None:
        after.pop("compared", None)
    result = diffed(module, shown(before, "sha256"), shown(after, "sha256"))
    return {**result, "image": after, "uploaded": uploaded, "compared": compared}


def main() -> None:
    """Entry point: parse the task's arguments, run it, report."""
    module = host_module(OPTIONS)
    run_host_module(module, run)


if __name__ == "__main__":
    main()
