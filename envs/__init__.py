"""worldsim environments, registered under the ``worldsim/`` Gymnasium namespace on import.

    >>> import gymnasium, worldsim.envs
    >>> env = gymnasium.make("worldsim/BlockPush-v0")

``make_oracle(env)`` returns the scripted demonstrator that lives beside each environment.
"""

from worldsim.envs.registry import ENV_IDS, check_env_id, make_oracle, register_all

register_all()

__all__ = ["ENV_IDS", "check_env_id", "make_oracle", "register_all"]
