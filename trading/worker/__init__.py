"""The quoting worker: online features, one signal request per tick, the shared quote decision,
the risk engine, a journal that loses no fill, and venues (paper replay now, ccxt next).

The worker knows the signal service only through :class:`trading.worker.types.SignalSource`;
``flows/`` wires :mod:`serving.client` in, so ``trading`` never imports ``serving``.
"""
