"""One folder per protocol: how the local world deploys it (``add_to_world``, except Aave V3, the
world's lending base) and where the keeper's abis/<kind>/ files come from (``keeper_abis``)."""
