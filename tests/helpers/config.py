"""Config-file helpers shared by tests."""




def uncomment_examples(text: str) -> str:
    """The example with every commented-out table ("# [[protocols]]" ... up to a blank line) enabled."""
    out, inside = [], False
    for line in text.splitlines():
        if line in ("# [[protocols]]", "# [pull_oracle]", "# [swap]", "# [flash]"):
            inside = True
        elif not line.strip():
            inside = False
        out.append(line[2:] if inside and line.startswith("# ") else line)
    return "\n".join(out) + "\n"


