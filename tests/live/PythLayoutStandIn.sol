// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

/// @dev Test stand-in of the real Pyth contract's price store (no npm package ships the deployed
///      Pyth contract, only the SDK's MockPyth, whose layout differs): pyth-crosschain's
///      PythUpgradable puts OpenZeppelin upgradeable bases first (Initializable in slot 0, then the
///      50-slot gaps of Context, ERC1967Upgrade and UUPS and Ownable's owner and 49-slot gap: slots
///      1-200), then PythState's State struct, whose 13th field is
///      `mapping(bytes32 => PythInternalStructs.PriceInfo) latestPriceInfo` (slot 213).
///      getPriceUnsafe / getEmaPriceUnsafe answer from it as the real contract does.
contract PythLayoutStandIn {
    struct PriceInfo {
        uint64 publishTime;
        int32 expo;
        int64 price;
        uint64 conf;
        int64 emaPrice;
        uint64 emaConf;
    }

    struct Price {
        int64 price;
        uint64 conf;
        int32 expo;
        uint256 publishTime;
    }

    error PriceFeedNotFound();

    uint256[201] private _upgradeableBases;
    uint256[12] private _stateBeforePrices;
    mapping(bytes32 => PriceInfo) private latestPriceInfo;

    function setPriceInfo(bytes32 id, PriceInfo calldata info) external {
        latestPriceInfo[id] = info;
    }

    function getPriceUnsafe(bytes32 id) external view returns (Price memory) {
        PriceInfo storage info = latestPriceInfo[id];
        if (info.publishTime == 0) revert PriceFeedNotFound();
        return Price(info.price, info.conf, info.expo, info.publishTime);
    }

    function getEmaPriceUnsafe(bytes32 id) external view returns (Price memory) {
        PriceInfo storage info = latestPriceInfo[id];
        if (info.publishTime == 0) revert PriceFeedNotFound();
        return Price(info.emaPrice, info.emaConf, info.expo, info.publishTime);
    }
}
