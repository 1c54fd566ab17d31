"""The `sidrec` command (`python -m sidrec ...` too). `--version` / `-V` answers without importing torch."""

import sys


def main() -> None:
    if sys.argv[1:] in (["--version"], ["-V"]):
        from sidrec import version_text

        print(version_text())
        return
    from sidrec.cli import app

    app(prog_name="sidrec")


if __name__ == "__main__":
    main()
