// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ATokenStandIn, VariableDebtTokenStandIn} from "./PoolTokensStandIn.sol";

interface IAddressesProvider {
    function owner() external view returns (address);
    function getAddress(bytes32 id) external view returns (address);
    function getPriceOracle() external view returns (address);
}

interface IPriceOracleGetter {
    function getAssetPrice(address asset) external view returns (uint256);
}

/// Aave's numeric revert strings (protocol/libraries/helpers/Errors.sol; the same codes in the
/// 1.19.3 package and in aave-v3-origin v3.3).
library Errors {
    string internal constant CALLER_NOT_POOL_CONFIGURATOR = "10";
    string internal constant INVALID_AMOUNT = "26";
    string internal constant RESERVE_INACTIVE = "27";
    string internal constant RESERVE_FROZEN = "28";
    string internal constant RESERVE_PAUSED = "29";
    string internal constant BORROWING_NOT_ENABLED = "30";
    string internal constant STABLE_BORROWING_NOT_ENABLED = "31";
    string internal constant NOT_ENOUGH_AVAILABLE_USER_BALANCE = "32";
    string internal constant INVALID_INTEREST_RATE_MODE_SELECTED = "33";
    string internal constant COLLATERAL_BALANCE_IS_ZERO = "34";
    string internal constant HEALTH_FACTOR_LOWER_THAN_LIQUIDATION_THRESHOLD = "35";
    string internal constant COLLATERAL_CANNOT_COVER_NEW_BORROW = "36";
    string internal constant NO_DEBT_OF_SELECTED_TYPE = "39";
    string internal constant NO_EXPLICIT_AMOUNT_TO_REPAY_ON_BEHALF = "40";
    string internal constant HEALTH_FACTOR_NOT_BELOW_THRESHOLD = "45";
    string internal constant COLLATERAL_CANNOT_BE_LIQUIDATED = "46";
    string internal constant SPECIFIED_CURRENCY_NOT_BORROWED_BY_USER = "47";
    string internal constant LTV_VALIDATION_FAILED = "57";
    string internal constant RESERVE_ALREADY_INITIALIZED = "61";
}

