"""cocotb benches, one module per DUT (``tb_<unit>.py``), and their shared machinery.

Only :mod:`sim.tb.common` and the bench modules import cocotb; this package module stays
importable outside a simulator so the runner can share :data:`CONFIG_ENV` with the benches.
"""

#: Environment variable naming the bench configuration JSON written by :func:`sim.runner.run`.
CONFIG_ENV = "SPIKEFORGE_COSIM_CONFIG"
