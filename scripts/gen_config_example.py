#!/usr/bin/env python3
"""Writes config.example.toml from the config models (keeper/config_example.py): edit a field's
description or example in keeper/config.py or keeper/protocols/<kind>/config.py, then run this.

  scripts/gen_config_example.py           write config.example.toml
  scripts/gen_config_example.py --check   exit 1 when config.example.toml differs from the models
"""
import sys
from pathlib import Path

from keeper.config_example import example_toml

EXAMPLE = Path(__file__).resolve().parents[1] / "config.example.toml"


def main() -> int:
    text = example_toml()
    if "--check" in sys.argv[1:]:
        if EXAMPLE.read_text() != text:
            print(f"{EXAMPLE.name} differs from the config models: run scripts/gen_config_example.py", file=sys.stderr)
            return 1
        return 0
    EXAMPLE.write_text(text)
    print(f"wrote {EXAMPLE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
