"""Run a phasefield scenario: ``python run.py [scenario=...] [key=value ...]`` (Hydra; ``-m`` sweeps)."""
import hydra

from phasefield.cli import main as run_config
from phasefield.cli import register_resolvers

register_resolvers()


@hydra.main(version_base=None, config_path="configs", config_name="config")
def main(cfg):
    run_config(cfg)


if __name__ == "__main__":
    main()
