// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

// Capital-free liquidations for the keeper: borrow the repayment inside the transaction, liquidate,
// swap what was seized back on Uniswap V3, repay, and leave the profit to the owner in one token.
// The interfaces below declare only what the flows call, with the signatures of the protocols' own
// sources (package and file named on each).

// EIP-20. transfer/approve are sent through LiquidationExecutor._tokenCall (tokens that return nothing work).
interface IERC20 {
    function balanceOf(address account) external view returns (uint256);
    function transfer(address to, uint256 amount) external returns (bool);
    function approve(address spender, uint256 amount) external returns (bool);
}

// From @aave/core-v3 contracts/interfaces/IPool.sol
interface IAavePool {
    function flashLoanSimple(address receiverAddress, address asset, uint256 amount, bytes calldata params, uint16 referralCode)
        external;
    function liquidationCall(address collateralAsset, address debtAsset, address user, uint256 debtToCover, bool receiveAToken)
        external;
}

// From @morpho-org/morpho-blue src/interfaces/IMorpho.sol
struct MarketParams {
    address loanToken;
    address collateralToken;
    address oracle;
    address irm;
    uint256 lltv;
}

interface IMorpho {
    function flashLoan(address token, uint256 assets, bytes calldata data) external;
    function liquidate(MarketParams memory marketParams, address borrower, uint256 seizedAssets, uint256 repaidShares, bytes calldata data)
        external
        returns (uint256, uint256);
}

// From @uniswap/v3-core contracts/interfaces/pool/IUniswapV3PoolImmutables.sol, IUniswapV3PoolActions.sol
interface IUniswapV3Pool {
    function token0() external view returns (address);
    function token1() external view returns (address);
    function flash(address recipient, uint256 amount0, uint256 amount1, bytes calldata data) external;
}

// From @uniswap/v3-periphery contracts/interfaces/ISwapRouter.sol (SwapRouter v1: the params carry a deadline)
interface ISwapRouter {
    struct ExactInputParams {
        bytes path;
        address recipient;
        uint256 deadline;
        uint256 amountIn;
        uint256 amountOutMinimum;
    }

    function exactInput(ExactInputParams calldata params) external payable returns (uint256 amountOut);
}

// From Compound III (compound-finance/comet contracts/CometMainInterface.sol)
interface IComet {
    function absorb(address absorber, address[] calldata accounts) external;
    function buyCollateral(address asset, uint256 minAmount, uint256 baseAmount, address recipient) external;
}

// From @gearbox-protocol/core-v3 contracts/interfaces/ICreditFacadeV3.sol, base/IPriceFeedStore.sol
struct MultiCall {
    address target;
    bytes callData;
}

struct PriceUpdate {
    address priceFeed;
    bytes data;
}

interface ICreditFacadeV3 {
    function liquidateCreditAccount(address creditAccount, address to, MultiCall[] calldata calls, bytes memory lossPolicyData)
        external;
    function partiallyLiquidateCreditAccount(
        address creditAccount,
        address token,
        uint256 repaidAmount,
        uint256 minSeizedAmount,
        address to,
        PriceUpdate[] calldata priceUpdates
    ) external returns (uint256 seizedAmount);
}

// From @gearbox-protocol/core-v3 contracts/interfaces/ICreditFacadeV3Multicall.sol (the inner calls of a facade multicall)
interface ICreditFacadeV3Multicall {
    function onDemandPriceUpdates(PriceUpdate[] calldata updates) external;
    function addCollateral(address token, uint256 amount) external;
    function withdrawCollateral(address token, uint256 amount, address to) external;
}

