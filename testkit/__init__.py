"""What the tests and the benchmarks build and start: upstreams that behave like PyPI, conda
channels and registries (with their quirks), images, a Docker engine, PostgreSQL, Airlock itself,
and real pip/uv clients. Shared by `tests/` and `bench/`; not part of the installed product."""
