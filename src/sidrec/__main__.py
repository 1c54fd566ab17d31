"""`python -m sidrec ...` is the `sidrec` command."""

from sidrec.cli import app

app(prog_name="sidrec")
