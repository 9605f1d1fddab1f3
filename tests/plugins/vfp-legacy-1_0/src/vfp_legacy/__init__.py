"""A third-party vfp plugin written against contract 1.0, frozen: every vfp-core 1.x must keep it working.

It is tests/plugins/vfp-sample as it was at contract 1.0 (renamed), plus a callback that reads the
1.0 ``run`` context (``run.models``, ``run.trainer``, ``run.step``). Do not update it to newer names.
"""
