"""Entry point from a checkout: `python cli.py ...` runs the scalelab CLI without installing."""

from scalelab.cli import app

if __name__ == "__main__":
    app()
