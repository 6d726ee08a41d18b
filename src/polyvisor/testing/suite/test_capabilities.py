"""Capabilities are declared once: derived from what the backend class implements, and only narrowed by probing."""

from __future__ import annotations

from collections.abc import Callable

from polyvisor import VM, Connection, Feature
from polyvisor.backend import METHOD_FEATURES, OPTION_FEATURES, Backend, feature_declaration_problems

VMFactory = Callable[..., VM]


def test_the_backend_class_declares_its_features_consistently(polyvisor_connection: Connection) -> None:
    cls = type(polyvisor_connection.backend)
    assert feature_declaration_problems(cls) == []
    assert all(isinstance(feature, Feature) for feature in cls.option_features)
    assert cls.option_features <= set(OPTION_FEATURES)


def test_method_features_are_exactly_the_overridden_methods(polyvisor_connection: Connection) -> None:
    cls = type(polyvisor_connection.backend)
    static = cls.static_features()
    for feature, methods in METHOD_FEATURES.items():
        overridden = all(getattr(cls, name) is not getattr(Backend, name) for name in methods)
        assert (feature in static) == overridden, (
            f"{feature.value}: declared {feature in static}, implemented {overridden}"
        )


def test_probing_only_narrows(polyvisor_connection: Connection, polyvisor_vm_factory: VMFactory) -> None:
    static = type(polyvisor_connection.backend).static_features()
    assert polyvisor_connection.capabilities.features <= static
    vm = polyvisor_vm_factory("caps")
    assert vm.capabilities().features <= polyvisor_connection.capabilities.features


def test_undeclared_method_features_raise_unsupported_naming_the_feature(polyvisor_connection: Connection) -> None:
    """A feature the class does not implement is refused by the core before any backend call."""
    import pytest

    from polyvisor import UnsupportedError

    caps = polyvisor_connection.capabilities
    if caps.supports(Feature.NETWORKS):
        assert isinstance(polyvisor_connection.networks(), list)
        return
    with pytest.raises(UnsupportedError) as caught:
        polyvisor_connection.networks()
    assert caught.value.feature is Feature.NETWORKS