/// @title Stand-in for the Aave V3 Pool with the v3.3 liquidation rules
/// @notice External ABI of @aave/core-v3 1.19.3 for what a liquidation keeper uses (supply, withdraw,
///  borrow, repay, liquidationCall, getUserAccountData, getReserveData with the 1.19.3 struct,
///  getUserConfiguration, getReservesList, getUserEMode, events), with the liquidation rules of
///  aave-dao/aave-v3-origin v3.3 (LiquidationLogic.executeLiquidationCall) and GenericLogic's account
///  maths. Left out: interest (indexes stay 1 ray), eMode (category 0 only), isolation mode, siloed
///  borrowing, caps, credit delegation, flash loans, the price oracle sentinel and the proxy.
///  One deviation asked for: the dust rule reverts with the custom error MustNotLeaveDust() (as from
///  v3.4) instead of v3.3's string "103".
contract PoolV33StandIn {
    using SafeERC20 for IERC20;

    /* ---------------- Types: DataTypes.sol of @aave/core-v3 1.19.3 ---------------- */
    enum InterestRateMode { NONE, STABLE, VARIABLE }

    struct ReserveConfigurationMap {
        uint256 data;
    }

    struct UserConfigurationMap {
        uint256 data;
    }

    struct ReserveData {
        ReserveConfigurationMap configuration;
        uint128 liquidityIndex;
        uint128 currentLiquidityRate;
        uint128 variableBorrowIndex;
        uint128 currentVariableBorrowRate;
        uint128 currentStableBorrowRate;
        uint40 lastUpdateTimestamp;
        uint16 id;
        address aTokenAddress;
        address stableDebtTokenAddress;
        address variableDebtTokenAddress;
        address interestRateStrategyAddress;
        uint128 accruedToTreasury;
        uint128 unbacked;
        uint128 isolationModeTotalDebt;
    }

    /* ---------------- Constants ---------------- */
    uint256 internal constant RAY = 1e27;
    uint256 internal constant WAD = 1e18;
    uint256 internal constant PERCENTAGE_FACTOR = 1e4;
    uint256 internal constant HALF_PERCENTAGE_FACTOR = 0.5e4;
    uint256 public constant HEALTH_FACTOR_LIQUIDATION_THRESHOLD = 1e18;
    // v3.3 LiquidationLogic constants
    uint256 internal constant DEFAULT_LIQUIDATION_CLOSE_FACTOR = 0.5e4;
    uint256 public constant CLOSE_FACTOR_HF_THRESHOLD = 0.95e18;
    uint256 public constant MIN_BASE_MAX_CLOSE_FACTOR_THRESHOLD = 2000e8;
    uint256 public constant MIN_LEFTOVER_BASE = MIN_BASE_MAX_CLOSE_FACTOR_THRESHOLD / 2;

    error MustNotLeaveDust();

    /* ---------------- Events: IPool / LiquidationLogic ---------------- */
    event Supply(address indexed reserve, address user, address indexed onBehalfOf, uint256 amount,
        uint16 indexed referralCode);
    event Withdraw(address indexed reserve, address indexed user, address indexed to, uint256 amount);
    event Borrow(address indexed reserve, address user, address indexed onBehalfOf, uint256 amount,
        InterestRateMode interestRateMode, uint256 borrowRate, uint16 indexed referralCode);
    event Repay(address indexed reserve, address indexed user, address indexed repayer, uint256 amount,
        bool useATokens);
    event ReserveUsedAsCollateralEnabled(address indexed reserve, address indexed user);
    event ReserveUsedAsCollateralDisabled(address indexed reserve, address indexed user);
    event LiquidationCall(address indexed collateralAsset, address indexed debtAsset, address indexed user,
        uint256 debtToCover, uint256 liquidatedCollateralAmount, address liquidator, bool receiveAToken);
    event DeficitCreated(address indexed user, address indexed debtAsset, uint256 amount); // v3.3

    /* ---------------- Storage ---------------- */
    struct Reserve {
        uint256 configuration; // ReserveConfiguration bit layout
        uint16 id;
        uint40 initializedAt;
        address aToken;
        address variableDebtToken;
        uint256 deficit; // v3.3: debt burned without repayment (bad debt)
    }

    IAddressesProvider public immutable ADDRESSES_PROVIDER;
    mapping(address => Reserve) internal _reserves;
    address[] internal _reservesList;
    mapping(address => uint256) internal _usersConfig; // bit 2*id borrowing, bit 2*id+1 collateral

    constructor(IAddressesProvider provider) {
        ADDRESSES_PROVIDER = provider;
    }

    /* ---------------- Admin (the provider's owner stands in for the PoolConfigurator) ---------------- */
    modifier onlyAdmin() {
        require(msg.sender == ADDRESSES_PROVIDER.owner(), Errors.CALLER_NOT_POOL_CONFIGURATOR);
        _;
    }

    function initReserve(address asset, address aTokenAddress, address variableDebtAddress) external onlyAdmin {
        Reserve storage r = _reserves[asset];
        require(r.aToken == address(0), Errors.RESERVE_ALREADY_INITIALIZED);
        r.id = uint16(_reservesList.length);
        r.initializedAt = uint40(block.timestamp);
        r.aToken = aTokenAddress;
        r.variableDebtToken = variableDebtAddress;
        _reservesList.push(asset);
    }

    function setConfiguration(address asset, ReserveConfigurationMap calldata configuration) external onlyAdmin {
        _reserves[asset].configuration = configuration.data;
    }

    /* ---------------- User actions (SupplyLogic / BorrowLogic) ---------------- */
    function supply(address asset, uint256 amount, address onBehalfOf, uint16 referralCode) external {
        Reserve storage r = _reserves[asset];
        require(amount != 0, Errors.INVALID_AMOUNT); // ValidationLogic.validateSupply
        _validateActive(r.configuration, true);
        IERC20(asset).safeTransferFrom(msg.sender, r.aToken, amount);
        bool isFirstSupply = ATokenStandIn(r.aToken).mint(onBehalfOf, amount);
        // Supply enables the reserve as collateral on the first supply when its LTV is not 0
        // (ValidationLogic.validateAutomaticUseAsCollateral without isolation mode).
        if (isFirstSupply && _ltv(r.configuration) != 0) _setCollateral(onBehalfOf, asset, r.id, true);
        emit Supply(asset, msg.sender, onBehalfOf, amount, referralCode);
    }

    function withdraw(address asset, uint256 amount, address to) external returns (uint256) {
        Reserve storage r = _reserves[asset];
        uint256 userBalance = IERC20(r.aToken).balanceOf(msg.sender);
        uint256 amountToWithdraw = amount == type(uint256).max ? userBalance : amount;
        require(amountToWithdraw != 0, Errors.INVALID_AMOUNT);
        require(amountToWithdraw <= userBalance, Errors.NOT_ENOUGH_AVAILABLE_USER_BALANCE);
        _validateActive(r.configuration, false);
        uint256 cfg = _usersConfig[msg.sender];
        bool isCollateral = _isCollateral(cfg, r.id);
        if (isCollateral && amountToWithdraw == userBalance) _setCollateral(msg.sender, asset, r.id, false);
        ATokenStandIn(r.aToken).burn(msg.sender, to, amountToWithdraw);
        if (isCollateral && _isBorrowingAny(cfg)) {
            // ValidationLogic.validateHFAndLtv
            AccountData memory a = _accountData(msg.sender);
            require(a.healthFactor >= HEALTH_FACTOR_LIQUIDATION_THRESHOLD,
                Errors.HEALTH_FACTOR_LOWER_THAN_LIQUIDATION_THRESHOLD);
            require(!a.hasZeroLtvCollateral || _ltv(r.configuration) == 0, Errors.LTV_VALIDATION_FAILED);
        }
        emit Withdraw(asset, msg.sender, to, amountToWithdraw);
        return amountToWithdraw;
    }

    function borrow(address asset, uint256 amount, uint256 interestRateMode, uint16 referralCode, address onBehalfOf)
        external
    {
        require(onBehalfOf == msg.sender, "stand-in: no credit delegation");
        Reserve storage r = _reserves[asset];
        uint256 c = r.configuration;
        // ValidationLogic.validateBorrow, in its order
        require(amount != 0, Errors.INVALID_AMOUNT);
        _validateActive(c, true);
        require((c >> 58) & 1 == 1, Errors.BORROWING_NOT_ENABLED);
        require(interestRateMode != uint256(InterestRateMode.STABLE), Errors.STABLE_BORROWING_NOT_ENABLED);
        require(interestRateMode == uint256(InterestRateMode.VARIABLE), Errors.INVALID_INTEREST_RATE_MODE_SELECTED);
        AccountData memory a = _accountData(onBehalfOf);
        require(a.totalCollateralBase != 0, Errors.COLLATERAL_BALANCE_IS_ZERO);
        require(a.ltv != 0, Errors.LTV_VALIDATION_FAILED);
        require(a.healthFactor > HEALTH_FACTOR_LIQUIDATION_THRESHOLD,
            Errors.HEALTH_FACTOR_LOWER_THAN_LIQUIDATION_THRESHOLD);
        uint256 amountInBase = _oracle().getAssetPrice(asset) * amount / 10 ** _decimals(c);
        // the collateral needed for the debt after the borrow, at the user's average LTV
        uint256 collateralNeeded = _percentDiv(a.totalDebtBase + amountInBase, a.ltv);
        require(collateralNeeded <= a.totalCollateralBase, Errors.COLLATERAL_CANNOT_COVER_NEW_BORROW);

        if (VariableDebtTokenStandIn(r.variableDebtToken).mint(onBehalfOf, amount)) {
            _usersConfig[onBehalfOf] |= 1 << (2 * uint256(r.id));
        }
        ATokenStandIn(r.aToken).transferUnderlyingTo(msg.sender, amount);
        emit Borrow(asset, msg.sender, onBehalfOf, amount, InterestRateMode.VARIABLE, 0, referralCode);
    }

    function repay(address asset, uint256 amount, uint256 interestRateMode, address onBehalfOf)
        external
        returns (uint256)
    {
        Reserve storage r = _reserves[asset];
        uint256 variableDebt = IERC20(r.variableDebtToken).balanceOf(onBehalfOf);
        // ValidationLogic.validateRepay
        require(amount != 0, Errors.INVALID_AMOUNT);
        require(amount != type(uint256).max || msg.sender == onBehalfOf, Errors.NO_EXPLICIT_AMOUNT_TO_REPAY_ON_BEHALF);
        _validateActive(r.configuration, false);
        require(variableDebt != 0 && interestRateMode == uint256(InterestRateMode.VARIABLE),
            Errors.NO_DEBT_OF_SELECTED_TYPE);
        uint256 paybackAmount = amount < variableDebt ? amount : variableDebt;
        VariableDebtTokenStandIn(r.variableDebtToken).burn(onBehalfOf, paybackAmount);
        if (paybackAmount == variableDebt) _usersConfig[onBehalfOf] &= ~(1 << (2 * uint256(r.id)));
        IERC20(asset).safeTransferFrom(msg.sender, r.aToken, paybackAmount);
        emit Repay(asset, onBehalfOf, msg.sender, paybackAmount, false);
        return paybackAmount;
    }

    /* ---------------- Liquidation: v3.3 LiquidationLogic.executeLiquidationCall ---------------- */
    struct LiquidationVars {
        AccountData account;
        uint256 userCollateralBalance;
        uint256 userReserveDebt;
        uint256 actualDebtToLiquidate;
        uint256 actualCollateralToLiquidate;
        uint256 liquidationProtocolFeeAmount;
        uint256 collateralToLiquidateInBaseCurrency;
        uint256 userReserveDebtInBaseCurrency;
        uint256 userReserveCollateralInBaseCurrency;
        uint256 liquidationBonus;
        uint256 collateralAssetPrice;
        uint256 debtAssetPrice;
        uint256 collateralAssetUnit;
        uint256 debtAssetUnit;
    }

    function liquidationCall(address collateralAsset, address debtAsset, address user, uint256 debtToCover,
        bool receiveAToken) external
    {
        Reserve storage coll = _reserves[collateralAsset];
        Reserve storage debt = _reserves[debtAsset];
        LiquidationVars memory v;
        v.account = _accountData(user);
        v.userCollateralBalance = _balance(coll.aToken, user);
        v.userReserveDebt = _balance(debt.variableDebtToken, user);
        _validateLiquidation(coll, debt, user, v);

        v.liquidationBonus = (coll.configuration >> 32) & 0xFFFF;
        IPriceOracleGetter oracle = _oracle();
        v.collateralAssetPrice = oracle.getAssetPrice(collateralAsset);
        v.debtAssetPrice = oracle.getAssetPrice(debtAsset);
        v.collateralAssetUnit = 10 ** _decimals(coll.configuration);
        v.debtAssetUnit = 10 ** _decimals(debt.configuration);
        v.userReserveDebtInBaseCurrency = v.userReserveDebt * v.debtAssetPrice / v.debtAssetUnit;
        v.userReserveCollateralInBaseCurrency =
            v.userCollateralBalance * v.collateralAssetPrice / v.collateralAssetUnit;

        // v3.3 close factor: the whole reserve debt, unless the user's collateral in this reserve and
        // debt in this reserve are both worth >= 2000 USD (base, rounded down) and HF > 0.95: then 50%
        // of the user's TOTAL debt in base currency (percentMul, half up), converted back to debt units
        // (rounded down), and only if that is below the reserve's debt.
        uint256 maxLiquidatableDebt = v.userReserveDebt;
        if (v.userReserveCollateralInBaseCurrency >= MIN_BASE_MAX_CLOSE_FACTOR_THRESHOLD
            && v.userReserveDebtInBaseCurrency >= MIN_BASE_MAX_CLOSE_FACTOR_THRESHOLD
            && v.account.healthFactor > CLOSE_FACTOR_HF_THRESHOLD)
        {
            uint256 defaultLiquidatableBase = _percentMul(v.account.totalDebtBase, DEFAULT_LIQUIDATION_CLOSE_FACTOR);
            if (v.userReserveDebtInBaseCurrency > defaultLiquidatableBase) {
                maxLiquidatableDebt = defaultLiquidatableBase * v.debtAssetUnit / v.debtAssetPrice;
            }
        }
        v.actualDebtToLiquidate = debtToCover > maxLiquidatableDebt ? maxLiquidatableDebt : debtToCover;
        _calculateAvailableCollateralToLiquidate(v, coll.configuration);

        // v3.3 dust rule: unless the debt reserve or the collateral reserve is cleared, both leftovers
        // must be worth >= MIN_LEFTOVER_BASE (base, rounded down). As in v3.3, the collateral leftover
        // is the balance minus the liquidator's part only (the protocol fee is not subtracted).
        if (v.actualDebtToLiquidate < v.userReserveDebt
            && v.actualCollateralToLiquidate + v.liquidationProtocolFeeAmount < v.userCollateralBalance)
        {
            bool debtLeftOk = (v.userReserveDebt - v.actualDebtToLiquidate) * v.debtAssetPrice / v.debtAssetUnit
                >= MIN_LEFTOVER_BASE;
            bool collateralLeftOk = (v.userCollateralBalance - v.actualCollateralToLiquidate) * v.collateralAssetPrice
                / v.collateralAssetUnit >= MIN_LEFTOVER_BASE;
            if (!(debtLeftOk && collateralLeftOk)) revert MustNotLeaveDust();
        }

        if (v.actualCollateralToLiquidate + v.liquidationProtocolFeeAmount == v.userCollateralBalance) {
            _setCollateral(user, collateralAsset, coll.id, false);
        }
        // v3.3 bad debt: when this call takes the user's last collateral, all its debt is burned and
        // the part nobody repays is booked as the reserve's deficit.
        bool hasNoCollateralLeft = v.account.totalCollateralBase == v.collateralToLiquidateInBaseCurrency;
        _burnDebt(debtAsset, user, v.userReserveDebt, v.actualDebtToLiquidate, hasNoCollateralLeft);

        ATokenStandIn aToken = ATokenStandIn(coll.aToken);
        if (receiveAToken) {
            uint256 liquidatorPreviousBalance = aToken.balanceOf(msg.sender);
            aToken.transferOnLiquidation(user, msg.sender, v.actualCollateralToLiquidate);
            if (liquidatorPreviousBalance == 0 && _ltv(coll.configuration) != 0) {
                _setCollateral(msg.sender, collateralAsset, coll.id, true);
            }
        } else {
            aToken.burn(user, msg.sender, v.actualCollateralToLiquidate);
        }
        // The protocol fee goes to the treasury as aTokens.
        if (v.liquidationProtocolFeeAmount != 0) {
            aToken.transferOnLiquidation(user, aToken.RESERVE_TREASURY_ADDRESS(), v.liquidationProtocolFeeAmount);
        }
        if (hasNoCollateralLeft && _isBorrowingAny(_usersConfig[user])) _burnBadDebt(user);

        IERC20(debtAsset).safeTransferFrom(msg.sender, debt.aToken, v.actualDebtToLiquidate);
        emit LiquidationCall(collateralAsset, debtAsset, user, v.actualDebtToLiquidate, v.actualCollateralToLiquidate,
            msg.sender, receiveAToken);
    }

    /// ValidationLogic.validateLiquidationCall (v3.3 order; no sentinel, no grace period).
    function _validateLiquidation(Reserve storage coll, Reserve storage debt, address user, LiquidationVars memory v)
        internal view
    {
        uint256 cc = coll.configuration;
        uint256 dc = debt.configuration;
        require((cc >> 56) & 1 == 1 && (dc >> 56) & 1 == 1, Errors.RESERVE_INACTIVE);
        require((cc >> 60) & 1 == 0 && (dc >> 60) & 1 == 0, Errors.RESERVE_PAUSED);
        require(v.account.healthFactor < HEALTH_FACTOR_LIQUIDATION_THRESHOLD,
            Errors.HEALTH_FACTOR_NOT_BELOW_THRESHOLD);
        require(_threshold(cc) != 0 && _isCollateral(_usersConfig[user], coll.id),
            Errors.COLLATERAL_CANNOT_BE_LIQUIDATED);
        require(v.userReserveDebt != 0, Errors.SPECIFIED_CURRENCY_NOT_BORROWED_BY_USER);
    }

    /// LiquidationLogic._calculateAvailableCollateralToLiquidate (same maths in v3.0 and v3.3).
    function _calculateAvailableCollateralToLiquidate(LiquidationVars memory v, uint256 collConfig) internal pure {
        // collateral worth debtToCover (rounded down), plus the bonus (percentMul, half up)
        uint256 baseCollateral = v.debtAssetPrice * v.actualDebtToLiquidate * v.collateralAssetUnit
            / (v.collateralAssetPrice * v.debtAssetUnit);
        uint256 maxCollateralToLiquidate = _percentMul(baseCollateral, v.liquidationBonus);
        uint256 collateralAmount = maxCollateralToLiquidate;
        if (maxCollateralToLiquidate > v.userCollateralBalance) {
            // not enough collateral: take all of it, and repay only the debt it is worth without the bonus
            collateralAmount = v.userCollateralBalance;
            v.actualDebtToLiquidate = _percentDiv(v.collateralAssetPrice * collateralAmount * v.debtAssetUnit
                / (v.debtAssetPrice * v.collateralAssetUnit), v.liquidationBonus);
        }
        v.collateralToLiquidateInBaseCurrency = collateralAmount * v.collateralAssetPrice / v.collateralAssetUnit;
        uint256 protocolFeePercentage = (collConfig >> 152) & 0xFFFF;
        if (protocolFeePercentage != 0) {
            // the fee is a share of the bonus part: amount - amount / bonus (percentDiv, half up)
            uint256 bonusCollateral = collateralAmount - _percentDiv(collateralAmount, v.liquidationBonus);
            v.liquidationProtocolFeeAmount = _percentMul(bonusCollateral, protocolFeePercentage);
            collateralAmount -= v.liquidationProtocolFeeAmount;
        }
        v.actualCollateralToLiquidate = collateralAmount;
    }

    /// LiquidationLogic._burnDebtTokens (v3.3).
    function _burnDebt(address asset, address user, uint256 userReserveDebt, uint256 actualDebtToLiquidate,
        bool hasNoCollateralLeft) internal
    {
        Reserve storage r = _reserves[asset];
        if (userReserveDebt != 0) {
            VariableDebtTokenStandIn(r.variableDebtToken).burn(
                user, hasNoCollateralLeft ? userReserveDebt : actualDebtToLiquidate);
        }
        uint256 outstandingDebt = userReserveDebt - actualDebtToLiquidate;
        if (hasNoCollateralLeft && outstandingDebt != 0) {
            r.deficit += outstandingDebt;
            emit DeficitCreated(user, asset, outstandingDebt);
            outstandingDebt = 0;
        }
        if (outstandingDebt == 0) _usersConfig[user] &= ~(1 << (2 * uint256(r.id)));
    }

    /// LiquidationLogic._burnBadDebt (v3.3): burn the user's debt in every other reserve.
    function _burnBadDebt(address user) internal {
        for (uint256 i; i < _reservesList.length; ++i) {
            if (!_isBorrowing(_usersConfig[user], i)) continue;
            address asset = _reservesList[i];
            if ((_reserves[asset].configuration >> 56) & 1 == 0) continue;
            _burnDebt(asset, user, _balance(_reserves[asset].variableDebtToken, user), 0, true);
        }
    }

    /* ---------------- Views ---------------- */
    function getUserAccountData(address user) external view returns (uint256 totalCollateralBase,
        uint256 totalDebtBase, uint256 availableBorrowsBase, uint256 currentLiquidationThreshold, uint256 ltv,
        uint256 healthFactor)
    {
        AccountData memory a = _accountData(user);
        // GenericLogic.calculateAvailableBorrows
        uint256 borrowable = _percentMul(a.totalCollateralBase, a.ltv);
        availableBorrowsBase = borrowable < a.totalDebtBase ? 0 : borrowable - a.totalDebtBase;
        return (a.totalCollateralBase, a.totalDebtBase, availableBorrowsBase, a.liquidationThreshold, a.ltv,
            a.healthFactor);
    }

    function getReserveData(address asset) external view returns (ReserveData memory res) {
        Reserve storage r = _reserves[asset];
        res.configuration = ReserveConfigurationMap(r.configuration);
        res.liquidityIndex = uint128(RAY);
        res.variableBorrowIndex = uint128(RAY);
        res.lastUpdateTimestamp = r.initializedAt;
        res.id = r.id;
        res.aTokenAddress = r.aToken;
        res.variableDebtTokenAddress = r.variableDebtToken;
        // as from v3.2: a registered mock whose balanceOf / totalSupply return 0
        if (r.aToken != address(0)) res.stableDebtTokenAddress = ADDRESSES_PROVIDER.getAddress("MOCK_STABLE_DEBT");
    }

    function getConfiguration(address asset) external view returns (ReserveConfigurationMap memory) {
        return ReserveConfigurationMap(_reserves[asset].configuration);
    }

    function getUserConfiguration(address user) external view returns (UserConfigurationMap memory) {
        return UserConfigurationMap(_usersConfig[user]);
    }

    function getUserEMode(address) external pure returns (uint256) {
        return 0;
    }

    function getReservesList() external view returns (address[] memory) {
        return _reservesList;
    }

    function getReserveNormalizedIncome(address) external pure returns (uint256) {
        return RAY;
    }

    function getReserveNormalizedVariableDebt(address) external pure returns (uint256) {
        return RAY;
    }

    function getReserveDeficit(address asset) external view returns (uint256) {
        return _reserves[asset].deficit;
    }

    /* ---------------- GenericLogic.calculateUserAccountData (eMode 0) ---------------- */
    struct AccountData {
        uint256 totalCollateralBase;
        uint256 totalDebtBase;
        uint256 ltv;
        uint256 liquidationThreshold;
        uint256 healthFactor;
        bool hasZeroLtvCollateral;
    }

    function _accountData(address user) internal view returns (AccountData memory a) {
        uint256 cfg = _usersConfig[user];
        if (cfg == 0) {
            a.healthFactor = type(uint256).max;
            return a;
        }
        IPriceOracleGetter oracle = _oracle();
        for (uint256 i; i < _reservesList.length; ++i) {
            if ((cfg >> (2 * i)) & 3 == 0) continue;
            address asset = _reservesList[i];
            Reserve storage r = _reserves[asset];
            uint256 c = r.configuration;
            uint256 unit = 10 ** _decimals(c);
            uint256 price = oracle.getAssetPrice(asset);
            if (_threshold(c) != 0 && _isCollateral(cfg, i)) {
                // each balance is valued in base currency and rounded down on its own
                uint256 value = IERC20(r.aToken).balanceOf(user) * price / unit;
                a.totalCollateralBase += value;
                if (_ltv(c) != 0) a.ltv += value * _ltv(c);
                else a.hasZeroLtvCollateral = true;
                a.liquidationThreshold += value * _threshold(c);
            }
            if (_isBorrowing(cfg, i)) a.totalDebtBase += IERC20(r.variableDebtToken).balanceOf(user) * price / unit;
        }
        // value-weighted averages, rounded down
        a.ltv = a.totalCollateralBase != 0 ? a.ltv / a.totalCollateralBase : 0;
        a.liquidationThreshold = a.totalCollateralBase != 0 ? a.liquidationThreshold / a.totalCollateralBase : 0;
        // HF = (collateral percentMul threshold) wadDiv debt, both rounding half up
        if (a.totalDebtBase == 0) {
            a.healthFactor = type(uint256).max;
        } else {
            uint256 adjustedCollateral = _percentMul(a.totalCollateralBase, a.liquidationThreshold);
            a.healthFactor = (adjustedCollateral * WAD + a.totalDebtBase / 2) / a.totalDebtBase;
        }
    }

    /* ---------------- Helpers ---------------- */
    function _oracle() internal view returns (IPriceOracleGetter) {
        return IPriceOracleGetter(ADDRESSES_PROVIDER.getPriceOracle());
    }

    function _balance(address token, address user) internal view returns (uint256) {
        return token == address(0) ? 0 : IERC20(token).balanceOf(user);
    }

    function _setCollateral(address user, address asset, uint16 id, bool enabled) internal {
        uint256 bit = 1 << (2 * uint256(id) + 1);
        if (enabled) {
            _usersConfig[user] |= bit;
            emit ReserveUsedAsCollateralEnabled(asset, user);
        } else {
            _usersConfig[user] &= ~bit;
            emit ReserveUsedAsCollateralDisabled(asset, user);
        }
    }

    /// Active (bit 56), not paused (60), and not frozen (57) when `notFrozen`.
    function _validateActive(uint256 c, bool notFrozen) internal pure {
        require((c >> 56) & 1 == 1, Errors.RESERVE_INACTIVE);
        require((c >> 60) & 1 == 0, Errors.RESERVE_PAUSED);
        require(!notFrozen || (c >> 57) & 1 == 0, Errors.RESERVE_FROZEN);
    }

    // ReserveConfiguration bit layout: ltv 0-15, liquidation threshold 16-31, bonus 32-47, decimals 48-55
    function _ltv(uint256 c) internal pure returns (uint256) {
        return c & 0xFFFF;
    }

    function _threshold(uint256 c) internal pure returns (uint256) {
        return (c >> 16) & 0xFFFF;
    }

    function _decimals(uint256 c) internal pure returns (uint256) {
        return (c >> 48) & 0xFF;
    }

    function _isBorrowing(uint256 cfg, uint256 id) internal pure returns (bool) {
        return (cfg >> (2 * id)) & 1 == 1;
    }

    function _isCollateral(uint256 cfg, uint256 id) internal pure returns (bool) {
        return (cfg >> (2 * id + 1)) & 1 == 1;
    }

    function _isBorrowingAny(uint256 cfg) internal pure returns (bool) {
        // 0x5555...: the borrowing bit of every reserve
        return cfg & 0x5555555555555555555555555555555555555555555555555555555555555555 != 0;
    }

    // PercentageMath: both round half up
    function _percentMul(uint256 value, uint256 percentage) internal pure returns (uint256) {
        return (value * percentage + HALF_PERCENTAGE_FACTOR) / PERCENTAGE_FACTOR;
    }

    function _percentDiv(uint256 value, uint256 percentage) internal pure returns (uint256) {
        return (value * PERCENTAGE_FACTOR + percentage / 2) / percentage;
    }
}
