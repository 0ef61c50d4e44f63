// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";
import {Pausable} from "@openzeppelin/contracts/utils/Pausable.sol";
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {IWalletRegistry, requireSuccessor, RecoveryNothingHeld} from "../token/IWalletRegistry.sol";
import {IDigitalCash} from "../token/IDigitalCash.sol";

/// @title Disbursement
/// @notice Payroll and subsidy disbursement (薪资/补助发放): an employer or a government office (the
/// *payer*) pays many people at once. A batch is drafted by the payer or one of its makers and must be
/// approved by one of the payer's checkers, a different key (maker-checker); the total is pulled from
/// the payer at approval and held here, earmarked for the batch, until it is paid, or reclaimed by the
/// payer after the batch's end date.
///
/// Two kinds of batch:
/// - **Explicit**: the rows (recipient, amount) are added in chunks of at most MAX_ROWS before
///   approval; only each chunk's hash is stored. After approval anyone may pay a chunk by sending its
///   rows again (checked against the hash); each chunk pays once.
/// - **Merkle**: one transaction commits a root over leaves (batchId, index, recipient, amount), for a
///   batch of any size. Each leaf is paid once (bitmap): claimed by the recipient, or pushed for them.
///
/// Batch ids are scoped by payer: `createBatch` takes the payer's own batch reference `ref` and the
/// id is `batchIdOf(payer, ref)`, so no one can take (squat) the id of another payer's next batch.
///
/// One recipient cannot block or spoil a page: a row whose recipient the token refuses at payout
/// (not registered, frozen, at a tier balance cap: any refusal) does not revert its chunk or push;
/// it becomes an *exception* carrying the token's error selector as its reason; its amount stays
/// reserved for it and can be paid by `retryException` once the cause is resolved, or returns to the
/// payer with `reclaim` after the end date. Nothing is paid after the end date. What concerns the
/// whole page stops it whole instead, before any row is judged: while the token is paused
/// (`EnforcedPause`) or the payer is frozen or no longer registered (`DisbursePayerNotAdmitted`),
/// every payout, push, claim, retry and reclaim reverts, so nobody can turn an approved chunk into
/// exceptions by calling it at such a time.
///
/// Freeze (the payer is the economic owner of every payout, `payFor(payer, ...)`): a frozen payer
/// cannot fund (approve) a batch (the token refuses the pull); its approved batches pay nothing and
/// reclaim nothing until it is unfrozen (before the end date payouts resume; after it, the payer
/// reclaims); drafting, adding rows, cancelling drafts and officer changes move no money and go on.
/// A frozen recipient's row becomes an exception (Merkle claim: reverts, the leaf stays claimable);
/// it is paid by retry or claim once unfrozen, before the end date, else it returns to the payer.
///
/// @dev Invariant (tested): for every batch, funded == paid + reclaimed + outstanding, where
/// outstanding (held here, exceptions included) is never negative; this contract's token balance is the
/// sum of every batch's outstanding. A batch can only ever pay out what it was funded with, whatever
/// its Merkle tree says.
contract Disbursement is ReentrancyGuard {
    using SafeERC20 for IERC20;

    // ----------------------------------------------------------------------------------------
    // Errors
    // ----------------------------------------------------------------------------------------

    /// @dev The batch reference must be non-zero.
    error DisburseZeroReference();
    /// @dev The payer used this reference already (batch `id`): a batch id can never be used (or paid)
    /// twice.
    error DisburseBatchExists(bytes32 id);
    /// @dev No batch has this id.
    error DisburseUnknownBatch(bytes32 id);
    /// @dev `payer` is not a registered merchant (employer) or institution wallet.
    error DisburseInvalidPayer(address payer);
    /// @dev `account` is neither `payer` nor one of its makers.
    error DisburseNotMaker(address payer, address account);
    /// @dev `account` is not one of `payer`'s checkers.
    error DisburseNotChecker(address payer, address account);
    /// @dev The key that drafted batch `id` cannot approve it.
    error DisburseSelfApproval(bytes32 id, address account);
    /// @dev Only the key that drafted batch `id` may add rows or cancel it.
    error DisburseNotCreator(bytes32 id, address account);
    /// @dev The total must be positive.
    error DisburseZeroTotal();
    /// @dev A Merkle batch needs at least one leaf.
    error DisburseNoLeaves();
    /// @dev The end date must be in the future.
    error DisburseEndInPast(uint64 endsAt, uint256 nowTs);
    /// @dev The operation needs batch `id` in status `expected`; it is in `actual`.
    error DisburseWrongStatus(bytes32 id, Status expected, Status actual);
    /// @dev The operation needs a batch of kind `expected`.
    error DisburseWrongKind(bytes32 id, Kind expected);
    /// @dev A chunk holds 1..`max` rows.
    error DisburseChunkSize(uint256 size, uint256 max);
    /// @dev One `addChunks` call adds 1..`max` chunks.
    error DisburseChunkCount(uint256 count, uint256 max);
    /// @dev Row `row` of the chunk has a zero recipient or a zero amount.
    error DisburseInvalidRow(uint256 row);
    /// @dev The rows would add up to `rowsTotal`, above the batch total `total`.
    error DisburseOverTotal(bytes32 id, uint256 total, uint256 rowsTotal);
    /// @dev The rows add up to `rowsTotal`, not the batch total `total`: the batch is incomplete.
    error DisburseRowsIncomplete(bytes32 id, uint256 total, uint256 rowsTotal);
    /// @dev Batch `id` has no chunk `chunk`.
    error DisburseUnknownChunk(bytes32 id, uint256 chunk);
    /// @dev Chunk `chunk` of batch `id` was paid already.
    error DisburseChunkPaid(bytes32 id, uint256 chunk);
    /// @dev The rows sent are not the rows approved for chunk `chunk`.
    error DisburseChunkMismatch(bytes32 id, uint256 chunk);
    /// @dev Batch `id` has no leaf `index`.
    error DisburseUnknownLeaf(bytes32 id, uint256 index);
    /// @dev Leaf `index` of batch `id` was paid (or became an exception) already.
    error DisburseAlreadyClaimed(bytes32 id, uint256 index);
    /// @dev The proof does not show leaf (`id`, `index`, recipient, amount) under the batch's root.
    error DisburseInvalidProof(bytes32 id, uint256 index);
    /// @dev Batch `id` ended at `endsAt`: nothing more is paid, the payer reclaims the rest.
    error DisburseBatchEnded(bytes32 id, uint64 endsAt);
    /// @dev Batch `id` ends at `endsAt`: it cannot be reclaimed before.
    error DisburseNotEnded(bytes32 id, uint64 endsAt);
    /// @dev Paying `amount` would take batch `id` past its funding (`available` left).
    error DisburseExceedsFunding(bytes32 id, uint256 available, uint256 amount);
    /// @dev Leaf or row `index` of batch `id` is not an open exception.
    error DisburseNoException(bytes32 id, uint256 index);
    /// @dev The token refused the payout without saying why (e.g. out of gas): nothing was recorded.
    error DisburseTransferFailed(bytes32 id, uint256 index);
    /// @dev The payer of batch `id` is frozen or no longer registered: its batch pays (and reclaims)
    /// nothing until that is lifted.
    error DisbursePayerNotAdmitted(bytes32 id, address payer);
    /// @dev The checker's own wallet is frozen by the regulator: it cannot approve (fund) batch `id`.
    error DisburseCheckerFrozen(bytes32 id, address checker);

    // ----------------------------------------------------------------------------------------
    // Events
    // ----------------------------------------------------------------------------------------

    /// @dev `payer` gave `account` the officer role `role` (None removes it).
    event OfficerSet(address indexed payer, address indexed account, Officer role);
    /// @dev A batch was drafted (id = batchIdOf(payer, its reference)). `root` is zero for explicit
    /// batches; `purpose` tags every payout.
    event BatchCreated(
        bytes32 indexed id,
        address indexed payer,
        bytes32 indexed purpose,
        Kind kind,
        address creator,
        uint256 total,
        bytes32 root,
        uint256 leafCount,
        uint64 endsAt
    );
    /// @dev Rows `firstIndex`..`firstIndex + count - 1` were added as chunk `chunk` of an explicit batch.
    event RowsAdded(bytes32 indexed id, uint256 chunk, uint256 firstIndex, uint256 count, uint256 amount, bytes32 rowsHash);
    /// @dev A draft was cancelled; nothing had moved.
    event BatchCancelled(bytes32 indexed id, address by);
    /// @dev A checker approved the batch and its total was taken from the payer.
    event BatchApproved(bytes32 indexed id, address indexed approver, uint256 funded);
    /// @dev Row or leaf `index` paid `amount` to `recipient`.
    event Paid(bytes32 indexed id, uint256 index, address indexed recipient, uint256 amount, bytes32 indexed purpose);
    /// @dev Row or leaf `index` could not be paid; `reason` is the token's error selector. The amount
    /// stays reserved for it.
    event PayoutException(bytes32 indexed id, uint256 index, address indexed recipient, uint256 amount, bytes4 reason);
    /// @dev Chunk `chunk` was paid: `paid` in total, `exceptions` held back as exceptions.
    event ChunkPaid(bytes32 indexed id, uint256 chunk, uint256 paid, uint256 exceptions);
    /// @dev What row or leaf `index` of batch `id` owes the retired `lost` wallet (`amount`, an
    /// exception, or an unclaimed Merkle leaf when `leaf`) is now owed to `successor`, as an exception
    /// paid by `retryException`.
    event PayoutRecovered(
        bytes32 indexed id, uint256 index, address indexed lost, address indexed successor, uint256 amount, bool leaf
    );
    /// @dev After the end date, `amount` (unpaid and unclaimed rows, exceptions included) went back to
    /// the payer and the batch closed.
    event Reclaimed(bytes32 indexed id, address indexed payer, uint256 amount, uint256 exceptionsReturned);

    // ----------------------------------------------------------------------------------------
    // Types and storage
    // ----------------------------------------------------------------------------------------

    /// @notice Most rows in one chunk, and most claims pushed in one transaction.
    uint256 public constant MAX_ROWS = 200;
    /// @notice Most chunks one `addChunks` call adds (1,000 rows, ~64 KB of call data: below the
    /// 128 KB a geth-family node accepts for one transaction).
    uint256 public constant MAX_CHUNKS_PER_CALL = 5;

    enum Kind {
        None,
        Explicit,
        Merkle
    }

    enum Status {
        None,
        Draft,
        Approved,
        Closed,
        Cancelled
    }

    enum Officer {
        None,
        Maker,
        Checker
    }

    struct Row {
        address recipient;
        uint96 amount;
    }

    struct Claim {
        uint256 index;
        address recipient;
        uint96 amount;
        bytes32[] proof;
    }

    struct Batch {
        address payer;
        Kind kind;
        Status status;
        uint64 endsAt;
        address creator;
        uint32 chunkCount; // explicit: chunks added
        uint32 rowCount; // explicit: rows added; Merkle: leaves
        address approver;
        bytes32 purpose;
        bytes32 root; // Merkle only
        uint128 total;
        uint128 rowsTotal; // explicit: sum of the rows added
        uint128 funded;
        uint128 paid;
        uint128 reclaimed;
        uint128 exceptions; // reserved for open exceptions (part of outstanding)
    }

    struct Chunk {
        bytes32 rowsHash;
        uint32 firstIndex;
        uint32 count;
        bool paid;
        uint128 amount;
    }

    struct PayoutHold {
        address recipient;
        uint96 amount;
    }

    IERC20 public immutable cash;
    IWalletRegistry public immutable registry;

    mapping(address payer => mapping(address account => Officer)) public officerOf;
    mapping(bytes32 id => Batch) private _batches;
    mapping(bytes32 id => mapping(uint256 chunk => Chunk)) private _chunks;
    mapping(bytes32 id => mapping(uint256 word => uint256)) private _claimed;
    mapping(bytes32 id => mapping(uint256 index => PayoutHold)) private _exceptions;

    uint256 public totalFunded;
    uint256 public totalPaid;
    uint256 public totalReclaimed;

    constructor(IERC20 cash_, IWalletRegistry registry_) {
        cash = cash_;
        registry = registry_;
    }

    // ----------------------------------------------------------------------------------------
    // Payer: officers
    // ----------------------------------------------------------------------------------------

    /// @notice The caller (a payer) makes `account` one of its makers or checkers, or removes it.
    function setOfficer(address account, Officer role) external {
        officerOf[msg.sender][account] = role;
        emit OfficerSet(msg.sender, account, role);
    }

    // ----------------------------------------------------------------------------------------
    // Maker: drafting
    // ----------------------------------------------------------------------------------------

    /// @notice Draft the batch `ref` (the payer's own batch number) for `payer`: `total` fen,
    /// ending at `endsAt`. With `root` zero it is an explicit batch (add its rows with `addRows`);
    /// otherwise a Merkle batch of `leafCount` leaves, whose leaves commit to the returned id
    /// (compute it first with `batchIdOf`). Returns the id, `batchIdOf(payer, ref)`: ids are
    /// scoped by payer, so only the payer and its makers can take one of its ids.
    function createBatch(
        bytes32 ref,
        address payer,
        bytes32 purpose,
        uint64 endsAt,
        uint128 total,
        bytes32 root,
        uint32 leafCount
    ) external returns (bytes32 id) {
        if (ref == bytes32(0)) revert DisburseZeroReference();
        if (msg.sender != payer && officerOf[payer][msg.sender] != Officer.Maker) {
            revert DisburseNotMaker(payer, msg.sender);
        }
        id = batchIdOf(payer, ref);
        if (_batches[id].status != Status.None) revert DisburseBatchExists(id);
        {
            IWalletRegistry.Kind kind = registry.kindOf(payer);
            if (kind != IWalletRegistry.Kind.Merchant && kind != IWalletRegistry.Kind.Institution) {
                revert DisburseInvalidPayer(payer);
            }
        }
        if (total == 0) revert DisburseZeroTotal();
        if (endsAt <= block.timestamp) revert DisburseEndInPast(endsAt, block.timestamp);
        Kind batchKind = root == bytes32(0) ? Kind.Explicit : Kind.Merkle;
        if (batchKind == Kind.Merkle && leafCount == 0) revert DisburseNoLeaves();

        Batch storage b = _batches[id];
        b.payer = payer;
        b.kind = batchKind;
        b.status = Status.Draft;
        b.endsAt = endsAt;
        b.creator = msg.sender;
        b.purpose = purpose;
        b.total = total;
        if (batchKind == Kind.Merkle) {
            b.root = root;
            b.rowCount = leafCount;
        }
        emit BatchCreated(id, payer, purpose, batchKind, msg.sender, total, root, leafCount, endsAt);
    }

    /// @notice Add the next chunk (1..MAX_ROWS rows) to explicit draft `id`; returns its chunk number.
    /// Only the chunk's hash is stored; the same rows are sent again to pay it.
    function addRows(bytes32 id, Row[] calldata rows) external returns (uint256 chunk) {
        Batch storage b = _rowsDraft(id);
        chunk = _addChunk(id, b, rows);
    }

    /// @notice Add the next `chunks.length` chunks (1..MAX_CHUNKS_PER_CALL, each of 1..MAX_ROWS rows)
    /// to explicit draft `id` in one transaction, numbered in order as that many `addRows` calls
    /// would number them (one `RowsAdded` each); returns the number of the first. Each chunk is still
    /// paid by its own `payChunk`. A large payroll's creation is one transaction per few chunks
    /// instead of one per chunk.
    function addChunks(bytes32 id, Row[][] calldata chunks) external returns (uint256 firstChunk) {
        Batch storage b = _rowsDraft(id);
        if (chunks.length == 0 || chunks.length > MAX_CHUNKS_PER_CALL) {
            revert DisburseChunkCount(chunks.length, MAX_CHUNKS_PER_CALL);
        }
        firstChunk = b.chunkCount;
        for (uint256 i = 0; i < chunks.length; ++i) {
            _addChunk(id, b, chunks[i]);
        }
    }

    /// @notice The creator or the payer abandons a draft; nothing had moved.
    function cancel(bytes32 id) external {
        Batch storage b = _draft(id);
        if (msg.sender != b.creator && msg.sender != b.payer) revert DisburseNotCreator(id, msg.sender);
        b.status = Status.Cancelled;
        emit BatchCancelled(id, msg.sender);
    }

    // ----------------------------------------------------------------------------------------
    // Checker: approval locks the funding
    // ----------------------------------------------------------------------------------------

    /// @notice A checker of the payer, not the key that drafted it, approves draft `id`: its total is
    /// taken from the payer (which must have approved this contract for it) and held for the batch.
    /// A checker whose own wallet is frozen cannot approve (`DisburseCheckerFrozen(id, checker)`).
    function approve(bytes32 id) external nonReentrant {
        Batch storage b = _draft(id);
        if (msg.sender == b.creator) revert DisburseSelfApproval(id, msg.sender);
        if (officerOf[b.payer][msg.sender] != Officer.Checker) revert DisburseNotChecker(b.payer, msg.sender);
        if (registry.isFrozen(msg.sender)) revert DisburseCheckerFrozen(id, msg.sender);
        if (b.kind == Kind.Explicit && b.rowsTotal != b.total) {
            revert DisburseRowsIncomplete(id, b.total, b.rowsTotal);
        }
        if (block.timestamp > b.endsAt) revert DisburseBatchEnded(id, b.endsAt);
        uint128 total = b.total;
        b.status = Status.Approved;
        b.approver = msg.sender;
        b.funded = total;
        totalFunded += total;
        emit BatchApproved(id, msg.sender, total);
        cash.safeTransferFrom(b.payer, address(this), total);
    }

    // ----------------------------------------------------------------------------------------
    // Anyone: payouts go only to the approved recipients
    // ----------------------------------------------------------------------------------------

    /// @notice Pay chunk `chunk` of explicit batch `id`; `rows` must be the rows added for it.
    /// Recipients the token refuses become exceptions; the rest are paid. Reverts whole while the
    /// token is paused or the payer is not admitted.
    function payChunk(bytes32 id, uint256 chunk, Row[] calldata rows) external nonReentrant {
        Batch storage b = _payable(id, Kind.Explicit);
        if (chunk >= b.chunkCount) revert DisburseUnknownChunk(id, chunk);
        Chunk storage c = _chunks[id][chunk];
        if (c.paid) revert DisburseChunkPaid(id, chunk);
        if (keccak256(abi.encode(rows)) != c.rowsHash) revert DisburseChunkMismatch(id, chunk);
        c.paid = true;
        uint256 paid = 0;
        uint256 held = 0;
        for (uint256 i = 0; i < rows.length; ++i) {
            if (_payout(id, b, c.firstIndex + i, rows[i].recipient, rows[i].amount)) {
                paid += rows[i].amount;
            } else {
                held += rows[i].amount;
            }
        }
        emit ChunkPaid(id, chunk, paid, held);
    }

    /// @notice Pay leaf `index` of Merkle batch `id` to `recipient` (the recipient claiming, or anyone
    /// for them). Reverts with the token's error if the recipient cannot receive now; the leaf then
    /// stays claimable.
    function claim(bytes32 id, uint256 index, address recipient, uint96 amount, bytes32[] calldata proof)
        external
        nonReentrant
    {
        Batch storage b = _payable(id, Kind.Merkle);
        _takeLeaf(id, b, index, recipient, amount, proof);
        _debit(id, b, amount);
        emit Paid(id, index, recipient, amount, b.purpose);
        IDigitalCash(address(cash)).payFor(b.payer, recipient, amount, 0);
    }

    /// @notice Push up to MAX_ROWS claims of Merkle batch `id`. Leaves paid already are skipped (a
    /// retried push changes nothing); recipients the token refuses become exceptions. Reverts whole
    /// while the token is paused or the payer is not admitted. Returns how many were paid.
    function pushClaims(bytes32 id, Claim[] calldata claims) external nonReentrant returns (uint256 paidCount) {
        Batch storage b = _payable(id, Kind.Merkle);
        if (claims.length == 0 || claims.length > MAX_ROWS) revert DisburseChunkSize(claims.length, MAX_ROWS);
        for (uint256 i = 0; i < claims.length; ++i) {
            Claim calldata c = claims[i];
            if (isClaimed(id, c.index)) continue;
            // slither-disable-next-line reentrancy-no-eth (the previous payout called our own DigitalCash, which has no hooks; nonReentrant)
            _takeLeaf(id, b, c.index, c.recipient, c.amount, c.proof);
            if (_payout(id, b, c.index, c.recipient, c.amount)) ++paidCount;
        }
    }

    /// @notice Pay exception `index` of batch `id` now that its cause is resolved; reverts with the
    /// token's error if it still cannot be paid.
    function retryException(bytes32 id, uint256 index) external nonReentrant {
        Batch storage b = _batches[id];
        if (b.status == Status.None) revert DisburseUnknownBatch(id);
        if (b.status != Status.Approved) revert DisburseWrongStatus(id, Status.Approved, b.status);
        if (block.timestamp > b.endsAt) revert DisburseBatchEnded(id, b.endsAt);
        _checkPayoutsOpen(id, b);
        PayoutHold memory hold = _exceptions[id][index];
        if (hold.amount == 0) revert DisburseNoException(id, index);
        delete _exceptions[id][index];
        b.exceptions -= hold.amount;
        b.paid += hold.amount;
        totalPaid += hold.amount;
        emit Paid(id, index, hold.recipient, hold.amount, b.purpose);
        IDigitalCash(address(cash)).payFor(b.payer, hold.recipient, hold.amount, 0);
    }

    /// @notice Exception `index` of batch `id`, owed to the retired `lost` wallet, is owed to
    /// `successor` instead, which must be `lost`'s registered successor (`RecoveryWrongSuccessor`);
    /// `retryException` then pays it. Anyone may call; once (`RecoveryNothingHeld` when the exception
    /// is not `lost`'s). Before the end date, as every payout (after it the payer reclaims).
    function recoverException(bytes32 id, uint256 index, address lost, address successor) external {
        _recoverable(id);
        requireSuccessor(registry, lost, successor);
        PayoutHold storage hold = _exceptions[id][index];
        if (hold.amount == 0 || hold.recipient != lost) revert RecoveryNothingHeld(lost);
        hold.recipient = successor;
        emit PayoutRecovered(id, index, lost, successor, hold.amount, false);
    }

    /// @notice Unclaimed leaf `index` of Merkle batch `id`, addressed to the retired `lost` wallet
    /// (proved with `proof`), is taken and kept as an exception owed to `successor`, which must be
    /// `lost`'s registered successor (`RecoveryWrongSuccessor`); `retryException` then pays it (the
    /// leaf itself names `lost`, so it could never be claimed for the successor). Anyone may call;
    /// once (the leaf is taken: `DisburseAlreadyClaimed`). Before the end date.
    function recoverLeaf(
        bytes32 id,
        uint256 index,
        address lost,
        uint96 amount,
        bytes32[] calldata proof,
        address successor
    ) external {
        Batch storage b = _recoverable(id);
        if (b.kind != Kind.Merkle) revert DisburseWrongKind(id, Kind.Merkle);
        requireSuccessor(registry, lost, successor);
        _takeLeaf(id, b, index, lost, amount, proof);
        uint256 available = b.funded - b.paid - b.reclaimed - b.exceptions;
        if (amount > available) revert DisburseExceedsFunding(id, available, amount);
        b.exceptions += amount;
        _exceptions[id][index] = PayoutHold({recipient: successor, amount: amount});
        emit PayoutRecovered(id, index, lost, successor, amount, true);
    }

    /// @notice After the end date, return what batch `id` did not pay (exceptions included) to its
    /// payer and close it. Anyone may call; the money only goes to the payer. Waits (reverts) while
    /// the token is paused or the payer is frozen.
    function reclaim(bytes32 id) external nonReentrant {
        Batch storage b = _batches[id];
        if (b.status == Status.None) revert DisburseUnknownBatch(id);
        if (b.status != Status.Approved) revert DisburseWrongStatus(id, Status.Approved, b.status);
        if (block.timestamp <= b.endsAt) revert DisburseNotEnded(id, b.endsAt);
        _checkPayoutsOpen(id, b);
        uint256 amount = b.funded - b.paid - b.reclaimed;
        uint256 exceptionsReturned = b.exceptions;
        b.reclaimed += uint128(amount);
        b.exceptions = 0;
        b.status = Status.Closed;
        totalReclaimed += amount;
        emit Reclaimed(id, b.payer, amount, exceptionsReturned);
        if (amount > 0) IDigitalCash(address(cash)).payFor(b.payer, b.payer, amount, 0);
    }

    // ----------------------------------------------------------------------------------------
    // Views
    // ----------------------------------------------------------------------------------------

    /// @notice The id of `payer`'s batch reference `ref`: keccak256(abi.encode(payer, ref)).
    function batchIdOf(address payer, bytes32 ref) public pure returns (bytes32) {
        return keccak256(abi.encode(payer, ref));
    }

    /// @notice Batch `id` as stored.
    function batchOf(bytes32 id) external view returns (Batch memory) {
        if (_batches[id].status == Status.None) revert DisburseUnknownBatch(id);
        return _batches[id];
    }

    /// @notice What batch `id` still holds (unpaid rows, unclaimed leaves, open exceptions).
    function outstandingOf(bytes32 id) external view returns (uint256) {
        Batch storage b = _batches[id];
        return b.funded - b.paid - b.reclaimed;
    }

    /// @notice Chunk `chunk` of explicit batch `id`.
    function chunkOf(bytes32 id, uint256 chunk) external view returns (Chunk memory) {
        if (chunk >= _batches[id].chunkCount) revert DisburseUnknownChunk(id, chunk);
        return _chunks[id][chunk];
    }

    /// @notice The open exception at row or leaf `index` of batch `id` (amount zero: none).
    function exceptionOf(bytes32 id, uint256 index) external view returns (PayoutHold memory) {
        return _exceptions[id][index];
    }

    /// @notice Whether leaf `index` of Merkle batch `id` was taken (paid or made an exception).
    function isClaimed(bytes32 id, uint256 index) public view returns (bool) {
        return _claimed[id][index >> 8] & (1 << (index & 0xff)) != 0;
    }

    /// @notice The leaf hashed under a Merkle batch's root (OpenZeppelin's double-hashed standard leaf).
    function leafHash(bytes32 id, uint256 index, address recipient, uint256 amount) public pure returns (bytes32) {
        return keccak256(bytes.concat(keccak256(abi.encode(id, index, recipient, amount))));
    }

    // ----------------------------------------------------------------------------------------
    // Internal
    // ----------------------------------------------------------------------------------------

    function _draft(bytes32 id) private view returns (Batch storage b) {
        b = _batches[id];
        if (b.status == Status.None) revert DisburseUnknownBatch(id);
        if (b.status != Status.Draft) revert DisburseWrongStatus(id, Status.Draft, b.status);
    }

    /// @dev Explicit draft `id`, to which only its creator adds rows.
    function _rowsDraft(bytes32 id) private view returns (Batch storage b) {
        b = _draft(id);
        if (b.kind != Kind.Explicit) revert DisburseWrongKind(id, Kind.Explicit);
        if (msg.sender != b.creator) revert DisburseNotCreator(id, msg.sender);
    }

    /// @dev Store the next chunk of explicit draft `id`: its hash, first row, count and amount.
    function _addChunk(bytes32 id, Batch storage b, Row[] calldata rows) private returns (uint256 chunk) {
        if (rows.length == 0 || rows.length > MAX_ROWS) revert DisburseChunkSize(rows.length, MAX_ROWS);
        uint256 amount = 0;
        for (uint256 i = 0; i < rows.length; ++i) {
            if (rows[i].recipient == address(0) || rows[i].amount == 0) revert DisburseInvalidRow(i);
            amount += rows[i].amount;
        }
        uint256 rowsTotal = b.rowsTotal + amount;
        if (rowsTotal > b.total) revert DisburseOverTotal(id, b.total, rowsTotal);

        chunk = b.chunkCount;
        bytes32 rowsHash = keccak256(abi.encode(rows));
        _chunks[id][chunk] =
            Chunk({rowsHash: rowsHash, firstIndex: b.rowCount, count: uint32(rows.length), paid: false, amount: uint128(amount)});
        emit RowsAdded(id, chunk, b.rowCount, rows.length, amount, rowsHash);
        b.chunkCount += 1;
        b.rowCount += uint32(rows.length);
        b.rowsTotal = uint128(rowsTotal);
    }

    function _payable(bytes32 id, Kind kind) private view returns (Batch storage b) {
        b = _batches[id];
        if (b.status == Status.None) revert DisburseUnknownBatch(id);
        if (b.kind != kind) revert DisburseWrongKind(id, kind);
        if (b.status != Status.Approved) revert DisburseWrongStatus(id, Status.Approved, b.status);
        if (block.timestamp > b.endsAt) revert DisburseBatchEnded(id, b.endsAt);
        _checkPayoutsOpen(id, b);
    }

    /// @dev A batch whose payouts can still be re-addressed: approved and not ended (no payment is
    /// made, so neither the pause nor the payer's freeze stops it).
    function _recoverable(bytes32 id) private view returns (Batch storage b) {
        b = _batches[id];
        if (b.status == Status.None) revert DisburseUnknownBatch(id);
        if (b.status != Status.Approved) revert DisburseWrongStatus(id, Status.Approved, b.status);
        if (block.timestamp > b.endsAt) revert DisburseBatchEnded(id, b.endsAt);
    }

    /// @dev What stops a whole payout call rather than one row: the token paused, or the payer (the
    /// owner of every payout) frozen or deregistered. The token would refuse every row for these
    /// reasons; judged here first, they revert the call instead of becoming exceptions.
    function _checkPayoutsOpen(bytes32 id, Batch storage b) private view {
        if (Pausable(address(cash)).paused()) revert Pausable.EnforcedPause();
        address payer = b.payer;
        if (!registry.isRegistered(payer) || registry.isFrozen(payer)) revert DisbursePayerNotAdmitted(id, payer);
    }

    function _takeLeaf(
        bytes32 id,
        Batch storage b,
        uint256 index,
        address recipient,
        uint256 amount,
        bytes32[] calldata proof
    ) private {
        if (index >= b.rowCount) revert DisburseUnknownLeaf(id, index);
        uint256 bit = 1 << (index & 0xff);
        uint256 word = _claimed[id][index >> 8];
        if (word & bit != 0) revert DisburseAlreadyClaimed(id, index);
        if (!MerkleProof.verifyCalldata(proof, b.root, leafHash(id, index, recipient, amount))) {
            revert DisburseInvalidProof(id, index);
        }
        _claimed[id][index >> 8] = word | bit;
    }

    /// @dev Count `amount` as paid by batch `id`, which must still hold it beyond its exceptions.
    function _debit(bytes32 id, Batch storage b, uint256 amount) private {
        uint256 available = b.funded - b.paid - b.reclaimed - b.exceptions;
        if (amount > available) revert DisburseExceedsFunding(id, available, amount);
        b.paid += uint128(amount);
        totalPaid += amount;
    }

    /// @dev Pay one row or leaf; if the token refuses (unregistered, frozen, capped recipient), keep the
    /// amount as an exception instead. Returns whether it was paid. The token is this system's own
    /// DigitalCash (no hooks) and every caller holds the reentrancy guard.
    function _payout(bytes32 id, Batch storage b, uint256 index, address recipient, uint96 amount)
        private
        returns (bool)
    {
        _debit(id, b, amount);
        // slither-disable-next-line reentrancy-no-eth (state written after the call only when the token refused; our own DigitalCash has no hooks; callers are nonReentrant)
        (bool ok, bytes memory ret) = address(cash).call(
            abi.encodeCall(IDigitalCash.payFor, (b.payer, recipient, amount, 0))
        );
        if (ok && (ret.length == 0 || abi.decode(ret, (bool)))) {
            emit Paid(id, index, recipient, amount, b.purpose);
            return true;
        }
        if (ret.length < 4) revert DisburseTransferFailed(id, index);
        b.paid -= uint128(amount);
        totalPaid -= amount;
        b.exceptions += uint128(amount);
        _exceptions[id][index] = PayoutHold({recipient: recipient, amount: uint96(amount)});
        emit PayoutException(id, index, recipient, amount, bytes4(ret));
        return false;
    }
}
