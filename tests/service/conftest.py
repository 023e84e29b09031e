"""Fixtures of the service tests; the helpers live in service_fakes.py.

(tests/ is not a package, so helpers are imported by a unique module name,
`service_fakes`, which pytest's default import mode puts on sys.path.)
"""

from service_fakes import repo_dir  # noqa: F401 - a fixture
