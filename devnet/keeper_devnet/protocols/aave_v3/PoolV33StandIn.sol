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

/// @title Stand-in for the Aave V3 Pool with the v3.3+ liquidation rules, as of the latest release
/// @notice External ABI of @aave/core-v3 1.19.3 for what a liquidation keeper uses (supply, withdraw,
///  borrow, repay, liquidationCall, getUserAccountData, getReserveData with the 1.19.3 struct,
///  getUserConfiguration, getReservesList, getUserEMode, setUserEMode, events), plus the v3.2+ eMode
///  functions and v3.3's getReserveDeficit with aave-dao/aave-v3-origin's IPool signatures. The
///  liquidation follows aave-v3-origin v3.7 (POOL_REVISION 11) LiquidationLogic.executeLiquidationCall:
///  the v3.3 close factor and dust rule (collateral side after the protocol fee), debt values rounded
///  up (mulDivCeil, v3.5), the collateral and fee maths with explicit rounding (v3.7), bad debt burned
///  into the reserve's deficit (v3.3), no liquidation-threshold check on the collateral and no
///  collateral flag for a liquidator receiving aTokens (v3.6). eMode as from v3.2: a category's ltv,
///  threshold and bonus apply to the collateral in its collateral bitmap; borrowing in eMode only of
///  the assets in its borrowable bitmap (GenericLogic, ValidationLogic, SupplyLogic.executeSetUserEMode).
///  Account data keep GenericLogic's v3.0 rounding (the differential test holds it to the real 1.19.3
///  Pool). Left out: interest (indexes stay 1 ray), the eMode ltv-zero bitmap, isolation mode, siloed
///  borrowing, caps, credit delegation, flash loans, the liquidation grace period and the proxy.
///  Errors are Aave's numeric strings of 1.19.3, except MustNotLeaveDust() and the eMode errors,
///  custom errors as the release has them.
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
    // v3.2+ eMode (Errors.sol of aave-v3-origin)
    error EModeCategoryReserved();
    error InconsistentEModeCategory();
    error NotBorrowableInEMode();
    error InvalidDebtInEmode(address asset, uint8 categoryId);
    error InvalidCollateralInEmode(address asset, uint8 categoryId);

    /* ---------------- eMode types: DataTypes.sol of aave-v3-origin (v3.2+) ---------------- */
    struct CollateralConfig {
        uint16 ltv;
        uint16 liquidationThreshold;
        uint16 liquidationBonus;
    }

    struct EModeCategoryBaseConfiguration {
        uint16 ltv;
        uint16 liquidationThreshold;
        uint16 liquidationBonus;
        string label;
    }

    struct EModeCategoryLegacy {
        uint16 ltv;
        uint16 liquidationThreshold;
        uint16 liquidationBonus;
        address priceSource; // deprecated: always 0
        string label;
    }

    struct EModeCategory {
        uint16 ltv;
        uint16 liquidationThreshold;
        uint16 liquidationBonus;
        uint128 collateralBitmap; // bit i: reserve id i is collateral in the category
        string label;
        uint128 borrowableBitmap; // bit i: reserve id i may be borrowed in the category
    }

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
    event DeficitCreated(address indexed user, address indexed debtAsset, uint256 amountCreated); // v3.3
    event UserEModeSet(address indexed user, uint8 categoryId);

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
    mapping(uint8 => EModeCategory) internal _eModeCategories;
    mapping(address => uint8) internal _usersEModeCategory;

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

    /// IPool.configureEModeCategory (v3.2+; the configurator checks ltv <= threshold and
    /// threshold x bonus <= 100%, left to the admin here). Category 0 is reserved.
    function configureEModeCategory(uint8 id, EModeCategoryBaseConfiguration calldata category) external onlyAdmin {
        if (id == 0) revert EModeCategoryReserved();
        EModeCategory storage c = _eModeCategories[id];
        c.ltv = category.ltv;
        c.liquidationThreshold = category.liquidationThreshold;
        c.liquidationBonus = category.liquidationBonus;
        c.label = category.label;
    }

    function configureEModeCategoryCollateralBitmap(uint8 id, uint128 collateralBitmap) external onlyAdmin {
        if (id == 0) revert EModeCategoryReserved();
        _eModeCategories[id].collateralBitmap = collateralBitmap;
    }

    function configureEModeCategoryBorrowableBitmap(uint8 id, uint128 borrowableBitmap) external onlyAdmin {
        if (id == 0) revert EModeCategoryReserved();
        _eModeCategories[id].borrowableBitmap = borrowableBitmap;
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
        uint8 category = _usersEModeCategory[onBehalfOf];
        if (category != 0 && !_onBitmap(_eModeCategories[category].borrowableBitmap, r.id)) {
            revert NotBorrowableInEMode();
        }
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

    /// SupplyLogic.executeSetUserEMode with ValidationLogic.validateSetUserEMode (v3.6): a non-zero
    /// category must exist (threshold != 0); every borrowed asset must be borrowable in the target
    /// (in its borrowable bitmap, or with borrowing enabled for category 0); every collateral must
    /// keep a non-zero ltv there; the health factor must stay >= 1.
    function setUserEMode(uint8 categoryId) external {
        address user = msg.sender;
        if (_usersEModeCategory[user] == categoryId) return;
        EModeCategory storage c = _eModeCategories[categoryId];
        if (categoryId != 0 && c.liquidationThreshold == 0) revert InconsistentEModeCategory();
        uint256 cfg = _usersConfig[user];
        for (uint256 i; i < _reservesList.length; ++i) {
            address asset = _reservesList[i];
            if (_isBorrowing(cfg, i)) {
                bool ok = categoryId != 0 ? _onBitmap(c.borrowableBitmap, i)
                    : (_reserves[asset].configuration >> 58) & 1 == 1;
                if (!ok) revert InvalidDebtInEmode(asset, categoryId);
            }
            if (_isCollateral(cfg, i) && _userLtv(_reserves[asset], categoryId) == 0) {
                revert InvalidCollateralInEmode(asset, categoryId);
            }
        }
        _usersEModeCategory[user] = categoryId;
        require(_accountData(user).healthFactor >= HEALTH_FACTOR_LIQUIDATION_THRESHOLD,
            Errors.HEALTH_FACTOR_LOWER_THAN_LIQUIDATION_THRESHOLD);
        emit UserEModeSet(user, categoryId);
    }

    /* ---------------- Liquidation: aave-v3-origin v3.7 LiquidationLogic.executeLiquidationCall ---------------- */
    struct LiquidationVars {
        AccountData account;
        uint256 userCollateralBalance;
        uint256 userReserveDebt;
        uint256 actualDebtToLiquidate;
        uint256 actualCollateralToLiquidate;
        uint256 liquidationProtocolFeeAmount;
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

        // eMode (v3.2+): the category's bonus when the collateral is in its collateral bitmap
        uint8 category = _usersEModeCategory[user];
        if (category != 0 && _onBitmap(_eModeCategories[category].collateralBitmap, coll.id)) {
            v.liquidationBonus = _eModeCategories[category].liquidationBonus;
        } else {
            v.liquidationBonus = (coll.configuration >> 32) & 0xFFFF;
        }
        IPriceOracleGetter oracle = _oracle();
        v.collateralAssetPrice = oracle.getAssetPrice(collateralAsset);
        v.debtAssetPrice = oracle.getAssetPrice(debtAsset);
        v.collateralAssetUnit = 10 ** _decimals(coll.configuration);
        v.debtAssetUnit = 10 ** _decimals(debt.configuration);
        // the reserve's debt valued rounding up (mulDivCeil), its collateral rounding down
        v.userReserveDebtInBaseCurrency = _mulDivCeil(v.userReserveDebt, v.debtAssetPrice, v.debtAssetUnit);
        v.userReserveCollateralInBaseCurrency =
            v.userCollateralBalance * v.collateralAssetPrice / v.collateralAssetUnit;

        // Close factor: the whole reserve debt, unless the user's collateral in this reserve and
        // debt in this reserve are both worth >= 2000 USD and HF > 0.95: then 50% of the user's TOTAL
        // debt in base currency (percentMul, half up), converted back to debt units (rounded down),
        // and only if the reserve's debt is above it.
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

        _checkDust(v);
        _settleLiquidation(collateralAsset, debtAsset, user, receiveAToken, v);
    }

    /// Dust rule: unless the debt reserve or the collateral reserve is cleared, both leftovers must
    /// be worth >= MIN_LEFTOVER_BASE: the debt left rounded up (mulDivCeil), the collateral left
    /// AFTER the liquidator's part and the protocol fee, rounded down.
    function _checkDust(LiquidationVars memory v) internal pure {
        if (v.actualDebtToLiquidate < v.userReserveDebt
            && v.actualCollateralToLiquidate + v.liquidationProtocolFeeAmount < v.userCollateralBalance)
        {
            bool debtLeftOk = _mulDivCeil(v.userReserveDebt - v.actualDebtToLiquidate, v.debtAssetPrice,
                v.debtAssetUnit) >= MIN_LEFTOVER_BASE;
            bool collateralLeftOk = (v.userCollateralBalance - v.actualCollateralToLiquidate
                - v.liquidationProtocolFeeAmount) * v.collateralAssetPrice / v.collateralAssetUnit >= MIN_LEFTOVER_BASE;
            if (!(debtLeftOk && collateralLeftOk)) revert MustNotLeaveDust();
        }
    }

    function _settleLiquidation(address collateralAsset, address debtAsset, address user, bool receiveAToken,
        LiquidationVars memory v) internal
    {
        Reserve storage coll = _reserves[collateralAsset];
        // v3.7: the collateral consumed (liquidator's part + fee; scaled amounts are the amounts
        // here, the index being 1 ray) empties the reserve, or is all the user's collateral value.
        uint256 consumed = v.actualCollateralToLiquidate + v.liquidationProtocolFeeAmount;
        if (consumed > v.userCollateralBalance) consumed = v.userCollateralBalance;
        bool reserveFullyConsumed = consumed == v.userCollateralBalance;
        bool hasNoCollateralLeft =
            consumed * v.collateralAssetPrice / v.collateralAssetUnit == v.account.totalCollateralBase;
        if (reserveFullyConsumed || hasNoCollateralLeft) _setCollateral(user, collateralAsset, coll.id, false);
        // v3.3 bad debt: when this call takes the user's last collateral, all its debt is burned and
        // the part nobody repays is booked as the reserve's deficit.
        _burnDebt(debtAsset, user, v.userReserveDebt, v.actualDebtToLiquidate, hasNoCollateralLeft);

        ATokenStandIn aToken = ATokenStandIn(coll.aToken);
        if (receiveAToken) {
            // v3.6: the aTokens are not enabled as the liquidator's collateral
            aToken.transferOnLiquidation(user, msg.sender, v.actualCollateralToLiquidate);
        } else {
            aToken.burn(user, msg.sender, v.actualCollateralToLiquidate);
        }
        // The protocol fee goes to the treasury as aTokens.
        if (v.liquidationProtocolFeeAmount != 0) {
            aToken.transferOnLiquidation(user, aToken.RESERVE_TREASURY_ADDRESS(), v.liquidationProtocolFeeAmount);
        }
        if (hasNoCollateralLeft && _isBorrowingAny(_usersConfig[user])) _burnBadDebt(user);

        IERC20(debtAsset).safeTransferFrom(msg.sender, _reserves[debtAsset].aToken, v.actualDebtToLiquidate);
        emit LiquidationCall(collateralAsset, debtAsset, user, v.actualDebtToLiquidate, v.actualCollateralToLiquidate,
            msg.sender, receiveAToken);
    }

    /// ValidationLogic.validateLiquidationCall (v3.6 order and checks; no grace period, no sentinel).
    function _validateLiquidation(Reserve storage coll, Reserve storage debt, address user, LiquidationVars memory v)
        internal view
    {
        uint256 cc = coll.configuration;
        uint256 dc = debt.configuration;
        require((cc >> 56) & 1 == 1 && (dc >> 56) & 1 == 1, Errors.RESERVE_INACTIVE);
        require((cc >> 60) & 1 == 0 && (dc >> 60) & 1 == 0, Errors.RESERVE_PAUSED);
        require(v.account.healthFactor < HEALTH_FACTOR_LIQUIDATION_THRESHOLD,
            Errors.HEALTH_FACTOR_NOT_BELOW_THRESHOLD);
        require(_isCollateral(_usersConfig[user], coll.id), Errors.COLLATERAL_CANNOT_BE_LIQUIDATED);
        require(v.userReserveDebt != 0, Errors.SPECIFIED_CURRENCY_NOT_BORROWED_BY_USER);
    }

    /// LiquidationLogic._calculateAvailableCollateralToLiquidate, v3.7 rounding.
    function _calculateAvailableCollateralToLiquidate(LiquidationVars memory v, uint256 collConfig) internal pure {
        // collateral worth debtToCover (rounded down), plus the bonus (percentMulFloor)
        uint256 baseCollateral = v.debtAssetPrice * v.actualDebtToLiquidate * v.collateralAssetUnit
            / (v.collateralAssetPrice * v.debtAssetUnit);
        uint256 maxCollateralToLiquidate = _percentMulFloor(baseCollateral, v.liquidationBonus);
        uint256 collateralAmount = maxCollateralToLiquidate;
        if (maxCollateralToLiquidate > v.userCollateralBalance) {
            // not enough collateral: take all of it, and repay the debt it is worth without the
            // bonus (percentDivCeil)
            collateralAmount = v.userCollateralBalance;
            v.actualDebtToLiquidate = _percentDivCeil(v.collateralAssetPrice * collateralAmount * v.debtAssetUnit
                / (v.debtAssetPrice * v.collateralAssetUnit), v.liquidationBonus);
        }
        uint256 protocolFeePercentage = (collConfig >> 152) & 0xFFFF;
        if (protocolFeePercentage != 0) {
            // the fee is a share of the bonus part: amount - amount / bonus (percentDivFloor), the
            // share rounded up (percentMulCeil)
            uint256 bonusCollateral = collateralAmount - _percentDivFloor(collateralAmount, v.liquidationBonus);
            v.liquidationProtocolFeeAmount = _percentMulCeil(bonusCollateral, protocolFeePercentage);
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

    function getUserEMode(address user) external view returns (uint256) {
        return _usersEModeCategory[user];
    }

    function getEModeCategoryCollateralConfig(uint8 id) external view returns (CollateralConfig memory) {
        EModeCategory storage c = _eModeCategories[id];
        return CollateralConfig(c.ltv, c.liquidationThreshold, c.liquidationBonus);
    }

    function getEModeCategoryCollateralBitmap(uint8 id) external view returns (uint128) {
        return _eModeCategories[id].collateralBitmap;
    }

    function getEModeCategoryBorrowableBitmap(uint8 id) external view returns (uint128) {
        return _eModeCategories[id].borrowableBitmap;
    }

    function getEModeCategoryLabel(uint8 id) external view returns (string memory) {
        return _eModeCategories[id].label;
    }

    /// The v3.2+ legacy getter (priceSource is always 0 from v3.2).
    function getEModeCategoryData(uint8 id) external view returns (EModeCategoryLegacy memory) {
        EModeCategory storage c = _eModeCategories[id];
        return EModeCategoryLegacy(c.ltv, c.liquidationThreshold, c.liquidationBonus, address(0), c.label);
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

    /* ---------------- GenericLogic.calculateUserAccountData (v3.0 rounding, v3.2+ eMode) ---------------- */
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
        uint8 category = _usersEModeCategory[user];
        for (uint256 i; i < _reservesList.length; ++i) {
            if ((cfg >> (2 * i)) & 3 != 0) _addReserve(a, user, cfg, i, category, oracle);
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

    /// One reserve of the user: its collateral value (rounded down on its own) weighted by its ltv and
    /// threshold (the category's for the collateral in its collateral bitmap, v3.2+, else the
    /// reserve's), its debt value (rounded down).
    function _addReserve(AccountData memory a, address user, uint256 cfg, uint256 i, uint8 category,
        IPriceOracleGetter oracle) internal view
    {
        Reserve storage r = _reserves[_reservesList[i]];
        uint256 price = oracle.getAssetPrice(_reservesList[i]);
        uint256 unit = 10 ** _decimals(r.configuration);
        if (_isCollateral(cfg, i)) {
            uint256 value = IERC20(r.aToken).balanceOf(user) * price / unit;
            a.totalCollateralBase += value;
            uint256 ltv = _userLtv(r, category);
            if (ltv != 0) a.ltv += value * ltv;
            else a.hasZeroLtvCollateral = true;
            EModeCategory storage e = _eModeCategories[category];
            bool inEMode = category != 0 && _onBitmap(e.collateralBitmap, i);
            a.liquidationThreshold += value * (inEMode ? e.liquidationThreshold : _threshold(r.configuration));
        }
        if (_isBorrowing(cfg, i)) a.totalDebtBase += IERC20(r.variableDebtToken).balanceOf(user) * price / unit;
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

    /// ValidationLogic.getUserReserveLtv: the category's ltv for collateral in its bitmap.
    function _userLtv(Reserve storage r, uint8 category) internal view returns (uint256) {
        if (category != 0 && _onBitmap(_eModeCategories[category].collateralBitmap, r.id)) {
            return _eModeCategories[category].ltv;
        }
        return _ltv(r.configuration);
    }

    /// EModeConfiguration.isReserveEnabledOnBitmap
    function _onBitmap(uint128 bitmap, uint256 id) internal pure returns (bool) {
        return (bitmap >> id) & 1 != 0;
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

    // PercentageMath: percentMul / percentDiv round half up; the others as named (v3.5+ / v3.7)
    function _percentMul(uint256 value, uint256 percentage) internal pure returns (uint256) {
        return (value * percentage + HALF_PERCENTAGE_FACTOR) / PERCENTAGE_FACTOR;
    }

    function _percentDiv(uint256 value, uint256 percentage) internal pure returns (uint256) {
        return (value * PERCENTAGE_FACTOR + percentage / 2) / percentage;
    }

    function _percentMulFloor(uint256 value, uint256 percentage) internal pure returns (uint256) {
        return value * percentage / PERCENTAGE_FACTOR;
    }

    function _percentMulCeil(uint256 value, uint256 percentage) internal pure returns (uint256) {
        return (value * percentage + PERCENTAGE_FACTOR - 1) / PERCENTAGE_FACTOR;
    }

    function _percentDivFloor(uint256 value, uint256 percentage) internal pure returns (uint256) {
        return value * PERCENTAGE_FACTOR / percentage;
    }

    function _percentDivCeil(uint256 value, uint256 percentage) internal pure returns (uint256) {
        return (value * PERCENTAGE_FACTOR + percentage - 1) / percentage;
    }

    /// MathUtils.mulDivCeil
    function _mulDivCeil(uint256 a, uint256 b, uint256 c) internal pure returns (uint256) {
        uint256 p = a * b;
        return p / c + (p % c == 0 ? 0 : 1);
    }
}
