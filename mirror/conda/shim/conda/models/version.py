"""`conda.models.version.VersionOrder`, backed by rattler's implementation of conda versions."""

from functools import total_ordering

from rattler import Version


@total_ordering
class VersionOrder:
    def __init__(self, vstr):
        self.vstr = str(vstr)
        self._version = Version(self.vstr)

    def __eq__(self, other):
        return self._version == _coerce(other)._version

    def __lt__(self, other):
        return self._version < _coerce(other)._version

    def __hash__(self):
        return hash(self.vstr)

    def __str__(self):
        return self.vstr

    def __repr__(self):
        return f"VersionOrder({self.vstr!r})"


def _coerce(value):
    return value if isinstance(value, VersionOrder) else VersionOrder(value)
