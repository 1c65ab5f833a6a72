"""Networks: reusable blocks in ``blocks``, one file per network, ``registry`` by name."""

from hemato.models.registry import available, build_model, get, register

__all__ = ["available", "build_model", "get", "register"]
