"""derma.testing: a simulated derma station for a lab's own tests.

    from derma.testing import start_dermad
    with start_dermad() as station:          # default fleet: pen-1, pen-2, stim-1, stim-2
        station.client.devices()

With pytest the plugin (derma.testing.pytest_plugin, registered through the `pytest11` entry
point, so installing the package is enough) provides the fixtures `derma_station` and
`derma_client`; see that module for its options.
"""
from derma.testing.station import (DEFAULT_FLEET, DermadError, Station, find_dermad,
                                   start_dermad)

__all__ = ["DEFAULT_FLEET", "DermadError", "Station", "find_dermad", "start_dermad"]
