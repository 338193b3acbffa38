"""The gate's one error (also exported by `gate.interface`), in a module with no imports: the scan
path raises it before Trivy starts, when nothing else of the gate is loaded yet."""


class GateError(Exception):
    """The gate could not decide (exit 2): the message is the cause, in one line a user can act on."""
