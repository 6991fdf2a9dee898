"""The demo: a synthetic 4D-STEM data set and one pass of the classic analyses over it.

The synthetic sample is a lattice of atomic columns scanned by a convergent beam. At each scan
position the detector sees the bright-field disk, shifted towards the nearest columns (the
electric field deflects the beam) and dimmed by scattering, plus a halo of scattered electrons
at high angles, where the columns are; counts follow Poisson statistics. So the virtual bright
field shows the columns dark, the annular dark field shows them bright, and the centre of mass
shows a field pointing at them, with a divergence peaked on them.

Generation streams chunks of frames to a raw file (memory stays bounded whatever the size) and is
vectorised per chunk: disk templates at quarter-pixel phases are sliced at integer offsets, and
Poisson counts are drawn by inverse transform from a precomputed table indexed by the quantised
expected count and 14 random bits.
"""

from libertem_gpu.demo.files import DemoData, demo_layout, write_demo_data
from libertem_gpu.demo.run import DemoReport, run_demo
from libertem_gpu.demo.synthetic import generate_frames
from libertem_gpu.sizes import format_size, parse_size

__all__ = [
    "DemoData",
    "DemoReport",
    "demo_layout",
    "format_size",
    "generate_frames",
    "parse_size",
    "run_demo",
    "write_demo_data",
]
