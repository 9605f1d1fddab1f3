"""Per-component parameter groups: apply an optimizer config's ``components`` settings."""

from __future__ import annotations

from typing import Any

from vfp.protocols import ParamGroups
from vfp_il_components.optim.specs import AdamWFamilyConfig

__all__ = ["configure_groups"]


def configure_groups(config: AdamWFamilyConfig, param_groups: ParamGroups) -> list[dict[str, Any]]:
    """Copies of ``param_groups`` with ``lr`` and ``weight_decay`` set for each component.

    ``lr`` is ``config.lr * lr_scale``; ``weight_decay`` is the component's override, else a value the
    trainer put in the group, else ``config.weight_decay``. A name in ``config.components`` that matches
    no group is an error (a typo would otherwise silently leave a component at the default settings).
    """
    names = [str(group.get("name", "")) for group in param_groups]
    unknown = sorted(set(config.components) - set(names))
    if unknown:
        raise ValueError(
            f"optimizer {config.type!r}: 'components' names {', '.join(map(repr, unknown))}, but the parameter "
            f"groups it trains are: {', '.join(map(repr, names)) or 'none'}"
        )
    groups: list[dict[str, Any]] = []
    for name, group in zip(names, param_groups, strict=True):
        settings = config.components.get(name)
        configured = dict(group)
        configured["params"] = list(group["params"])
        configured["lr"] = config.lr * (settings.lr_scale if settings else 1.0)
        if settings is not None and settings.weight_decay is not None:
            configured["weight_decay"] = settings.weight_decay
        else:
            configured.setdefault("weight_decay", config.weight_decay)
        groups.append(configured)
    return groups
