// SPDX-License-Identifier: MIT
pragma solidity ^0.8.21;

import {IERC20Metadata} from "@openzeppelin/contracts/token/ERC20/extensions/IERC20Metadata.sol";
import {AggregatorV3Interface} from "@chainlink/contracts/src/v0.8/shared/interfaces/AggregatorV3Interface.sol";

/// @title Local stand-in for Compound III (compound-finance/comet, contracts/Comet.sol)
/// @notice Written here (Comet has no installable package) for the keeper's tests. It keeps Comet's
///  external signatures, events, custom errors, storage structs, units and integer maths for what a
///  liquidation keeper uses: base supply / borrow with principal + indices and the kinked rate model,
///  collateral supply / withdraw, isLiquidatable, absorb, buyCollateral / quoteCollateral, reserves.
///  Left out: rewards tracking, permissions (supplyTo/From, allow), transfers, the extension delegate
///  (its views collateralBalanceOf / totalsBasic / *Scale are implemented here directly) and the proxy
///  (storage is initialised in the constructor). Asset configs live in a storage array instead of
///  Comet's packed immutables, with the same 4-decimal factor precision.
contract CometStandIn {
    /* ---------- Types (CometConfiguration.sol, CometCore.sol, CometStorage.sol) ---------- */

    /// CometConfiguration.AssetConfig
    struct AssetConfig {
        address asset;
        address priceFeed;
        uint8 decimals;
        uint64 borrowCollateralFactor;
        uint64 liquidateCollateralFactor;
        uint64 liquidationFactor;
        uint128 supplyCap;
    }

    /// CometConfiguration.Configuration without the extension delegate and reward-tracking fields.
    struct Configuration {
        address governor;
        address pauseGuardian;
        address baseToken;
        address baseTokenPriceFeed;
        uint64 supplyKink;
        uint64 supplyPerYearInterestRateSlopeLow;
        uint64 supplyPerYearInterestRateSlopeHigh;
        uint64 supplyPerYearInterestRateBase;
        uint64 borrowKink;
        uint64 borrowPerYearInterestRateSlopeLow;
        uint64 borrowPerYearInterestRateSlopeHigh;
        uint64 borrowPerYearInterestRateBase;
        uint64 storeFrontPriceFactor;
        uint104 baseBorrowMin;
        uint104 targetReserves;
        AssetConfig[] assetConfigs;
    }

    /// CometCore.AssetInfo (what getAssetInfo returns; factors scaled by FACTOR_SCALE)
    struct AssetInfo {
        uint8 offset;
        address asset;
        address priceFeed;
        uint64 scale;
        uint64 borrowCollateralFactor;
        uint64 liquidateCollateralFactor;
        uint64 liquidationFactor;
        uint128 supplyCap;
    }

    struct TotalsBasic {
        uint64 baseSupplyIndex;
        uint64 baseBorrowIndex;
        uint64 trackingSupplyIndex;
        uint64 trackingBorrowIndex;
        uint104 totalSupplyBase;
        uint104 totalBorrowBase;
        uint40 lastAccrualTime;
        uint8 pauseFlags;
    }

    struct TotalsCollateral {
        uint128 totalSupplyAsset;
        uint128 _reserved;
    }

    struct UserBasic {
        int104 principal;
        uint64 baseTrackingIndex;
        uint64 baseTrackingAccrued;
        uint16 assetsIn;
        uint8 _reserved;
    }

    struct UserCollateral {
        uint128 balance;
        uint128 _reserved;
    }

    struct LiquidatorPoints {
        uint32 numAbsorbs;
        uint64 numAbsorbed;
        uint128 approxSpend;
        uint32 _reserved;
    }

    /* ---------- Events (CometMainInterface.sol) ---------- */

    event Supply(address indexed from, address indexed dst, uint amount);
    event Transfer(address indexed from, address indexed to, uint amount);
    event Withdraw(address indexed src, address indexed to, uint amount);
    event SupplyCollateral(address indexed from, address indexed dst, address indexed asset, uint amount);
    event TransferCollateral(address indexed from, address indexed to, address indexed asset, uint amount);
    event WithdrawCollateral(address indexed src, address indexed to, address indexed asset, uint amount);
    event AbsorbDebt(address indexed absorber, address indexed borrower, uint basePaidOut, uint usdValue);
    event AbsorbCollateral(
        address indexed absorber, address indexed borrower, address indexed asset, uint collateralAbsorbed, uint usdValue
    );
    event BuyCollateral(address indexed buyer, address indexed asset, uint baseAmount, uint collateralAmount);
    event PauseAction(bool supplyPaused, bool transferPaused, bool withdrawPaused, bool absorbPaused, bool buyPaused);
    event WithdrawReserves(address indexed to, uint amount);

    /* ---------- Custom errors (Comet's, same names so selectors match) ---------- */

    error BadAsset();
    error BadDecimals();
    error BadDiscount();
    error BadPrice();
    error BorrowCFTooLarge();
    error BorrowTooSmall();
    error InsufficientReserves();
    error LiquidateCFTooLarge();
    error NotCollateralized();
    error NotForSale();
    error NotLiquidatable();
    error Paused();
    error SupplyCapExceeded();
    error TooManyAssets();
    error TooMuchSlippage();
    error TransferInFailed();
    error TransferOutFailed();
    error Unauthorized();
    // CometMath
    error InvalidUInt64();
    error InvalidUInt104();
    error InvalidUInt128();
    error InvalidInt104();
    error InvalidInt256();
    error NegativeNumber();

    /* ---------- Constants (CometCore.sol) ---------- */

    uint8 internal constant MAX_ASSETS = 15;
    uint8 internal constant MAX_BASE_DECIMALS = 18;
    uint64 internal constant MAX_COLLATERAL_FACTOR = FACTOR_SCALE;
    uint8 internal constant PAUSE_SUPPLY_OFFSET = 0;
    uint8 internal constant PAUSE_TRANSFER_OFFSET = 1;
    uint8 internal constant PAUSE_WITHDRAW_OFFSET = 2;
    uint8 internal constant PAUSE_ABSORB_OFFSET = 3;
    uint8 internal constant PAUSE_BUY_OFFSET = 4;
    uint8 internal constant PRICE_FEED_DECIMALS = 8;
    uint64 internal constant SECONDS_PER_YEAR = 31_536_000;
    uint64 internal constant BASE_INDEX_SCALE = 1e15;
    uint64 internal constant PRICE_SCALE = uint64(10 ** PRICE_FEED_DECIMALS);
    uint64 internal constant FACTOR_SCALE = 1e18;

    /* ---------- Configuration (immutable, as in Comet) ---------- */

    address public immutable governor;
    address public immutable pauseGuardian;
    address public immutable baseToken;
    address public immutable baseTokenPriceFeed;
    uint public immutable supplyKink;
    uint public immutable supplyPerSecondInterestRateSlopeLow;
    uint public immutable supplyPerSecondInterestRateSlopeHigh;
    uint public immutable supplyPerSecondInterestRateBase;
    uint public immutable borrowKink;
    uint public immutable borrowPerSecondInterestRateSlopeLow;
    uint public immutable borrowPerSecondInterestRateSlopeHigh;
    uint public immutable borrowPerSecondInterestRateBase;
    /// The fraction of the liquidation penalty that goes to buyers of collateral instead of the protocol
    uint public immutable storeFrontPriceFactor;
    uint public immutable baseScale;
    uint public immutable baseBorrowMin;
    /// Collateral is for sale only while base reserves are below this
    uint public immutable targetReserves;
    uint8 public immutable decimals;
    uint8 public immutable numAssets;

    AssetInfo[] internal assetInfos;

    /* ---------- Storage (CometStorage.sol) ---------- */

    uint64 internal baseSupplyIndex;
    uint64 internal baseBorrowIndex;
    uint64 internal trackingSupplyIndex; // always 0: rewards are not tracked here
    uint64 internal trackingBorrowIndex; // always 0
    uint104 internal totalSupplyBase;
    uint104 internal totalBorrowBase;
    uint40 internal lastAccrualTime;
    uint8 internal pauseFlags;

    mapping(address => TotalsCollateral) public totalsCollateral;
    mapping(address => UserBasic) public userBasic;
    mapping(address => mapping(address => UserCollateral)) public userCollateral;
    mapping(address => LiquidatorPoints) public liquidatorPoints;

    constructor(Configuration memory config) {
        uint8 decimals_ = IERC20Metadata(config.baseToken).decimals();
        if (decimals_ > MAX_BASE_DECIMALS) revert BadDecimals();
        if (config.storeFrontPriceFactor > FACTOR_SCALE) revert BadDiscount();
        if (config.assetConfigs.length > MAX_ASSETS) revert TooManyAssets();
        if (AggregatorV3Interface(config.baseTokenPriceFeed).decimals() != PRICE_FEED_DECIMALS) revert BadDecimals();

        governor = config.governor;
        pauseGuardian = config.pauseGuardian;
        baseToken = config.baseToken;
        baseTokenPriceFeed = config.baseTokenPriceFeed;
        storeFrontPriceFactor = config.storeFrontPriceFactor;
        decimals = decimals_;
        baseScale = 10 ** decimals_;
        baseBorrowMin = config.baseBorrowMin;
        targetReserves = config.targetReserves;

        // Comet stores per-second rates: per-year rate / SECONDS_PER_YEAR (truncated).
        supplyKink = config.supplyKink;
        supplyPerSecondInterestRateSlopeLow = config.supplyPerYearInterestRateSlopeLow / SECONDS_PER_YEAR;
        supplyPerSecondInterestRateSlopeHigh = config.supplyPerYearInterestRateSlopeHigh / SECONDS_PER_YEAR;
        supplyPerSecondInterestRateBase = config.supplyPerYearInterestRateBase / SECONDS_PER_YEAR;
        borrowKink = config.borrowKink;
        borrowPerSecondInterestRateSlopeLow = config.borrowPerYearInterestRateSlopeLow / SECONDS_PER_YEAR;
        borrowPerSecondInterestRateSlopeHigh = config.borrowPerYearInterestRateSlopeHigh / SECONDS_PER_YEAR;
        borrowPerSecondInterestRateBase = config.borrowPerYearInterestRateBase / SECONDS_PER_YEAR;

        numAssets = uint8(config.assetConfigs.length);
        for (uint8 i = 0; i < config.assetConfigs.length; i++) {
            assetInfos.push(toAssetInfo(config.assetConfigs[i], i));
        }

        // Comet.initializeStorage()
        lastAccrualTime = getNowInternal();
        baseSupplyIndex = BASE_INDEX_SCALE;
        baseBorrowIndex = BASE_INDEX_SCALE;
    }

    /// Comet.getPackedAssetInternal checks, then the precision getAssetInfo gives back: factors keep
    /// 4 decimals (multiples of FACTOR_SCALE / 1e4) and the supply cap whole units of the asset.
    function toAssetInfo(AssetConfig memory c, uint8 i) internal view returns (AssetInfo memory) {
        if (AggregatorV3Interface(c.priceFeed).decimals() != PRICE_FEED_DECIMALS) revert BadDecimals();
        if (IERC20Metadata(c.asset).decimals() != c.decimals) revert BadDecimals();
        if (c.borrowCollateralFactor >= c.liquidateCollateralFactor) revert BorrowCFTooLarge();
        if (c.liquidateCollateralFactor > MAX_COLLATERAL_FACTOR) revert LiquidateCFTooLarge();
        uint64 descale = FACTOR_SCALE / 1e4;
        uint64 scale = uint64(10 ** c.decimals);
        AssetInfo memory info = AssetInfo({
            offset: i,
            asset: c.asset,
            priceFeed: c.priceFeed,
            scale: scale,
            borrowCollateralFactor: c.borrowCollateralFactor / descale * descale,
            liquidateCollateralFactor: c.liquidateCollateralFactor / descale * descale,
            liquidationFactor: c.liquidationFactor / descale * descale,
            supplyCap: c.supplyCap / scale * scale
        });
        if (info.borrowCollateralFactor >= info.liquidateCollateralFactor) revert BorrowCFTooLarge();
        return info;
    }

    /* ---------- Asset info, prices ---------- */

    function getAssetInfo(uint8 i) public view returns (AssetInfo memory) {
        if (i >= numAssets) revert BadAsset();
        return assetInfos[i];
    }

    function getAssetInfoByAddress(address asset) public view returns (AssetInfo memory) {
        for (uint8 i = 0; i < numAssets; i++) {
            if (assetInfos[i].asset == asset) return assetInfos[i];
        }
        revert BadAsset();
    }

    /// Chainlink answer as is: a USD price with PRICE_FEED_DECIMALS (8) decimals.
    function getPrice(address priceFeed) public view returns (uint256) {
        (, int price,,,) = AggregatorV3Interface(priceFeed).latestRoundData();
        if (price <= 0) revert BadPrice();
        return uint256(price);
    }

    /* ---------- Interest ---------- */

    function getNowInternal() internal view returns (uint40) {
        return uint40(block.timestamp);
    }

    /// Simple (non-compounding) accrual per accrual step: index += index x rate x dt / FACTOR_SCALE,
    /// with the rates at the utilization of the stored indices.
    function accruedInterestIndices(uint timeElapsed) internal view returns (uint64, uint64) {
        uint64 baseSupplyIndex_ = baseSupplyIndex;
        uint64 baseBorrowIndex_ = baseBorrowIndex;
        if (timeElapsed > 0) {
            uint utilization = getUtilization();
            baseSupplyIndex_ += safe64(mulFactor(baseSupplyIndex_, getSupplyRate(utilization) * timeElapsed));
            baseBorrowIndex_ += safe64(mulFactor(baseBorrowIndex_, getBorrowRate(utilization) * timeElapsed));
        }
        return (baseSupplyIndex_, baseBorrowIndex_);
    }

    function accrueInternal() internal {
        uint40 now_ = getNowInternal();
        uint timeElapsed = uint256(now_ - lastAccrualTime);
        if (timeElapsed > 0) {
            (baseSupplyIndex, baseBorrowIndex) = accruedInterestIndices(timeElapsed);
            lastAccrualTime = now_;
        }
    }

    /// Comet also settles the account's reward tracking here; without rewards only the market accrues.
    function accrueAccount(address) external {
        accrueInternal();
    }

    /// Kinked model: base + slopeLow x min(u, kink) + slopeHigh x max(u - kink, 0), per second.
    function getSupplyRate(uint utilization) public view returns (uint64) {
        if (utilization <= supplyKink) {
            return safe64(supplyPerSecondInterestRateBase + mulFactor(supplyPerSecondInterestRateSlopeLow, utilization));
        }
        return safe64(
            supplyPerSecondInterestRateBase + mulFactor(supplyPerSecondInterestRateSlopeLow, supplyKink)
                + mulFactor(supplyPerSecondInterestRateSlopeHigh, utilization - supplyKink)
        );
    }

    function getBorrowRate(uint utilization) public view returns (uint64) {
        if (utilization <= borrowKink) {
            return safe64(borrowPerSecondInterestRateBase + mulFactor(borrowPerSecondInterestRateSlopeLow, utilization));
        }
        return safe64(
            borrowPerSecondInterestRateBase + mulFactor(borrowPerSecondInterestRateSlopeLow, borrowKink)
                + mulFactor(borrowPerSecondInterestRateSlopeHigh, utilization - borrowKink)
        );
    }

    /// totalBorrow / totalSupply (FACTOR_SCALE), at the stored (not accrued) indices.
    function getUtilization() public view returns (uint) {
        uint totalSupply_ = presentValueSupply(baseSupplyIndex, totalSupplyBase);
        uint totalBorrow_ = presentValueBorrow(baseBorrowIndex, totalBorrowBase);
        if (totalSupply_ == 0) return 0;
        return totalBorrow_ * FACTOR_SCALE / totalSupply_;
    }

    /* ---------- Principal <-> present value (CometCore.sol) ---------- */

    function presentValue(int104 principalValue_) internal view returns (int256) {
        if (principalValue_ >= 0) {
            return signed256(presentValueSupply(baseSupplyIndex, uint104(principalValue_)));
        }
        return -signed256(presentValueBorrow(baseBorrowIndex, uint104(-principalValue_)));
    }

    /// principal x index / BASE_INDEX_SCALE, rounded down (both sides)
    function presentValueSupply(uint64 baseSupplyIndex_, uint104 principalValue_) internal pure returns (uint256) {
        return uint256(principalValue_) * baseSupplyIndex_ / BASE_INDEX_SCALE;
    }

    function presentValueBorrow(uint64 baseBorrowIndex_, uint104 principalValue_) internal pure returns (uint256) {
        return uint256(principalValue_) * baseBorrowIndex_ / BASE_INDEX_SCALE;
    }

    function principalValue(int256 presentValue_) internal view returns (int104) {
        if (presentValue_ >= 0) {
            return signed104(principalValueSupply(baseSupplyIndex, uint256(presentValue_)));
        }
        return -signed104(principalValueBorrow(baseBorrowIndex, uint256(-presentValue_)));
    }

    /// Supply principal rounds down ...
    function principalValueSupply(uint64 baseSupplyIndex_, uint256 presentValue_) internal pure returns (uint104) {
        return safe104((presentValue_ * BASE_INDEX_SCALE) / baseSupplyIndex_);
    }

    /// ... borrow principal rounds up (in the protocol's favour).
    function principalValueBorrow(uint64 baseBorrowIndex_, uint256 presentValue_) internal pure returns (uint104) {
        return safe104((presentValue_ * BASE_INDEX_SCALE + baseBorrowIndex_ - 1) / baseBorrowIndex_);
    }

    /* ---------- Balances, reserves ---------- */

    /// Reserves = base held - total supply + total borrow (present values at the accrued indices).
    function getReserves() public view returns (int) {
        (uint64 baseSupplyIndex_, uint64 baseBorrowIndex_) = accruedInterestIndices(getNowInternal() - lastAccrualTime);
        uint balance = IERC20Metadata(baseToken).balanceOf(address(this));
        uint totalSupply_ = presentValueSupply(baseSupplyIndex_, totalSupplyBase);
        uint totalBorrow_ = presentValueBorrow(baseBorrowIndex_, totalBorrowBase);
        return signed256(balance) - signed256(totalSupply_) + signed256(totalBorrow_);
    }

    /// Collateral the protocol owns (absorbed, not yet bought): held minus what users supplied.
    function getCollateralReserves(address asset) public view returns (uint) {
        return IERC20Metadata(asset).balanceOf(address(this)) - totalsCollateral[asset].totalSupplyAsset;
    }

    function totalSupply() external view returns (uint256) {
        (uint64 baseSupplyIndex_,) = accruedInterestIndices(getNowInternal() - lastAccrualTime);
        return presentValueSupply(baseSupplyIndex_, totalSupplyBase);
    }

    function totalBorrow() external view returns (uint256) {
        (, uint64 baseBorrowIndex_) = accruedInterestIndices(getNowInternal() - lastAccrualTime);
        return presentValueBorrow(baseBorrowIndex_, totalBorrowBase);
    }

    function balanceOf(address account) public view returns (uint256) {
        (uint64 baseSupplyIndex_,) = accruedInterestIndices(getNowInternal() - lastAccrualTime);
        int104 principal = userBasic[account].principal;
        return principal > 0 ? presentValueSupply(baseSupplyIndex_, unsigned104(principal)) : 0;
    }

    /// Debt at the accrued borrow index (unlike isLiquidatable, which uses the stored index).
    function borrowBalanceOf(address account) public view returns (uint256) {
        (, uint64 baseBorrowIndex_) = accruedInterestIndices(getNowInternal() - lastAccrualTime);
        int104 principal = userBasic[account].principal;
        return principal < 0 ? presentValueBorrow(baseBorrowIndex_, unsigned104(-principal)) : 0;
    }

    /// CometExt views
    function collateralBalanceOf(address account, address asset) external view returns (uint128) {
        return userCollateral[account][asset].balance;
    }

    function totalsBasic() external view returns (TotalsBasic memory) {
        return TotalsBasic(
            baseSupplyIndex, baseBorrowIndex, trackingSupplyIndex, trackingBorrowIndex,
            totalSupplyBase, totalBorrowBase, lastAccrualTime, pauseFlags
        );
    }

    function baseIndexScale() external pure returns (uint64) { return BASE_INDEX_SCALE; }
    function factorScale() external pure returns (uint64) { return FACTOR_SCALE; }
    function priceScale() external pure returns (uint64) { return PRICE_SCALE; }
    function maxAssets() external pure returns (uint8) { return MAX_ASSETS; }

    /* ---------- Health ---------- */

    /// Comet's loop in isBorrowCollateralized / isLiquidatable: liquidity (PRICE_SCALE USD) =
    /// present balance x base price / baseScale + sum of mulFactor(mulPrice(collateral, price, scale), CF),
    /// at the stored indices (no accrual), stopping as soon as it is non-negative.
    function liquidityInternal(address account, bool liquidateCF) internal view returns (int liquidity) {
        UserBasic memory user = userBasic[account];
        if (user.principal >= 0) return 0;
        liquidity = signedMulPrice(presentValue(user.principal), getPrice(baseTokenPriceFeed), uint64(baseScale));
        for (uint8 i = 0; i < numAssets && liquidity < 0; i++) {
            if (!isInAsset(user.assetsIn, i)) continue;
            AssetInfo memory asset = assetInfos[i];
            uint value = mulPrice(userCollateral[account][asset.asset].balance, getPrice(asset.priceFeed), asset.scale);
            liquidity += signed256(
                mulFactor(value, liquidateCF ? asset.liquidateCollateralFactor : asset.borrowCollateralFactor)
            );
        }
    }

    function isBorrowCollateralized(address account) public view returns (bool) {
        return liquidityInternal(account, false) >= 0;
    }

    function isLiquidatable(address account) public view returns (bool) {
        return liquidityInternal(account, true) < 0;
    }

    /* ---------- Supply / withdraw ---------- */

    function supply(address asset, uint amount) external {
        if (isSupplyPaused()) revert Paused();
        if (asset == baseToken) {
            if (amount == type(uint256).max) amount = borrowBalanceOf(msg.sender); // repay all
            supplyBase(msg.sender, msg.sender, amount);
        } else {
            supplyCollateral(msg.sender, msg.sender, asset, safe128(amount));
        }
    }

    function supplyBase(address from, address dst, uint256 amount) internal {
        doTransferIn(baseToken, from, amount);
        accrueInternal();

        UserBasic memory dstUser = userBasic[dst];
        int104 dstPrincipal = dstUser.principal;
        int104 dstPrincipalNew = principalValue(presentValue(dstPrincipal) + signed256(amount));
        (uint104 repayAmount, uint104 supplyAmount) = repayAndSupplyAmount(dstPrincipal, dstPrincipalNew);

        totalSupplyBase += supplyAmount;
        totalBorrowBase -= repayAmount;
        userBasic[dst].principal = dstPrincipalNew;

        emit Supply(from, dst, amount);
        if (supplyAmount > 0) emit Transfer(address(0), dst, presentValueSupply(baseSupplyIndex, supplyAmount));
    }

    function supplyCollateral(address from, address dst, address asset, uint128 amount) internal {
        doTransferIn(asset, from, amount);

        AssetInfo memory assetInfo = getAssetInfoByAddress(asset);
        TotalsCollateral memory totals = totalsCollateral[asset];
        totals.totalSupplyAsset += amount;
        if (totals.totalSupplyAsset > assetInfo.supplyCap) revert SupplyCapExceeded();

        uint128 dstCollateral = userCollateral[dst][asset].balance;
        uint128 dstCollateralNew = dstCollateral + amount;
        totalsCollateral[asset] = totals;
        userCollateral[dst][asset].balance = dstCollateralNew;
        updateAssetsIn(dst, assetInfo, dstCollateral, dstCollateralNew);

        emit SupplyCollateral(from, dst, asset, amount);
    }

    /// Withdrawing base beyond the supplied balance borrows (Comet has no separate borrow()).
    function withdraw(address asset, uint amount) external {
        if (isWithdrawPaused()) revert Paused();
        if (asset == baseToken) {
            if (amount == type(uint256).max) amount = balanceOf(msg.sender);
            withdrawBase(msg.sender, msg.sender, amount);
        } else {
            withdrawCollateral(msg.sender, msg.sender, asset, safe128(amount));
        }
    }

    function withdrawBase(address src, address to, uint256 amount) internal {
        accrueInternal();

        UserBasic memory srcUser = userBasic[src];
        int104 srcPrincipal = srcUser.principal;
        int256 srcBalance = presentValue(srcPrincipal) - signed256(amount);
        int104 srcPrincipalNew = principalValue(srcBalance);
        (uint104 withdrawAmount, uint104 borrowAmount) = withdrawAndBorrowAmount(srcPrincipal, srcPrincipalNew);

        totalSupplyBase -= withdrawAmount;
        totalBorrowBase += borrowAmount;
        userBasic[src].principal = srcPrincipalNew;

        if (srcBalance < 0) {
            if (uint256(-srcBalance) < baseBorrowMin) revert BorrowTooSmall();
            if (!isBorrowCollateralized(src)) revert NotCollateralized();
        }

        doTransferOut(baseToken, to, amount);

        emit Withdraw(src, to, amount);
        if (withdrawAmount > 0) emit Transfer(src, address(0), presentValueSupply(baseSupplyIndex, withdrawAmount));
    }

    function withdrawCollateral(address src, address to, address asset, uint128 amount) internal {
        uint128 srcCollateral = userCollateral[src][asset].balance;
        uint128 srcCollateralNew = srcCollateral - amount;
        totalsCollateral[asset].totalSupplyAsset -= amount;
        userCollateral[src][asset].balance = srcCollateralNew;
        updateAssetsIn(src, getAssetInfoByAddress(asset), srcCollateral, srcCollateralNew);

        // No accrual first: the gap between borrow and liquidate CFs covers it (as in Comet).
        if (!isBorrowCollateralized(src)) revert NotCollateralized();

        doTransferOut(asset, to, amount);
        emit WithdrawCollateral(src, to, asset, amount);
    }

    /// Split of a principal increase into debt repaid and new supply.
    function repayAndSupplyAmount(int104 oldPrincipal, int104 newPrincipal) internal pure returns (uint104, uint104) {
        if (newPrincipal < oldPrincipal) return (0, 0);
        if (newPrincipal <= 0) return (uint104(newPrincipal - oldPrincipal), 0);
        if (oldPrincipal >= 0) return (0, uint104(newPrincipal - oldPrincipal));
        return (uint104(-oldPrincipal), uint104(newPrincipal));
    }

    /// Split of a principal decrease into supply withdrawn and new debt.
    function withdrawAndBorrowAmount(int104 oldPrincipal, int104 newPrincipal) internal pure returns (uint104, uint104) {
        if (newPrincipal > oldPrincipal) return (0, 0);
        if (newPrincipal >= 0) return (uint104(oldPrincipal - newPrincipal), 0);
        if (oldPrincipal <= 0) return (0, uint104(oldPrincipal - newPrincipal));
        return (uint104(oldPrincipal), uint104(-newPrincipal));
    }

    /* ---------- Liquidation: absorb, then buyCollateral ---------- */

    /// Absorb underwater accounts onto the protocol; the caller only earns liquidator points.
    function absorb(address absorber, address[] calldata accounts) external {
        if (isAbsorbPaused()) revert Paused();
        uint startGas = gasleft();
        accrueInternal();
        for (uint i = 0; i < accounts.length; i++) {
            absorbInternal(absorber, accounts[i]);
        }
        uint gasUsed = startGas - gasleft();

        LiquidatorPoints memory points = liquidatorPoints[absorber];
        points.numAbsorbs++;
        points.numAbsorbed += safe64(accounts.length);
        points.approxSpend += safe128(gasUsed * block.basefee);
        liquidatorPoints[absorber] = points;
    }

    /// All collateral goes to the protocol (leaves totalsCollateral, so it becomes collateral reserves);
    /// the account is credited sum(value x liquidationFactor) in base, its debt is wiped and any
    /// excess stays as a supply balance; a shortfall is absorbed by the reserves.
    function absorbInternal(address absorber, address account) internal {
        if (!isLiquidatable(account)) revert NotLiquidatable();

        UserBasic memory accountUser = userBasic[account];
        int104 oldPrincipal = accountUser.principal;
        int256 oldBalance = presentValue(oldPrincipal);
        uint16 assetsIn = accountUser.assetsIn;
        uint256 basePrice = getPrice(baseTokenPriceFeed);
        uint256 deltaValue = 0;

        for (uint8 i = 0; i < numAssets; i++) {
            if (!isInAsset(assetsIn, i)) continue;
            AssetInfo memory assetInfo = assetInfos[i];
            address asset = assetInfo.asset;
            uint128 seizeAmount = userCollateral[account][asset].balance;
            userCollateral[account][asset].balance = 0;
            totalsCollateral[asset].totalSupplyAsset -= seizeAmount;

            uint256 value = mulPrice(seizeAmount, getPrice(assetInfo.priceFeed), assetInfo.scale);
            deltaValue += mulFactor(value, assetInfo.liquidationFactor);
            emit AbsorbCollateral(absorber, account, asset, seizeAmount, value);
        }

        uint256 deltaBalance = divPrice(deltaValue, basePrice, uint64(baseScale));
        int256 newBalance = oldBalance + signed256(deltaBalance);
        if (newBalance < 0) newBalance = 0; // excess debt is absorbed by the reserves

        int104 newPrincipal = principalValue(newBalance);
        userBasic[account].principal = newPrincipal;
        userBasic[account].assetsIn = 0;

        // Reserves fall: total supply grows by the credit, total borrow drops by the debt.
        (uint104 repayAmount, uint104 supplyAmount) = repayAndSupplyAmount(oldPrincipal, newPrincipal);
        totalSupplyBase += supplyAmount;
        totalBorrowBase -= repayAmount;

        uint256 basePaidOut = unsigned256(newBalance - oldBalance);
        emit AbsorbDebt(absorber, account, basePaidOut, mulPrice(basePaidOut, basePrice, uint64(baseScale)));
        if (newPrincipal > 0) {
            emit Transfer(address(0), account, presentValueSupply(baseSupplyIndex, unsigned104(newPrincipal)));
        }
    }

    /// Buy absorbed collateral at the store-front discount, only while reserves are below target.
    function buyCollateral(address asset, uint minAmount, uint baseAmount, address recipient) external {
        if (isBuyPaused()) revert Paused();

        int reserves = getReserves();
        if (reserves >= 0 && uint(reserves) >= targetReserves) revert NotForSale();

        doTransferIn(baseToken, msg.sender, baseAmount);

        uint collateralAmount = quoteCollateral(asset, baseAmount);
        if (collateralAmount < minAmount) revert TooMuchSlippage();
        if (collateralAmount > getCollateralReserves(asset)) revert InsufficientReserves();

        doTransferOut(asset, recipient, safe128(collateralAmount));
        emit BuyCollateral(msg.sender, asset, baseAmount, collateralAmount);
    }

    /// discountFactor = storeFrontPriceFactor x (1 - liquidationFactor);
    /// collateral = basePrice x baseAmount x assetScale / (assetPrice x (1 - discountFactor)) / baseScale,
    /// each mulFactor and the two divisions truncating, in Comet's order.
    function quoteCollateral(address asset, uint baseAmount) public view returns (uint) {
        AssetInfo memory assetInfo = getAssetInfoByAddress(asset);
        uint256 assetPrice = getPrice(assetInfo.priceFeed);
        uint256 discountFactor = mulFactor(storeFrontPriceFactor, FACTOR_SCALE - assetInfo.liquidationFactor);
        uint256 assetPriceDiscounted = mulFactor(assetPrice, FACTOR_SCALE - discountFactor);
        uint256 basePrice = getPrice(baseTokenPriceFeed);
        return basePrice * baseAmount * assetInfo.scale / assetPriceDiscounted / baseScale;
    }

    /* ---------- Governance ---------- */

    function withdrawReserves(address to, uint amount) external {
        if (msg.sender != governor) revert Unauthorized();
        int reserves = getReserves();
        if (reserves < 0 || amount > unsigned256(reserves)) revert InsufficientReserves();
        doTransferOut(baseToken, to, amount);
        emit WithdrawReserves(to, amount);
    }

    function pause(bool supplyPaused, bool transferPaused, bool withdrawPaused, bool absorbPaused, bool buyPaused)
        external
    {
        if (msg.sender != governor && msg.sender != pauseGuardian) revert Unauthorized();
        pauseFlags = (toUInt8(supplyPaused) << PAUSE_SUPPLY_OFFSET) | (toUInt8(transferPaused) << PAUSE_TRANSFER_OFFSET)
            | (toUInt8(withdrawPaused) << PAUSE_WITHDRAW_OFFSET) | (toUInt8(absorbPaused) << PAUSE_ABSORB_OFFSET)
            | (toUInt8(buyPaused) << PAUSE_BUY_OFFSET);
        emit PauseAction(supplyPaused, transferPaused, withdrawPaused, absorbPaused, buyPaused);
    }

    function isSupplyPaused() public view returns (bool) { return pauseFlags & (uint8(1) << PAUSE_SUPPLY_OFFSET) != 0; }
    function isTransferPaused() public view returns (bool) { return pauseFlags & (uint8(1) << PAUSE_TRANSFER_OFFSET) != 0; }
    function isWithdrawPaused() public view returns (bool) { return pauseFlags & (uint8(1) << PAUSE_WITHDRAW_OFFSET) != 0; }
    function isAbsorbPaused() public view returns (bool) { return pauseFlags & (uint8(1) << PAUSE_ABSORB_OFFSET) != 0; }
    function isBuyPaused() public view returns (bool) { return pauseFlags & (uint8(1) << PAUSE_BUY_OFFSET) != 0; }

    /* ---------- Helpers (Comet.sol, CometMath.sol) ---------- */

    function isInAsset(uint16 assetsIn, uint8 assetOffset) internal pure returns (bool) {
        return assetsIn & (uint16(1) << assetOffset) != 0;
    }

    function updateAssetsIn(address account, AssetInfo memory assetInfo, uint128 initial, uint128 final_) internal {
        if (initial == 0 && final_ != 0) {
            userBasic[account].assetsIn |= (uint16(1) << assetInfo.offset);
        } else if (initial != 0 && final_ == 0) {
            userBasic[account].assetsIn &= ~(uint16(1) << assetInfo.offset);
        }
    }

    function doTransferIn(address asset, address from, uint amount) internal {
        if (!IERC20Metadata(asset).transferFrom(from, address(this), amount)) revert TransferInFailed();
    }

    function doTransferOut(address asset, address to, uint amount) internal {
        if (!IERC20Metadata(asset).transfer(to, amount)) revert TransferOutFailed();
    }

    /// n x factor / FACTOR_SCALE
    function mulFactor(uint n, uint factor) internal pure returns (uint) {
        return n * factor / FACTOR_SCALE;
    }

    /// fromScale quantity x price (8 dec) -> USD with 8 decimals
    function mulPrice(uint n, uint price, uint64 fromScale) internal pure returns (uint) {
        return n * price / fromScale;
    }

    function signedMulPrice(int n, uint price, uint64 fromScale) internal pure returns (int) {
        return n * signed256(price) / int256(uint256(fromScale));
    }

    /// USD (8 dec) / price -> toScale quantity
    function divPrice(uint n, uint price, uint64 toScale) internal pure returns (uint) {
        return n * toScale / price;
    }

    function safe64(uint n) internal pure returns (uint64) {
        if (n > type(uint64).max) revert InvalidUInt64();
        return uint64(n);
    }

    function safe104(uint n) internal pure returns (uint104) {
        if (n > type(uint104).max) revert InvalidUInt104();
        return uint104(n);
    }

    function safe128(uint n) internal pure returns (uint128) {
        if (n > type(uint128).max) revert InvalidUInt128();
        return uint128(n);
    }

    function signed104(uint104 n) internal pure returns (int104) {
        if (n > uint104(type(int104).max)) revert InvalidInt104();
        return int104(n);
    }

    function signed256(uint256 n) internal pure returns (int256) {
        if (n > uint256(type(int256).max)) revert InvalidInt256();
        return int256(n);
    }

    function unsigned104(int104 n) internal pure returns (uint104) {
        if (n < 0) revert NegativeNumber();
        return uint104(n);
    }

    function unsigned256(int256 n) internal pure returns (uint256) {
        if (n < 0) revert NegativeNumber();
        return uint256(n);
    }

    function toUInt8(bool x) internal pure returns (uint8) {
        return x ? 1 : 0;
    }
}
