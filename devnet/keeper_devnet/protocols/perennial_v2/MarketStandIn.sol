// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import "./PerennialTypes.sol";

interface IOwnableStandIn {
    function owner() external view returns (address);
}

/// Perennial V2's Market (equilibria-xyz/perennial-v2 packages/core/contracts/Market.sol,
/// libs/InvariantLib.sol, types/{Position,Local,Order,RiskParameter}.sol) reduced to what a
/// liquidation keeper meets, with the real signatures, events, errors, units and rules:
/// - update(account, newMaker, newLong, newShort, collateral, protect) places an order for the
///   oracle's current version and requests that version; orders settle once the oracle's latest
///   version reaches them; settlement realises the PnL of the latest position (long x price change,
///   short x -price change) up to the latest committed version ("sync");
/// - each settled order pays its share of the version's settlementFee (receipt.settlementFee /
///   orders at that version); a protected order also pays liquidationFee = settlementFee x
///   riskParameter.liquidationFee, credited to liquidators[account][id] (Local.claimable);
/// - InvariantLib: over-close, protection (full close, no collateral change, no increase, latest
///   position NOT maintained at the latest version: collateral < max(|position| x |price| x
///   maintenance, minMaintenance)), stale price (current - latest >= staleAfter), single-sided,
///   operator (skipped for protected orders), margin, protected-pending, negative collateral;
/// - UFixed6/Fixed6 are 6-decimal integers; the DSU token has 18 decimals (x 1e12 on transfers,
///   UFixed18Lib.from); claimFee(account) pays Local.claimable to the caller (the account itself).
/// Left out: makers (the counterparty is an implicit fixed pool), funding, interest, trade fees,
/// intents/guarantees (always empty), referrers, operators, the global settlement accumulators (the
/// PnL is computed per account from the prices at its checkpoints, truncated toward zero).
contract MarketStandIn {
    error MarketStalePriceError();
    error MarketInvalidProtectionError();
    error MarketInsufficientMarginError();
    error MarketInsufficientCollateralError();
    error MarketOperatorNotAllowedError();
    error MarketNotSingleSidedError();
    error MarketOverCloseError();
    error MarketProtectedError();
    error MarketNotOperatorError();
    error StandInMakerUnsupported();
    error StandInOnlyOwner();

    event OrderCreated(address indexed account, Order order, Guarantee guarantee, address liquidator,
                       address orderReferrer, address guaranteeReferrer);
    event FeeClaimed(address indexed account, address indexed receiver, uint256 amount);
    event RiskParameterUpdated(RiskParameter newRiskParameter);

    int256 private constant BASE = 1e6;
    uint256 private constant UBASE = 1e6;
    uint256 private constant TOKEN18 = 1e12; // UFixed6 -> UFixed18

    IERC20 public immutable token;
    IOracleProviderStandIn public immutable oracle;
    address public immutable factory; // root Instance.factory(): the creator (MarketFactoryStandIn)
    uint256 public oracleFee; // settlement fees charged (Global.oracleFee)

    RiskParameter private _riskParameter;
    Position private _position; // global current position (takers; maker is the fixed pool)
    mapping(address => Local) private _locals;
    mapping(address => Position) private _positions;
    mapping(address => mapping(uint256 => Order)) private _pendingOrders;
    mapping(address => Order) private _pendings;
    mapping(address => mapping(uint256 => address)) public liquidators;
    mapping(uint256 => uint256) private _versionOrders; // orders placed for each version (all accounts)
    mapping(address => int256) private _checkpointPrice; // price at positions(account).timestamp
    bool private _entered;

    constructor(IERC20 token_, IOracleProviderStandIn oracle_, RiskParameter memory risk, uint256 makerPool) {
        token = token_;
        oracle = oracle_;
        factory = msg.sender;
        _riskParameter = risk;
        _position.maker = makerPool;
    }

    modifier nonReentrant() {
        require(!_entered, "reentrant");
        _entered = true;
        _;
        _entered = false;
    }

    // ---- views ---------------------------------------------------------------------------------

    function riskParameter() external view returns (RiskParameter memory) { return _riskParameter; }
    function position() external view returns (Position memory) { return _position; }
    function positions(address account) external view returns (Position memory) { return _positions[account]; }
    function locals(address account) external view returns (Local memory) { return _locals[account]; }
    function pendings(address account) external view returns (Order memory) { return _pendings[account]; }
    function pendingOrders(address account, uint256 id) external view returns (Order memory) {
        return _pendingOrders[account][id];
    }

    // ---- governance ----------------------------------------------------------------------------

    /// root Instance's onlyOwner authority: the owner of the factory that created the market (the
    /// deployer itself when deployed directly, which only stand-in tests do).
    function owner() public view returns (address) {
        return factory.code.length == 0 ? factory : IOwnableStandIn(factory).owner();
    }

    function updateRiskParameter(RiskParameter memory newRiskParameter) external {
        if (msg.sender != owner()) revert StandInOnlyOwner();
        _riskParameter = newRiskParameter;
        emit RiskParameterUpdated(newRiskParameter);
    }

    // ---- user entry points ---------------------------------------------------------------------

    function settle(address account) external nonReentrant {
        (OracleVersion memory latest, ) = oracle.status();
        _settle(account, latest);
    }

    function claimFee(address account) external nonReentrant returns (uint256 feeReceived) {
        if (msg.sender != account) revert MarketNotOperatorError();
        feeReceived = _locals[account].claimable;
        _locals[account].claimable = 0;
        if (feeReceived != 0) {
            require(token.transfer(msg.sender, feeReceived * TOKEN18), "push");
            emit FeeClaimed(account, msg.sender, feeReceived);
        }
    }

    function update(address account, uint256 newMaker, uint256 newLong, uint256 newShort, int256 collateral,
                    bool protect) external nonReentrant {
        if (newMaker != 0) revert StandInMakerUnsupported();
        (OracleVersion memory latest, uint256 currentTimestamp) = oracle.status();
        _settle(account, latest);

        Local memory local = _locals[account];
        Position memory latestPosition = _positions[account];
        Order memory pending = _pendings[account];
        Position memory currentPosition = _apply(latestPosition, pending);

        Order memory newOrder = _orderFrom(currentTimestamp, currentPosition, collateral, newLong, newShort, protect);

        // advance to the next id if the current one belongs to an earlier version
        Order memory orderLocal = _pendingOrders[account][local.currentId];
        address liquidator = liquidators[account][local.currentId];
        if (currentTimestamp > orderLocal.timestamp) {
            local.currentId++;
            orderLocal = _empty(currentTimestamp);
            liquidator = address(0);
        }
        _add(orderLocal, newOrder);
        _add(pending, newOrder);
        local.collateral += collateral;
        if (protect) liquidator = msg.sender;
        if (!_isEmpty(newOrder)) {
            oracle.request(address(this), account);
            _versionOrders[currentTimestamp] += newOrder.orders;
        }
        currentPosition = _apply(currentPosition, newOrder);

        Guarantee memory noGuarantee;
        emit OrderCreated(account, newOrder, noGuarantee, liquidator, address(0), address(0));
        _validate(account, local, latest, currentTimestamp, latestPosition, currentPosition, pending, newOrder);

        _pendingOrders[account][local.currentId] = orderLocal;
        _pendings[account] = pending;
        _locals[account] = local;
        liquidators[account][local.currentId] = liquidator;
        _position.long = _position.long + newOrder.longPos - newOrder.longNeg;
        _position.short = _position.short + newOrder.shortPos - newOrder.shortNeg;

        if (collateral > 0) require(token.transferFrom(msg.sender, address(this), uint256(collateral) * TOKEN18), "pull");
        if (collateral < 0) require(token.transfer(msg.sender, uint256(-collateral) * TOKEN18), "push");
    }

    // ---- settlement ----------------------------------------------------------------------------

    function _settle(address account, OracleVersion memory latest) private {
        Local memory local = _locals[account];
        Position memory pos = _positions[account];
        Order memory pending = _pendings[account];
        int256 price = _checkpointPrice[account];

        while (local.currentId != local.latestId) {
            uint256 id = local.latestId + 1;
            Order memory order = _pendingOrders[account][id];
            if (order.timestamp > latest.timestamp) break; // not ready
            (OracleVersion memory version, OracleReceipt memory receipt) = oracle.at(order.timestamp);
            local.collateral += _pnl(pos, price, version.price);
            price = version.price;
            _sub(pending, order);
            if (version.valid) {
                pos = _apply(pos, order);
                uint256 orders = _versionOrders[order.timestamp];
                uint256 fee = orders == 0 ? 0 : receipt.settlementFee * order.orders / orders;
                uint256 liquidationFee = order.protection != 0
                    ? receipt.settlementFee * _riskParameter.liquidationFee / UBASE : 0;
                local.collateral -= int256(fee + liquidationFee);
                oracleFee += fee;
                if (liquidationFee != 0) {
                    address receiver = liquidators[account][id];
                    if (receiver == account) local.claimable += liquidationFee;
                    else _locals[receiver].claimable += liquidationFee;
                }
            } else {
                // an invalid version invalidates the order: no position change, no fees
                _position.long = _position.long + order.longNeg - order.longPos;
                _position.short = _position.short + order.shortNeg - order.shortPos;
            }
            pos.timestamp = order.timestamp;
            local.latestId = id;
        }
        // sync: realise the PnL up to the latest committed version
        if (latest.timestamp > pos.timestamp) {
            local.collateral += _pnl(pos, price, latest.price);
            price = latest.price;
            pos.timestamp = latest.timestamp;
        }
        _locals[account] = local;
        _positions[account] = pos;
        _pendings[account] = pending;
        _checkpointPrice[account] = price;
    }

    function _pnl(Position memory pos, int256 fromPrice, int256 toPrice) private pure returns (int256) {
        int256 skew = int256(pos.long) - int256(pos.short);
        if (skew == 0 || fromPrice == toPrice) return 0;
        return skew * (toPrice - fromPrice) / BASE;
    }

    // ---- InvariantLib --------------------------------------------------------------------------

    function _validate(address account, Local memory local, OracleVersion memory latest, uint256 currentTimestamp,
                       Position memory latestPosition, Position memory currentPosition, Order memory pending,
                       Order memory newOrder) private view {
        RiskParameter memory risk = _riskParameter;
        if (pending.invalidation != 0 && _neg(pending) > _magnitude(latestPosition)) revert MarketOverCloseError();

        if (newOrder.protection != 0 && !_validateProtection(local, latest, latestPosition, pending, newOrder))
            revert MarketInvalidProtectionError();

        if (
            !(_magnitude(latestPosition) == 0 && _isEmpty(pending)) &&
            !(_isEmpty(newOrder) && newOrder.collateral >= 0) &&
            (!latest.valid || currentTimestamp - latest.timestamp >= risk.staleAfter)
        ) revert MarketStalePriceError();

        if (_magnitude(currentPosition) != currentPosition.long + currentPosition.short + currentPosition.maker)
            revert MarketNotSingleSidedError();
        if (pending.invalidation != 0 && _crossesZero(pending)) revert MarketNotSingleSidedError();

        if (newOrder.protection != 0) return; // the rest does not apply to liquidations

        if (msg.sender != account && !(_isEmpty(newOrder) && newOrder.collateral >= 0))
            revert MarketOperatorNotAllowedError();

        uint256 worst = pending.invalidation != 0
            ? _magnitude(latestPosition) + pending.makerPos + pending.longPos + pending.shortPos
            : _magnitude(currentPosition);
        if (_unsafeFrom(local.collateral) < _requirement(worst, latest.price, risk.margin, risk.minMargin))
            revert MarketInsufficientMarginError();

        if (pending.protection != 0 && newOrder.protection == 0) revert MarketProtectedError();
        if (local.collateral < 0) revert MarketInsufficientCollateralError();
    }

    function _validateProtection(Local memory local, OracleVersion memory latest, Position memory latestPosition,
                                 Order memory pending, Order memory newOrder) private view returns (bool) {
        if (_crossesZero(pending)) {
            if (!_isEmpty(newOrder)) return false;
        } else {
            if (_neg(pending) != _magnitude(latestPosition)) return false; // must close the whole latest position
        }
        RiskParameter memory risk = _riskParameter;
        uint256 maintenance = _requirement(_magnitude(latestPosition), latest.price, risk.maintenance, risk.minMaintenance);
        if (_unsafeFrom(local.collateral) >= maintenance) return false; // latest position is maintained
        if (newOrder.collateral != 0) return false;
        if (newOrder.makerPos + newOrder.longPos + newOrder.shortPos != 0) return false;
        return true;
    }

    /// PositionLib._collateralRequirement: max(magnitude x |price| x ratio, fixed), 0 for no position.
    function _requirement(uint256 magnitude, int256 price, uint256 ratio, uint256 fixedAmount)
        private pure returns (uint256)
    {
        if (magnitude == 0) return 0;
        uint256 absPrice = price < 0 ? uint256(-price) : uint256(price);
        uint256 r = magnitude * absPrice / UBASE * ratio / UBASE;
        return r > fixedAmount ? r : fixedAmount;
    }

    function _unsafeFrom(int256 x) private pure returns (uint256) {
        return x < 0 ? 0 : uint256(x);
    }

    // ---- OrderLib / PositionLib ----------------------------------------------------------------

    function _orderFrom(uint256 timestamp, Position memory current, int256 collateral, uint256 newLong,
                        uint256 newShort, bool protect) private pure returns (Order memory o) {
        o.timestamp = timestamp;
        o.collateral = collateral;
        if (newLong >= current.long) o.longPos = newLong - current.long;
        else o.longNeg = current.long - newLong;
        if (newShort >= current.short) o.shortPos = newShort - current.short;
        else o.shortNeg = current.short - newShort;
        o.protection = protect ? 1 : 0;
        if (!_isEmpty(o)) (o.orders, o.invalidation) = (1, 1);
    }

    function _empty(uint256 timestamp) private pure returns (Order memory o) {
        o.timestamp = timestamp;
    }

    function _isEmpty(Order memory o) private pure returns (bool) {
        return o.makerPos + o.makerNeg + o.longPos + o.longNeg + o.shortPos + o.shortNeg == 0;
    }

    function _neg(Order memory o) private pure returns (uint256) {
        return o.makerNeg + o.longNeg + o.shortNeg;
    }

    function _crossesZero(Order memory o) private pure returns (bool) {
        return o.longPos + o.longNeg != 0 && o.shortPos + o.shortNeg != 0;
    }

    function _add(Order memory self, Order memory o) private pure {
        self.orders += o.orders;
        self.collateral += o.collateral;
        self.protection += o.protection;
        self.invalidation += o.invalidation;
        self.makerPos += o.makerPos;
        self.makerNeg += o.makerNeg;
        self.longPos += o.longPos;
        self.longNeg += o.longNeg;
        self.shortPos += o.shortPos;
        self.shortNeg += o.shortNeg;
    }

    function _sub(Order memory self, Order memory o) private pure {
        self.orders -= o.orders;
        self.collateral -= o.collateral;
        self.protection -= o.protection;
        self.invalidation -= o.invalidation;
        self.makerPos -= o.makerPos;
        self.makerNeg -= o.makerNeg;
        self.longPos -= o.longPos;
        self.longNeg -= o.longNeg;
        self.shortPos -= o.shortPos;
        self.shortNeg -= o.shortNeg;
    }

    function _apply(Position memory p, Order memory o) private pure returns (Position memory) {
        return Position(p.timestamp, p.maker + o.makerPos - o.makerNeg, p.long + o.longPos - o.longNeg,
                        p.short + o.shortPos - o.shortNeg);
    }

    function _magnitude(Position memory p) private pure returns (uint256) {
        uint256 m = p.long > p.short ? p.long : p.short;
        return m > p.maker ? m : p.maker;
    }
}
