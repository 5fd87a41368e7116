"""The keeper's local world (a sibling of the runtime package): Anvil, offline solcjs, deployers of
the protocols' published contracts and of the stand-ins, the demo world and the demo. Works from a
checkout whose node tools are installed (``npm ci``: see scripts/setup)."""