/// @title LiquidationExecutor
/// @notice Owned by the keeper's signer. Only the owner starts a flow or withdraws. Each flow runs
///  inside one transaction: the executor borrows (flash loan) or is credited (Morpho's liquidation
///  callback) what the liquidation needs, liquidates, swaps the seized collateral back on Uniswap V3,
///  repays, and sends every token of the flow to the owner. It reverts unless the owner's profit in
///  the token it named is at least the minimum it passed. Nothing stays approved or held.
/// @dev Every callback accepts only the one contract the running flow has just called, with the data
///  the flow handed to it (transient storage, EIP-1153: gone at the end of the transaction), once.
contract LiquidationExecutor {
    /// Where the flash liquidity comes from: Morpho Blue (no fee), an Aave V3 Pool (premium), or a
    /// Uniswap V3 pool (its fee tier; must not be a pool the swap path goes through: it is locked).
    enum FlashSource {
        MorphoBlue,
        AaveV3,
        UniswapV3
    }

    /// What runs inside a flash loan's callback.
    enum Job {
        AaveV3,
        CompoundV3,
        GearboxPartial,
        GearboxFull
    }

    struct Flash {
        FlashSource source;
        address lender; // Morpho, the Aave Pool, or the Uniswap V3 pool holding the token
    }

    /// SwapRouter.exactInput of `amountIn` (0: the whole balance of the path's first token).
    struct Swap {
        address router;
        bytes path; // tokenIn | fee (3 bytes) | token | ... | tokenOut
        uint256 amountIn;
        uint256 amountOutMinimum;
    }

    /// The flow reverts unless this contract's balance of `token` grows by at least `min`.
    struct Profit {
        address token;
        uint256 min;
    }

    struct AaveV3Liquidation {
        address pool;
        address collateralAsset;
        address debtAsset;
        address user;
        uint256 debtToCover; // also the flash-loan amount; what the Pool does not pull repays the loan
    }

    struct MorphoBlueLiquidation {
        address morpho;
        MarketParams market;
        address borrower;
        uint256 seizedAssets; // exactly one of seizedAssets, repaidShares is non-zero
        uint256 repaidShares;
    }

    struct CompoundV3Liquidation {
        address comet;
        address baseToken;
        address[] absorb; // accounts to absorb first (may be empty)
        address asset; // collateral to buy
        uint256 baseAmount; // base paid, also the flash-loan amount
        uint256 minAmount; // minimum collateral bought
    }

    struct GearboxPartialLiquidation {
        address facade;
        address creditManager; // pulls the underlying: approved, not the facade
        address underlying;
        address creditAccount;
        address token; // collateral seized
        uint256 repaidAmount; // also the flash-loan amount
        uint256 minSeizedAmount;
        PriceUpdate[] priceUpdates;
    }

    struct GearboxFullLiquidation {
        address facade;
        address creditManager;
        address underlying;
        address creditAccount;
        uint256 addAmount; // underlying added to the account, also the flash-loan amount
        address[] collaterals; // each withdrawn to this contract (all but 1 wei: withdrawCollateral(max))
        PriceUpdate[] priceUpdates; // on-demand updates, first call of the multicall when present
        bytes lossPolicyData;
    }

    address public immutable owner;

    bool private transient _inFlow;
    address private transient _callbackFrom; // the one contract allowed to call back next
    bytes32 private transient _callbackHash; // keccak256 of the data it must call back with
    address private transient _profitToken;
    uint256 private transient _profitBase; // balance of the profit token when the flow started
    uint256 private transient _minProfit;

    event Liquidation(address indexed profitToken, uint256 profit);

    error NotOwner();
    error FlowActive();
    error UnexpectedCallback();
    error CallbackMissing();
    error BadSwapPath();
    error FlashTokenNotInPool();
    error TokenCallFailed(address token);
    error InsufficientProfit(int256 profit, uint256 minProfit);

    constructor(address owner_) {
        owner = owner_;
    }

    // ------------------------------------------------------------------ owner entry points

    /// Aave V3: flash the debt asset, Pool.liquidationCall, swap the collateral to the debt asset, repay.
    function liquidateAaveV3(AaveV3Liquidation calldata l, Flash calldata flash, Swap calldata swap, Profit calldata profit)
        external
        returns (uint256)
    {
        _begin(profit);
        _checkPath(swap.path, l.collateralAsset, l.debtAsset);
        _flashBorrow(flash, l.debtAsset, l.debtToCover, abi.encode(Job.AaveV3, abi.encode(l, swap)));
        return _finish(_pair(l.debtAsset, l.collateralAsset));
    }

    /// Morpho Blue: Morpho.liquidate with callback data; the swap runs in onMorphoLiquidate, before
    /// Morpho pulls the repayment. No flash loan.
    function liquidateMorphoBlue(MorphoBlueLiquidation calldata m, Swap calldata swap, Profit calldata profit)
        external
        returns (uint256)
    {
        _begin(profit);
        address loan = m.market.loanToken;
        _checkPath(swap.path, m.market.collateralToken, loan);
        bytes memory data = abi.encode(loan, swap);
        _expectCallback(m.morpho, data);
        IMorpho(m.morpho).liquidate(m.market, m.borrower, m.seizedAssets, m.repaidShares, data);
        _approve(loan, m.morpho, 0);
        return _finish(_pair(loan, m.market.collateralToken));
    }

    /// Compound III: absorb, then flash the base token, buyCollateral, swap the collateral to base, repay.
    function liquidateCompoundV3(CompoundV3Liquidation calldata c, Flash calldata flash, Swap calldata swap, Profit calldata profit)
        external
        returns (uint256)
    {
        _begin(profit);
        _checkPath(swap.path, c.asset, c.baseToken);
        if (c.absorb.length != 0) IComet(c.comet).absorb(address(this), c.absorb);
        _flashBorrow(flash, c.baseToken, c.baseAmount, abi.encode(Job.CompoundV3, abi.encode(c, swap)));
        return _finish(_pair(c.baseToken, c.asset));
    }

    /// Gearbox V3 partial liquidation: flash the underlying, partiallyLiquidateCreditAccount, swap the
    /// seized token to the underlying, repay.
    function liquidateGearboxPartial(
        GearboxPartialLiquidation calldata g,
        Flash calldata flash,
        Swap calldata swap,
        Profit calldata profit
    ) external returns (uint256) {
        _begin(profit);
        _checkPath(swap.path, g.token, g.underlying);
        _flashBorrow(flash, g.underlying, g.repaidAmount, abi.encode(Job.GearboxPartial, abi.encode(g, swap)));
        return _finish(_pair(g.underlying, g.token));
    }

    /// Gearbox V3 full liquidation: flash the underlying, liquidateCreditAccount with a multicall that
    /// adds it and withdraws every collateral here, swap each collateral to the underlying, repay.
    function liquidateGearboxFull(
        GearboxFullLiquidation calldata g,
        Flash calldata flash,
        Swap[] calldata swaps,
        Profit calldata profit
    ) external returns (uint256) {
        _begin(profit);
        for (uint256 i; i < swaps.length; ++i) _member(_pathStart(swaps[i].path, g.underlying), g.collaterals);
        _flashBorrow(flash, g.underlying, g.addAmount, abi.encode(Job.GearboxFull, abi.encode(g, swaps)));
        address[] memory tokens = new address[](g.collaterals.length + 1);
        tokens[0] = g.underlying;
        for (uint256 i; i < g.collaterals.length; ++i) tokens[i + 1] = g.collaterals[i];
        return _finish(tokens);
    }

    /// Send `amount` (type(uint256).max: the whole balance) of `token` held here to `to`.
    function withdraw(address token, address to, uint256 amount) external {
        if (msg.sender != owner) revert NotOwner();
        if (_inFlow) revert FlowActive();
        if (amount == type(uint256).max) amount = _balance(token);
        _transfer(token, to, amount);
    }

    // ------------------------------------------------------------------ callbacks

    /// Morpho Blue, src/Morpho.sol liquidate: sends the seized collateral to msg.sender, calls this on
    /// msg.sender when data is not empty, then pulls `repaidAssets` of the loan token (transferFrom).
    function onMorphoLiquidate(uint256 repaidAssets, bytes calldata data) external {
        _enterCallback(data);
        (address loan, Swap memory swap) = abi.decode(data, (address, Swap));
        _swap(swap);
        _repayByApproval(loan, msg.sender, repaidAssets);
    }

    /// Morpho Blue, src/Morpho.sol flashLoan: sends `assets`, calls this on msg.sender, then pulls
    /// `assets` back (transferFrom). No fee.
    function onMorphoFlashLoan(uint256 assets, bytes calldata data) external {
        _enterCallback(data);
        (address token, uint256 amount, bytes memory job) = abi.decode(data, (address, uint256, bytes));
        if (assets != amount) revert UnexpectedCallback();
        _runJob(job);
        _repayByApproval(token, msg.sender, amount);
    }

    /// Aave V3, FlashLoanLogic.executeFlashLoanSimple: sends `amount`, calls this on the receiver with
    /// the premium (amount x FLASHLOAN_PREMIUM_TOTAL bps) and the initiator (the caller of
    /// flashLoanSimple), requires true, then pulls amount + premium (transferFrom).
    function executeOperation(address asset, uint256 amount, uint256 premium, address initiator, bytes calldata params)
        external
        returns (bool)
    {
        _enterCallback(params);
        if (initiator != address(this)) revert UnexpectedCallback();
        (address token, uint256 expected, bytes memory job) = abi.decode(params, (address, uint256, bytes));
        if (asset != token || amount != expected) revert UnexpectedCallback();
        _runJob(job);
        _repayByApproval(asset, msg.sender, amount + premium);
        return true;
    }

    /// Uniswap V3, UniswapV3Pool.flash: sends the amounts to the recipient, calls this on msg.sender
    /// with the fees (amount x fee tier, rounded up), then requires its balances grown by the fees:
    /// repaid by transfer.
    function uniswapV3FlashCallback(uint256 fee0, uint256 fee1, bytes calldata data) external {
        _enterCallback(data);
        (address token, uint256 amount, bytes memory job) = abi.decode(data, (address, uint256, bytes));
        _runJob(job);
        uint256 owed = amount + fee0 + fee1; // only the borrowed side's fee is non-zero
        _requireRepayable(token, owed);
        _transfer(token, msg.sender, owed);
    }

    // ------------------------------------------------------------------ flow state

    function _begin(Profit calldata profit) internal {
        if (msg.sender != owner) revert NotOwner();
        if (_inFlow) revert FlowActive();
        _inFlow = true;
        _profitToken = profit.token;
        _minProfit = profit.min;
        _profitBase = _balance(profit.token);
    }

    /// The profit check, then every token of the flow (and the profit token) to the owner.
    function _finish(address[] memory tokens) internal returns (uint256 profit) {
        if (_callbackFrom != address(0)) revert CallbackMissing();
        address token = _profitToken;
        int256 gain = int256(_balance(token)) - int256(_profitBase);
        if (gain < int256(_minProfit)) revert InsufficientProfit(gain, _minProfit);
        profit = uint256(gain);
        for (uint256 i; i < tokens.length; ++i) _sweep(tokens[i]);
        _sweep(token);
        emit Liquidation(token, profit);
        _inFlow = false;
    }

    /// The next callback must come from `from` with exactly `data`.
    function _expectCallback(address from, bytes memory data) internal {
        _callbackFrom = from;
        _callbackHash = keccak256(data);
    }

    /// A callback is accepted once, from the contract this flow called, with the data it was given.
    function _enterCallback(bytes calldata data) internal {
        if (!_inFlow || msg.sender != _callbackFrom || keccak256(data) != _callbackHash) revert UnexpectedCallback();
        _callbackFrom = address(0);
        _callbackHash = bytes32(0);
    }

    // ------------------------------------------------------------------ flash liquidity

    /// Borrow `amount` of `token` from the flash source; its callback runs `job` and repays.
    function _flashBorrow(Flash calldata flash, address token, uint256 amount, bytes memory job) internal {
        bytes memory data = abi.encode(token, amount, job);
        _expectCallback(flash.lender, data);
        if (flash.source == FlashSource.MorphoBlue) {
            IMorpho(flash.lender).flashLoan(token, amount, data);
        } else if (flash.source == FlashSource.AaveV3) {
            IAavePool(flash.lender).flashLoanSimple(address(this), token, amount, data, 0);
        } else {
            _uniswapFlash(IUniswapV3Pool(flash.lender), token, amount, data);
            return; // repaid by transfer: no allowance given
        }
        _approve(token, flash.lender, 0); // the lender pulled what it was owed
    }

    function _uniswapFlash(IUniswapV3Pool pool, address token, uint256 amount, bytes memory data) internal {
        if (pool.token0() == token) pool.flash(address(this), amount, 0, data);
        else if (pool.token1() == token) pool.flash(address(this), 0, amount, data);
        else revert FlashTokenNotInPool();
    }

    /// Let `lender` pull `owed` once the callback returns (Morpho, Aave).
    function _repayByApproval(address token, address lender, uint256 owed) internal {
        _requireRepayable(token, owed);
        _approve(token, lender, owed);
    }

    /// Before a repayment: the balance covers `owed` and, in the profit token, also the minimum
    /// profit. Checked here so that a flow that cannot pay reverts with the profit check.
    function _requireRepayable(address token, uint256 owed) internal view {
        int256 left = int256(_balance(token)) - int256(owed);
        uint256 need;
        if (token == _profitToken) {
            left -= int256(_profitBase);
            need = _minProfit;
        }
        if (left < int256(need)) revert InsufficientProfit(left, need);
    }

    function _runJob(bytes memory job) internal {
        (Job kind, bytes memory args) = abi.decode(job, (Job, bytes));
        if (kind == Job.AaveV3) {
            (AaveV3Liquidation memory l, Swap memory s) = abi.decode(args, (AaveV3Liquidation, Swap));
            _aaveLiquidationCall(l);
            _swap(s);
        } else if (kind == Job.CompoundV3) {
            (CompoundV3Liquidation memory c, Swap memory s) = abi.decode(args, (CompoundV3Liquidation, Swap));
            _cometBuyCollateral(c);
            _swap(s);
        } else if (kind == Job.GearboxPartial) {
            (GearboxPartialLiquidation memory g, Swap memory s) = abi.decode(args, (GearboxPartialLiquidation, Swap));
            _gearboxPartial(g);
            _swap(s);
        } else {
            (GearboxFullLiquidation memory g, Swap[] memory s) = abi.decode(args, (GearboxFullLiquidation, Swap[]));
            _gearboxFull(g);
            for (uint256 i; i < s.length; ++i) _swap(s[i]);
        }
    }

    // ------------------------------------------------------------------ protocol steps

    /// Aave V3 Pool.liquidationCall (LiquidationLogic): pulls up to debtToCover of the debt asset from
    /// msg.sender, sends the seized collateral (receiveAToken = false: the underlying) to msg.sender.
    function _aaveLiquidationCall(AaveV3Liquidation memory l) internal {
        _approve(l.debtAsset, l.pool, l.debtToCover);
        IAavePool(l.pool).liquidationCall(l.collateralAsset, l.debtAsset, l.user, l.debtToCover, false);
        _approve(l.debtAsset, l.pool, 0);
    }

    /// Comet.buyCollateral: pulls baseAmount of the base token from msg.sender, sends at least
    /// minAmount of the collateral (at the store-front discount) to the recipient.
    function _cometBuyCollateral(CompoundV3Liquidation memory c) internal {
        _approve(c.baseToken, c.comet, c.baseAmount);
        IComet(c.comet).buyCollateral(c.asset, c.minAmount, c.baseAmount, address(this));
        _approve(c.baseToken, c.comet, 0);
    }

    /// CreditFacadeV3.partiallyLiquidateCreditAccount: the credit manager pulls repaidAmount of the
    /// underlying from msg.sender; the seized token goes to `to`.
    function _gearboxPartial(GearboxPartialLiquidation memory g) internal {
        _approve(g.underlying, g.creditManager, g.repaidAmount);
        ICreditFacadeV3(g.facade).partiallyLiquidateCreditAccount(
            g.creditAccount, g.token, g.repaidAmount, g.minSeizedAmount, address(this), g.priceUpdates
        );
        _approve(g.underlying, g.creditManager, 0);
    }

    /// CreditFacadeV3.liquidateCreditAccount (4 arguments, with lossPolicyData): runs the calls on the
    /// account, then the credit manager repays the pool from the account's underlying and sends the
    /// underlying beyond totalValue x liquidationDiscount to `to`.
    function _gearboxFull(GearboxFullLiquidation memory g) internal {
        _approve(g.underlying, g.creditManager, g.addAmount);
        ICreditFacadeV3(g.facade).liquidateCreditAccount(g.creditAccount, address(this), _gearboxCalls(g), g.lossPolicyData);
        _approve(g.underlying, g.creditManager, 0);
    }

    /// [onDemandPriceUpdates(updates)] (must be first), addCollateral(underlying, addAmount) (pulled
    /// from msg.sender through the credit manager), withdrawCollateral(token, max, this) per collateral
    /// (max: all but 1 wei, which keeps the account's balance from increasing).
    function _gearboxCalls(GearboxFullLiquidation memory g) internal view returns (MultiCall[] memory calls) {
        uint256 first = g.priceUpdates.length == 0 ? 0 : 1;
        calls = new MultiCall[](first + 1 + g.collaterals.length);
        if (first == 1) {
            calls[0] = MultiCall(g.facade, abi.encodeCall(ICreditFacadeV3Multicall.onDemandPriceUpdates, (g.priceUpdates)));
        }
        calls[first] = MultiCall(g.facade, abi.encodeCall(ICreditFacadeV3Multicall.addCollateral, (g.underlying, g.addAmount)));
        for (uint256 i; i < g.collaterals.length; ++i) {
            calls[first + 1 + i] = MultiCall(
                g.facade,
                abi.encodeCall(ICreditFacadeV3Multicall.withdrawCollateral, (g.collaterals[i], type(uint256).max, address(this)))
            );
        }
    }

    // ------------------------------------------------------------------ swaps

    /// SwapRouter.exactInput: pulls amountIn of the path's first token (approved for exactly that),
    /// pays at least amountOutMinimum of its last token here, or reverts "Too little received".
    function _swap(Swap memory s) internal {
        address tokenIn = _firstToken(s.path);
        uint256 amountIn = s.amountIn == 0 ? _balance(tokenIn) : s.amountIn;
        _approve(tokenIn, s.router, amountIn);
        ISwapRouter(s.router).exactInput(
            ISwapRouter.ExactInputParams({
                path: s.path,
                recipient: address(this),
                deadline: block.timestamp,
                amountIn: amountIn,
                amountOutMinimum: s.amountOutMinimum
            })
        );
        _approve(tokenIn, s.router, 0);
    }

    /// The path must start at tokenIn and end at tokenOut.
    function _checkPath(bytes calldata path, address tokenIn, address tokenOut) internal pure {
        if (_pathStart(path, tokenOut) != tokenIn) revert BadSwapPath();
    }

    /// A path (v3-periphery libraries/Path.sol) is 20 + 23k bytes (k >= 1 pools) ending at tokenOut:
    /// returns its first token.
    function _pathStart(bytes calldata path, address tokenOut) internal pure returns (address) {
        if (path.length < 43 || (path.length - 20) % 23 != 0) revert BadSwapPath();
        if (address(bytes20(path[path.length - 20:])) != tokenOut) revert BadSwapPath();
        return address(bytes20(path[:20]));
    }

    /// Reverts BadSwapPath unless `token` is in `set`.
    function _member(address token, address[] calldata set) internal pure {
        for (uint256 i; i < set.length; ++i) {
            if (set[i] == token) return;
        }
        revert BadSwapPath();
    }

    function _firstToken(bytes memory path) internal pure returns (address token) {
        assembly {
            token := shr(96, mload(add(path, 32)))
        }
    }

    // ------------------------------------------------------------------ tokens

    function _balance(address token) internal view returns (uint256) {
        return IERC20(token).balanceOf(address(this));
    }

    function _sweep(address token) internal {
        uint256 amount = _balance(token);
        if (amount != 0) _transfer(token, owner, amount);
    }

    function _approve(address token, address spender, uint256 amount) internal {
        _tokenCall(token, abi.encodeCall(IERC20.approve, (spender, amount)));
    }

    function _transfer(address token, address to, uint256 amount) internal {
        _tokenCall(token, abi.encodeCall(IERC20.transfer, (to, amount)));
    }

    /// transfer / approve: success is no revert and either `true` or nothing returned by a contract.
    function _tokenCall(address token, bytes memory call) internal {
        (bool ok, bytes memory ret) = token.call(call);
        if (!ok || (ret.length == 0 ? token.code.length == 0 : !abi.decode(ret, (bool)))) revert TokenCallFailed(token);
    }

    function _pair(address a, address b) internal pure returns (address[] memory tokens) {
        tokens = new address[](2);
        tokens[0] = a;
        tokens[1] = b;
    }
}
