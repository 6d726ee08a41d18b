"""Tests that boot the tiny real guest under libvirtd; see support.py."""
