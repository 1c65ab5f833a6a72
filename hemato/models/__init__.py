"""Networks: reusable blocks in ``blocks``, one file per network, ``registry`` by name."""

from hemato.models.registry import available, build_model, get, info, networks, register

__all__ = ["available", "build_model", "get", "info", "networks", "register"]
