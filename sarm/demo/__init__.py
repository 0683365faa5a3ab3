"""The Meta-World noisy-demonstration benchmark and the `sarm demo` job (needs the `metaworld` extra)."""
