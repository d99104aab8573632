"""A faithful fake Canvas: seeded institution, the Sections API endpoints, throttling, faults, ground truth.

    async with Simulator(Institution.generate(seed=1, courses=20), SimOptions()) as sim:
        ...  # GET f"{sim.base_url}/api/v1/accounts/self/courses" with Authorization: Bearer ADMIN_TOKEN
"""

from exporter.sim.auth import ADMIN, ADMIN_TOKEN, NOSIS, NOSIS_TOKEN, Permissions
from exporter.sim.bucket import BucketParams, LeakyBucket
from exporter.sim.faults import Faults
from exporter.sim.institution import Institution
from exporter.sim.options import SimOptions
from exporter.sim.server import SimStats, Simulator, run_simulator
from exporter.sim.truth import AccountScope, CourseScope, Truth, compare, ground_truth

__all__ = [
    "ADMIN", "ADMIN_TOKEN", "NOSIS", "NOSIS_TOKEN", "AccountScope", "BucketParams", "CourseScope", "Faults",
    "Institution", "LeakyBucket", "Permissions", "SimOptions", "SimStats", "Simulator", "Truth", "compare",
    "ground_truth", "run_simulator",
]
