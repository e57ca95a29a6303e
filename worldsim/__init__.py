"""worldsim: robotics and world-model simulation on JAX.

Importing ``worldsim.envs`` registers the Gymnasium environments under the ``worldsim/``
namespace; ``worldsim.data`` records and loads trajectory datasets; ``worldsim.cli`` is the
``worldsim`` command.
"""

__version__ = "0.1.0"
