"""``env`` components of vfp-il-components (see docs/environments.md).

The synthetic tasks: :mod:`.specs` (light) registers them, :mod:`.synthetic` (numpy, gymnasium: the
extra ``[envs]``) implements them. MetaWorld: :mod:`.metaworld` (light) registers it, its
implementation needs the extra ``[metaworld]``.
"""
