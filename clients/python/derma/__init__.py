"""derma: a Python client for the derma device-control service (dermad).

    import derma
    with derma.connect("127.0.0.1:50051") as client:
        print([d.name for d in client.devices()])

See derma.client (connect, Client), derma.lease (Lease), derma.runs (RunHandle),
derma.telemetry (stream items) and derma.errors (one exception class per ErrorReason).
The generated messages and stubs are derma.v1.*_pb2 and derma.sim.v1.*_pb2 (run
clients/python/generate.py, or build the CMake target derma_python_client).
"""
try:
    from derma.v1 import device_control_pb2 as _generated  # noqa: F401
except ImportError as missing:  # a fresh checkout: nothing generated yet
    raise ImportError("derma: the generated modules (derma/v1/*_pb2.py) are missing; run "
                      "clients/python/generate.py or build the CMake target "
                      "derma_python_client") from missing

try:
    from derma._version import __version__
except ImportError:  # generate.py ran without --version (by hand, outside the CMake build)
    __version__ = "0+unknown"

from derma import errors
from derma.audit import AuditRecord
from derma.client import Client, connect
from derma.devices import Cartridge, Device, Fault, Parameter
from derma.errors import DermaError
from derma.lease import Lease
from derma.runs import Ledger, Run, RunHandle
from derma.telemetry import (Event, Gap, Heartbeat, Sample, Snapshot, Synced,
                             TelemetryStream)

__all__ = [
    "__version__", "connect", "Client", "Lease", "Device", "Fault", "Parameter", "Cartridge", "Run",
    "RunHandle", "Ledger", "Sample", "Event", "Snapshot", "Synced", "Heartbeat", "Gap",
    "TelemetryStream", "DermaError", "errors", "AuditRecord",
]
