// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import "./PerennialTypes.sol";

/// Perennial V2's Market (equilibria-xyz/perennial-v2 packages/core/contracts/Market.sol,
/// libs/{InvariantLib,VersionLib,CheckpointLib}.sol, types/{Position,Local,Order,Version}.sol) reduced to
/// what a liquidation keeper meets, with the real signatures, events, errors, units and rules:
/// - update(account, newMaker, newLong, newShort, collateral, protect) places an order for the oracle's
///   current version (the Oracle router's) and requests that version for the account;
/// - settlement is global then local: the global pending orders settle in version order once the
///   oracle's latest version reaches them, then the market "syncs" to the latest version; each
///   settled version accumulates, per unit of maker / long / short position, the price PnL and the
///   funding since the previous one (VersionLib: taker positions socialised against makers, funding
///   from the P controller's rate on the socialised taker notional, longs paying a positive rate,
///   the minor side's share beyond its size going to makers); an account's collateral moves by those
///   accumulated values times its position between its checkpoints (CheckpointLib);
/// - a version with orders charges its settlement fee (the oracle receipt's) once globally into
///   Global.oracleFee, which the Oracle router claims (claimFee(oracle)); each order pays its share
///   (settlementFee x orders / version orders); a protected order at a valid version also pays
///   liquidationFee = settlementFee x riskParameter.liquidationFee, credited to
///   liquidators[account][id] (Local.claimable); an invalid version voids the orders at it (no
///   position change, no liquidation fee; the settlement fee is still charged);
/// - InvariantLib: over-close, protection (full close, no collateral change, no increase, latest
///   position NOT maintained at the latest version: collateral < max(|position| x |price| x
///   maintenance, minMaintenance)), stale price (current - latest >= staleAfter), single-sided,
///   operator (skipped for protected orders), margin, protected-pending, negative collateral;
/// - UFixed6/Fixed6 are 6-decimal integers; the DSU token has 18 decimals (x 1e12 on transfers);
///   claimFee(account) pays Local.claimable (and, to the oracle, Global.oracleFee) to the account.
/// Left out: maker accounts (the counterparty is an implicit maker pool of fixed size), interest,
/// trade fees and price impact, intents/guarantees (always empty), referrers, operators, checkpoints.
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
    /// Market._processOrderLocal emits AccountPositionProcessed each time an account's checkpoint
    /// advances (a pending order settled, or the sync to the latest version); the real event also
    /// carries a CheckpointAccumulationResult, left out here (the account in topic 1 is what matters).
    event AccountPositionProcessed(address indexed account, uint256 orderId, Order order);

    /// The per-version accumulators (Version.sol) the stand-in keeps.
    struct VersionStandIn {
        bool valid;
        int256 price;
        int256 makerValue; // Fixed6 per unit of position, cumulative
        int256 longValue;
        int256 shortValue;
        uint256 settlementFee; // the version's receipt settlement fee, shared by its orders
        uint256 orders; // orders settled at the version
        uint256 liquidationFee; // charged to each protected order at the version
    }

    int256 private constant BASE = 1e6;
    uint256 private constant UBASE = 1e6;
    uint256 private constant TOKEN18 = 1e12; // UFixed6 -> UFixed18
    uint256 private constant YEAR = 365 days;

    IERC20 public immutable token;
    IOracleProviderStandIn public immutable oracle;
    address public immutable factory; // root Instance.factory(): the creator (MarketFactoryStandIn)

    RiskParameter private _riskParameter;
    Global private _global;
    Position private _position; // global latest position (maker: the implicit pool)
    mapping(uint256 => Order) private _pendingOrder; // global pending order by global id
    mapping(uint256 => VersionStandIn) private _versions;
    mapping(address => Local) private _locals;
    mapping(address => Position) private _positions;
    mapping(address => mapping(uint256 => Order)) private _pendingOrders;
    mapping(address => Order) private _pendings;
    mapping(address => mapping(uint256 => address)) public liquidators;
    bool private _entered;

    constructor(IERC20 token_, IOracleProviderStandIn oracle_, RiskParameter memory risk, uint256 makerPool) {
        token = token_;
        oracle = oracle_;
        factory = msg.sender;
        _riskParameter = risk;
        _position.maker = makerPool;
        OracleVersion memory latest = oracle_.latest();
        (_position.timestamp, _global.latestPrice) = (latest.timestamp, latest.price);
        _versions[latest.timestamp] = VersionStandIn(latest.valid, latest.price, 0, 0, 0, 0, 0, 0);
    }

    modifier nonReentrant() {
        require(!_entered, "reentrant");
        _entered = true;
        _;
        _entered = false;
    }

    // ---- views ---------------------------------------------------------------------------------

    function riskParameter() external view returns (RiskParameter memory) { return _riskParameter; }
    function global() external view returns (Global memory) { return _global; }
    function position() external view returns (Position memory) { return _position; }
    function positions(address account) external view returns (Position memory) { return _positions[account]; }
    function locals(address account) external view returns (Local memory) { return _locals[account]; }
    function pendings(address account) external view returns (Order memory) { return _pendings[account]; }
    function pendingOrder(uint256 id) external view returns (Order memory) { return _pendingOrder[id]; }
    function pendingOrders(address account, uint256 id) external view returns (Order memory) {
        return _pendingOrders[account][id];
    }
    /// Stand-in view of the accumulators at a settled version (the real Market's versions() has its
    /// own release's Version layout).
    function standInVersion(uint256 timestamp) external view returns (VersionStandIn memory) {
        return _versions[timestamp];
    }

    // ---- governance ----------------------------------------------------------------------------

    /// root Instance's onlyOwner authority: the owner of the factory that created the market.
    function owner() public view returns (address) {
        return factory.code.length == 0 ? factory : IFactoryStandIn(factory).owner();
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
        if (account == address(oracle)) (feeReceived, _global.oracleFee) = (_global.oracleFee, 0);
        feeReceived += _locals[account].claimable;
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
            Order memory orderGlobal = _pendingOrder[_global.currentId];
            if (currentTimestamp > orderGlobal.timestamp) orderGlobal = _empty(currentTimestamp);
            if (orderGlobal.timestamp != _pendingOrder[_global.currentId].timestamp) _global.currentId++;
            _add(orderGlobal, newOrder);
            _pendingOrder[_global.currentId] = orderGlobal;
            oracle.request(address(this), account);
        }
        currentPosition = _apply(currentPosition, newOrder);

        Guarantee memory noGuarantee;
        emit OrderCreated(account, newOrder, noGuarantee, liquidator, address(0), address(0));
        _validate(account, local, latest, currentTimestamp, latestPosition, currentPosition, pending, newOrder);

        _pendingOrders[account][local.currentId] = orderLocal;
        _pendings[account] = pending;
        _locals[account] = local;
        liquidators[account][local.currentId] = liquidator;

        if (collateral > 0) require(token.transferFrom(msg.sender, address(this), uint256(collateral) * TOKEN18), "pull");
        if (collateral < 0) require(token.transfer(msg.sender, uint256(-collateral) * TOKEN18), "push");
    }

    // ---- settlement ----------------------------------------------------------------------------

    function _settle(address account, OracleVersion memory latest) private {
        _settleGlobal(latest);
        _settleLocal(account);
    }

    function _settleGlobal(OracleVersion memory latest) private {
        while (_global.currentId != _global.latestId) {
            Order memory order = _pendingOrder[_global.latestId + 1];
            if (order.timestamp > latest.timestamp) break; // not ready
            _processGlobal(order.timestamp, order);
            _global.latestId++;
        }
        Order memory none;
        if (latest.timestamp > _position.timestamp) _processGlobal(latest.timestamp, none); // sync
    }

    /// VersionLib.accumulate from the global latest version to `timestamp`, then the order applied.
    function _processGlobal(uint256 timestamp, Order memory order) private {
        (OracleVersion memory version, OracleReceipt memory receipt) = oracle.at(timestamp);
        Position memory from = _position;
        VersionStandIn memory next = _versions[from.timestamp];
        int256 fromPrice = _global.latestPrice;
        int256 toPrice = version.valid ? version.price : fromPrice;

        // price PnL of the socialised taker positions; makers take the other side
        int256 pnl = toPrice - fromPrice;
        (uint256 longSoc, uint256 shortSoc) = _socialized(from);
        int256 pnlLong = pnl * int256(longSoc) / BASE;
        int256 pnlShort = -pnl * int256(shortSoc) / BASE;
        _increment(next, -(pnlLong + pnlShort), pnlLong, pnlShort, from);

        // funding from the P controller, on the socialised taker notional at the previous price
        (int256 fMaker, int256 fLong, int256 fShort) = _accumulateFunding(from, fromPrice, timestamp);
        _increment(next, fMaker, fLong, fShort, from);

        (next.valid, next.price) = (version.valid, toPrice);
        (next.settlementFee, next.orders, next.liquidationFee) = (0, order.orders, 0);
        if (order.orders != 0) {
            next.settlementFee = receipt.settlementFee;
            _global.oracleFee += receipt.settlementFee;
        }
        if (version.valid) next.liquidationFee = receipt.settlementFee * _riskParameter.liquidationFee / UBASE;
        _versions[timestamp] = next;

        Position memory to = version.valid ? _apply(from, order) : from;
        to.timestamp = timestamp;
        _position = to;
        _global.latestPrice = toPrice;
        _global.pAccumulator._skew = _normalizedSkew(to);
    }

    function _settleLocal(address account) private {
        Local memory local = _locals[account];
        Position memory pos = _positions[account];
        Order memory pending = _pendings[account];

        while (local.currentId != local.latestId) {
            uint256 id = local.latestId + 1;
            Order memory order = _pendingOrders[account][id];
            if (order.timestamp > _position.timestamp) break; // not settled globally yet
            VersionStandIn memory to = _versions[order.timestamp];
            local.collateral += _accumulated(_versions[pos.timestamp], to, pos);
            if (to.orders != 0) local.collateral -= int256(to.settlementFee * order.orders / to.orders);
            if (order.protection != 0 && to.liquidationFee != 0) {
                local.collateral -= int256(to.liquidationFee);
                address receiver = liquidators[account][id];
                if (receiver == account) local.claimable += to.liquidationFee;
                else _locals[receiver].claimable += to.liquidationFee;
            }
            if (to.valid) pos = _apply(pos, order); // an invalid version voids the order
            pos.timestamp = order.timestamp;
            _sub(pending, order);
            local.latestId = id;
            emit AccountPositionProcessed(account, id, order);
        }
        if (_position.timestamp > pos.timestamp) { // sync to the latest version
            local.collateral += _accumulated(_versions[pos.timestamp], _versions[_position.timestamp], pos);
            pos.timestamp = _position.timestamp;
            emit AccountPositionProcessed(account, local.latestId, _empty(_position.timestamp));
        }
        _locals[account] = local;
        _positions[account] = pos;
        _pendings[account] = pending;
    }

    /// CheckpointLib: (to - from) accumulated values x the position held in between.
    function _accumulated(VersionStandIn memory from, VersionStandIn memory to, Position memory pos)
        private pure returns (int256)
    {
        return (to.makerValue - from.makerValue) * int256(pos.maker) / BASE
            + (to.longValue - from.longValue) * int256(pos.long) / BASE
            + (to.shortValue - from.shortValue) * int256(pos.short) / BASE;
    }

    /// Accumulator6.increment: value += amount / total (Fixed6 div, truncated toward zero).
    function _increment(VersionStandIn memory v, int256 maker, int256 long, int256 short, Position memory from)
        private pure
    {
        if (from.maker != 0) v.makerValue += maker * BASE / int256(from.maker);
        if (from.long != 0) v.longValue += long * BASE / int256(from.long);
        if (from.short != 0) v.shortValue += short * BASE / int256(from.short);
    }

    /// PositionLib: takers are socialised down to what the other side plus makers can carry.
    function _socialized(Position memory p) private pure returns (uint256 longSoc, uint256 shortSoc) {
        longSoc = _min(p.long, p.maker + p.short);
        shortSoc = _min(p.short, p.maker + p.long);
    }

    function _takerSocialized(Position memory p) private pure returns (uint256) {
        uint256 major = p.long > p.short ? p.long : p.short;
        uint256 minor = p.long > p.short ? p.short : p.long;
        return _min(major, minor + p.maker);
    }

    /// Skew normalised by takerFee.scale, in [-1, 1] (the P controller's input).
    function _normalizedSkew(Position memory p) private view returns (int256 s) {
        uint256 scale = _riskParameter.takerFee.scale;
        if (scale == 0) return 0;
        s = (int256(p.long) - int256(p.short)) * BASE / int256(scale);
        if (s > BASE) s = BASE;
        if (s < -BASE) s = -BASE;
    }

    /// VersionLib._accumulateFunding with PAccumulator6 / PController6 (equilibria-xyz/root): the rate
    /// moves by skew / k per second between min and max; funding = average rate over the period x
    /// the socialised taker notional / 365 days (positive: longs pay); the minor side receives its
    /// share up to its size, makers the rest. No funding fee is taken (MarketParameter.fundingFee 0).
    function _accumulateFunding(Position memory from, int256 fromPrice, uint256 toTimestamp)
        private returns (int256 fMaker, int256 fLong, int256 fShort)
    {
        PAccumulator6 memory acc = _global.pAccumulator;
        PController6 memory c = _riskParameter.pController;
        uint256 fromTimestamp = from.timestamp;
        if (toTimestamp <= fromTimestamp) return (0, 0, 0);
        uint256 takerSoc = _takerSocialized(from);
        uint256 notional = takerSoc * uint256(fromPrice < 0 ? -fromPrice : fromPrice) / UBASE;
        (int256 newValue, uint256 intercept) = _compute(c, acc._value, acc._skew, fromTimestamp, toTimestamp);
        int256 funding = _rateTimesNotional(acc._value + newValue, fromTimestamp * UBASE, intercept, notional) / 2
            + _rateTimesNotional(newValue, intercept, toTimestamp * UBASE, notional);
        _global.pAccumulator._value = newValue;

        (fLong, fShort) = (-funding, funding);
        uint256 minor = from.long > from.short ? from.short : from.long;
        int256 makerPortion = takerSoc == 0 ? int256(0) : BASE - int256(minor * UBASE / takerSoc);
        if (from.long > from.short) {
            fMaker = fShort * makerPortion / BASE;
            fShort -= fMaker;
        } else {
            fMaker = fLong * makerPortion / BASE;
            fLong -= fMaker;
        }
    }

    /// PController6.compute: the new rate (clamped to [min, max]) and when (UFixed6 timestamp) the
    /// linear move reached the bound.
    function _compute(PController6 memory c, int256 value, int256 skew, uint256 fromTimestamp, uint256 toTimestamp)
        private pure returns (int256 newValue, uint256 intercept)
    {
        int256 elapsed = int256(toTimestamp - fromTimestamp) * BASE;
        int256 uncapped = value + (c.k == 0 ? int256(0) : elapsed * skew / BASE * BASE / int256(c.k));
        newValue = uncapped > c.max ? c.max : uncapped < c.min ? c.min : uncapped;
        int256 range = uncapped - value;
        uint256 buffer = value > c.max || value < c.min ? 0 : uint256(range > 0 ? c.max - value : value - c.min);
        uint256 toTs = toTimestamp * UBASE;
        if (range == 0) return (newValue, toTs);
        uint256 absRange = uint256(range < 0 ? -range : range);
        intercept = fromTimestamp * UBASE + uint256(elapsed) * buffer / absRange;
        if (intercept > toTs) intercept = toTs;
    }

    /// PAccumulator6._accumulate: rate x (to - from) x notional / 365 days, Fixed6 products.
    function _rateTimesNotional(int256 rate, uint256 from6, uint256 to6, uint256 notional) private pure returns (int256) {
        return rate * int256(to6 - from6) / BASE * int256(notional) / BASE * BASE / int256(YEAR * UBASE);
    }

    function _min(uint256 a, uint256 b) private pure returns (uint256) {
        return a < b ? a : b;
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
