// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {IWalletRegistry} from "../token/IWalletRegistry.sol";
import {IDigitalCash} from "../token/IDigitalCash.sol";

/// @title CollectiveFund
/// @notice Three-assets supervision (农村集体“三资”监管) of village collectives: their funds (资金),
/// assets (资产) and resources (资源). One contract keeps the digital cash of many collectives, each
/// with its own ledger, so one collective can never spend another's money.
///
/// A collective is created by the township (`TOWNSHIP_ROLE`) with its township supervisor, its
/// village officers (committee members and treasurers) and its approval rules. Money leaves a
/// collective only through a proposal: payee, amount, budget line, the hash of its purpose text and
/// the hash of its evidence (invoice, contract; the documents stay off-chain). A village officer
/// proposes; the amount picks an approval tier (the first tier whose `maxAmount` is at least the
/// amount: a limit is inclusive; see "Split payments" for which amount) which says how many
/// committee members must approve, whether the
/// township supervisor must approve too, and how long the approved proposal waits before it can be
/// paid (public-notice time lock). The proposer never approves their own proposal, an officer
/// approves once, treasurers approve nothing (they keep the books and pay). Once approved and past
/// its time lock, any village officer executes it, up to its expiry (inclusive); it can be rejected
/// by an approver or cancelled by its proposer before that.
///
/// Budgets: the supervisor opens a fiscal year with its budget lines (at most `MAX_LINES`); the
/// budgets of the current year are the only ones there are (opening a year starts every line at
/// zero spent). A proposal cannot ask for more than is left of its line when proposed, and its
/// execution checks the line again (pending proposals reserve nothing, so two that fit alone may
/// not both be paid).
///
/// Epochs: every change of officers, supervisor, approval rules or fiscal year starts a new epoch
/// of the collective. Proposals made in an earlier epoch can no longer be approved or executed
/// (they were approved, or were to be approved, under other rules): they can only be rejected or
/// cancelled, and are proposed again. That is why approvals can be a bitmap of officer slots and
/// the requirements a copy taken at proposal time.
///
/// Register: village officers record the collective's assets and resources (kind, book value,
/// description hash) and their income contracts (counterparty, yearly income, end date, contract
/// hash); the supervisor revalues and retires them. Income paid in with `recordIncome` is pulled
/// from the payer and tagged to an asset (or to none, id 0: subsidies, interest).
///
/// Freezing: the supervisor can freeze a collective; a frozen collective takes no proposals,
/// approvals or payments. Income, rejections, cancellations and the register go on.
///
/// Split payments: the tier is chosen not from the amount alone but from the *basis*: the amount plus
/// what the collective has recently committed to the same payee, on any budget line (so per line
/// too): its pending proposals to that payee (whatever their age, until executed, rejected or
/// cancelled) and its payments to that payee executed in the split window (the current Beijing
/// calendar day and the `splitWindowDays - 1` before it; 30 by default, set by the township with
/// `SplitWindowSet`). Fifty 1,000-yuan proposals to one payee thus climb the tiers as one 50,000-yuan
/// payment would; a basis above the highest limit takes the highest tier (the amount alone must
/// still fit it). The tier is copied into the proposal when proposed (`ProposalTierBasis` says from
/// which basis); a lapsed (stale or expired) proposal counts until it is rejected or cancelled.
///
/// The payee must be a registered wallet, not frozen, when proposed (`CollectivePayeeFrozen`); a
/// payee frozen (or a token paused) at execution makes `execute` revert with the token's error
/// (`WalletFrozen`, `EnforcedPause`): the payment waits and can be executed once that is lifted,
/// before its expiry. Income from a frozen wallet is refused by the token (`recordIncome` pulls it).
/// An officer (or supervisor) whose own wallet is frozen cannot propose, approve or execute
/// (`CollectiveOfficerFrozen(id, officer)`), nor change the books (register an asset, record its
/// income contract, revalue or retire it); rejecting and cancelling stay open to them.
/// @dev Invariants (tested): per collective, balance == income - paid; the contract holds exactly
/// the sum of the balances (`totalBalance`); for every budget line of the current year,
/// spent <= budget and spent == the sum of the executed proposals on that line this year; every
/// payment out of the contract is the execution of a proposal whose recorded approvals meet the
/// requirement copied at proposal time.
contract CollectiveFund is AccessControl, ReentrancyGuard {
    using SafeERC20 for IERC20;

    // ----------------------------------------------------------------------------------------
    // Errors
    // ----------------------------------------------------------------------------------------

    /// @dev No collective has this id.
    error CollectiveUnknown(uint256 collectiveId);
    /// @dev Only the collective's township supervisor may do this.
    error CollectiveNotSupervisor(uint256 collectiveId, address caller);
    /// @dev `account` cannot be the supervisor (zero, an officer of the collective, or the current one).
    error CollectiveInvalidSupervisor(uint256 collectiveId, address account);
    /// @dev `account` is not an officer of the collective.
    error CollectiveNotOfficer(uint256 collectiveId, address account);
    /// @dev `account` is an officer whose role does not approve (a treasurer).
    error CollectiveNotApprover(uint256 collectiveId, address account);
    /// @dev `account` cannot be an officer (zero, the supervisor, this contract, or listed twice).
    error CollectiveInvalidOfficer(uint256 collectiveId, address account);
    /// @dev `account` has role `role` already.
    error CollectiveOfficerUnchanged(uint256 collectiveId, address account, OfficerRole role);
    /// @dev The collective has `max` officers already.
    error CollectiveTooManyOfficers(uint256 collectiveId, uint256 max);
    /// @dev Two lists that go together differ in length.
    error CollectiveLengthMismatch(uint256 length, uint256 otherLength);
    /// @dev There must be 1..`max` approval tiers.
    error CollectiveTierCount(uint256 count, uint256 max);
    /// @dev Tier `index` is invalid: limit zero or not above the previous one, no approval
    /// required, more committee approvals than officers can exist, or a time lock not shorter than
    /// the proposal lifetime.
    error CollectiveInvalidTier(uint256 index);
    /// @dev The proposal lifetime must be 1 second .. `MAX_LIFETIME`.
    error CollectiveInvalidLifetime(uint32 lifetime);
    /// @dev The collective is frozen by its supervisor.
    error CollectiveFrozen(uint256 collectiveId);
    /// @dev The collective is not frozen.
    error CollectiveNotFrozen(uint256 collectiveId);
    /// @dev A new fiscal year must come after the current one.
    error CollectiveYearNotAfter(uint256 collectiveId, uint16 current, uint16 year);
    /// @dev There must be 1..`max` budget lines.
    error CollectiveLineCount(uint256 count, uint256 max);
    /// @dev The current year has no budget line `line`.
    error CollectiveUnknownLine(uint256 collectiveId, uint8 line);
    /// @dev `amount` is more than the `remaining` budget of the line.
    error CollectiveBudgetExceeded(uint256 collectiveId, uint8 line, uint256 remaining, uint256 amount);
    /// @dev A line's budget cannot be cut below what it has spent.
    error CollectiveBudgetBelowSpent(uint256 collectiveId, uint8 line, uint256 spent, uint256 budget);
    /// @dev Amounts must be positive.
    error CollectiveZeroAmount();
    /// @dev The payee cannot be zero or this contract.
    error CollectiveInvalidPayee(address payee);
    /// @dev The payee is not a registered wallet.
    error CollectivePayeeNotRegistered(address payee);
    /// @dev The payee's wallet is frozen by the regulator: no new payments to it are proposed.
    error CollectivePayeeFrozen(address payee);
    /// @dev The acting officer's (proposer's, approver's, executor's) wallet is frozen by the
    /// regulator: a frozen officer cannot act on the collective's money.
    error CollectiveOfficerFrozen(uint256 collectiveId, address officer);
    /// @dev The split window is 1..`max` days.
    error CollectiveInvalidSplitWindow(uint256 windowDays, uint256 max);
    /// @dev `amount` is above the highest tier's limit (`ceiling`): no tier approves it.
    error CollectiveAmountAboveTiers(uint256 collectiveId, uint256 amount, uint256 ceiling);
    /// @dev No proposal has this id.
    error CollectiveUnknownProposal(uint256 proposalId);
    /// @dev The proposal is executed, rejected or cancelled.
    error CollectiveProposalNotPending(uint256 proposalId, ProposalStatus status);
    /// @dev The proposal belongs to an earlier epoch (officers, rules or year changed since).
    error CollectiveProposalStale(uint256 proposalId, uint32 epoch, uint32 currentEpoch);
    /// @dev The proposal expired at `expiresAt`.
    error CollectiveProposalExpired(uint256 proposalId, uint64 expiresAt);
    /// @dev The proposer cannot approve their own proposal.
    error CollectiveSelfApproval(uint256 proposalId, address officer);
    /// @dev `officer` approved this proposal already.
    error CollectiveAlreadyApproved(uint256 proposalId, address officer);
    /// @dev The proposal lacks approvals: committee `committee` of `committeeRequired`, township
    /// given `township`, required `townshipRequired`.
    error CollectiveNotApproved(
        uint256 proposalId, uint8 committee, uint8 committeeRequired, bool township, bool townshipRequired
    );
    /// @dev The proposal's time lock runs until `executableAt`.
    error CollectiveTimelocked(uint256 proposalId, uint64 executableAt);
    /// @dev The collective holds `balance`, less than `amount`.
    error CollectiveInsufficientFunds(uint256 collectiveId, uint256 balance, uint256 amount);
    /// @dev Only the proposer may cancel.
    error CollectiveNotProposer(uint256 proposalId, address caller);
    /// @dev No asset has this id.
    error CollectiveUnknownAsset(uint256 assetId);
    /// @dev The asset belongs to another collective.
    error CollectiveAssetNotInCollective(uint256 assetId, uint256 collectiveId);
    /// @dev The asset was retired from the register.
    error CollectiveAssetRetired(uint256 assetId);
    /// @dev An asset is a property or a resource.
    error CollectiveInvalidAssetKind(AssetKind kind);
    /// @dev An income contract must end in the future.
    error CollectiveContractEndsInPast(uint64 endsAt, uint256 nowTs);

    // ----------------------------------------------------------------------------------------
    // Events
    // ----------------------------------------------------------------------------------------

    /// @dev The township created a collective (epoch 1).
    event CollectiveCreated(uint256 indexed collectiveId, address indexed supervisor, bytes32 nameHash, address creator);
    /// @dev The township replaced the supervisor.
    event SupervisorChanged(uint256 indexed collectiveId, address indexed previous, address indexed supervisor, uint32 epoch);
    /// @dev An officer was added (`previousRole` None), changed role, or removed (`role` None).
    event OfficerSet(
        uint256 indexed collectiveId,
        address indexed account,
        OfficerRole previousRole,
        OfficerRole role,
        uint8 slot,
        uint32 epoch
    );
    /// @dev The approval tiers and the proposal lifetime were set.
    event RulesSet(uint256 indexed collectiveId, Tier[] tiers, uint32 proposalLifetime, uint32 epoch);
    /// @dev The supervisor opened fiscal year `year` with `lineCount` budget lines.
    event YearOpened(uint256 indexed collectiveId, uint16 year, uint8 lineCount, uint32 epoch);
    /// @dev A budget line of the year opened.
    event BudgetLineSet(uint256 indexed collectiveId, uint16 indexed year, uint8 line, bytes32 name, uint256 budget);
    /// @dev The supervisor changed a line's budget within the year.
    event BudgetAmended(uint256 indexed collectiveId, uint16 indexed year, uint8 line, uint256 previous, uint256 budget);
    /// @dev The supervisor froze the collective.
    event AccountFrozen(uint256 indexed collectiveId, address indexed by, bytes32 reasonHash);
    /// @dev The supervisor unfroze the collective.
    event AccountUnfrozen(uint256 indexed collectiveId, address indexed by);
    /// @dev A village officer proposed a payment.
    event ProposalCreated(
        uint256 indexed proposalId,
        uint256 indexed collectiveId,
        address indexed proposer,
        address payee,
        uint256 amount,
        uint8 line,
        bytes32 purposeHash,
        bytes32 attachmentHash
    );
    /// @dev The proposal's tier was chosen from `basis`: its amount plus `recent`, what the collective
    /// had committed to the payee (pending proposals, payments in the split window).
    event ProposalTierBasis(uint256 indexed proposalId, address indexed payee, uint256 recent, uint256 basis);
    /// @dev The township set the split window to `windowDays` (was `previous`).
    event SplitWindowSet(uint16 previous, uint16 windowDays, address indexed by);
    /// @dev What the proposal needs (copied from its tier), and until when it can be executed.
    event ProposalTerms(
        uint256 indexed proposalId, uint8 committeeRequired, bool townshipRequired, uint32 delay, uint64 expiresAt
    );
    /// @dev `approver` approved (`township`: as the supervisor); the counts after it.
    event ProposalApproved(
        uint256 indexed proposalId, address indexed approver, bool township, uint8 committee, bool townshipApproved
    );
    /// @dev The proposal has every approval it needs; it can be executed from `executableAt`.
    event ProposalReady(uint256 indexed proposalId, uint64 executableAt);
    /// @dev An approver rejected the proposal.
    event ProposalRejected(uint256 indexed proposalId, address indexed by, bytes32 reasonHash);
    /// @dev The proposer cancelled the proposal.
    event ProposalCancelled(uint256 indexed proposalId, address indexed by);
    /// @dev The proposal was paid: `amount` to `payee`, charged to `line` (now `lineSpent`).
    event ProposalExecuted(
        uint256 indexed proposalId,
        uint256 indexed collectiveId,
        address indexed payee,
        uint256 amount,
        uint8 line,
        uint256 lineSpent,
        address executor
    );
    /// @dev An asset or resource entered the register.
    event AssetRegistered(
        uint256 indexed assetId, uint256 indexed collectiveId, AssetKind kind, uint256 value, bytes32 descriptionHash
    );
    /// @dev An asset's income contract was recorded (`counterparty` zero: none any more).
    event IncomeContractSet(
        uint256 indexed assetId, address indexed counterparty, uint256 annualIncome, uint64 endsAt, bytes32 contractHash
    );
    /// @dev The supervisor revalued an asset.
    event AssetRevalued(uint256 indexed assetId, uint256 previous, uint256 value, bytes32 evidenceHash);
    /// @dev The supervisor retired an asset from the register.
    event AssetRetired(uint256 indexed assetId, bytes32 reasonHash);
    /// @dev `payer` paid `amount` into the collective, tagged to `assetId` (0: untagged).
    event IncomeRecorded(
        uint256 indexed collectiveId, uint256 indexed assetId, address indexed payer, uint256 amount, bytes32 memoHash
    );

    // ----------------------------------------------------------------------------------------
    // Storage
    // ----------------------------------------------------------------------------------------

    /// @notice Creates collectives and replaces their supervisors (the township government).
    bytes32 public constant TOWNSHIP_ROLE = keccak256("TOWNSHIP_ROLE");
    /// @notice Most officers a collective has at a time (slots of the approval bitmap).
    uint256 public constant MAX_OFFICERS = 16;
    /// @notice Most approval tiers.
    uint256 public constant MAX_TIERS = 4;
    /// @notice Most budget lines a year.
    uint256 public constant MAX_LINES = 8;
    /// @notice Longest proposal lifetime.
    uint32 public constant MAX_LIFETIME = 365 days;
    /// @notice Longest split window, in days (each day of the window is read when proposing).
    uint16 public constant MAX_SPLIT_WINDOW_DAYS = 90;
    /// @notice The split window a new deployment starts with, in days.
    uint16 public constant DEFAULT_SPLIT_WINDOW_DAYS = 30;
    /// @dev Beijing time (UTC+8): split-window days are Beijing calendar days, as the token's daily caps.
    uint256 private constant _DAY_OFFSET = 8 hours;

    enum OfficerRole {
        None,
        Committee, // approves, proposes, executes
        Treasurer // proposes, executes; never approves
    }

    enum ProposalStatus {
        None,
        Pending,
        Executed,
        Rejected,
        Cancelled
    }

    /// @dev What `proposalState` derives from the status, the clock and the approvals.
    enum ProposalState {
        None,
        Pending, // waiting for approvals
        Timelocked, // approved, time lock running
        Executable,
        Executed,
        Rejected,
        Cancelled,
        Expired,
        Stale
    }

    enum AssetKind {
        None,
        Property, // buildings, equipment, enterprises (经营性资产)
        Resource // land, forest, ponds (资源性资产)
    }

    /// @dev Amounts up to `maxAmount` (inclusive) need `committee` committee approvals, the
    /// supervisor's as well when `township`, and wait `delay` seconds once approved.
    struct Tier {
        uint128 maxAmount;
        uint8 committee;
        bool township;
        uint32 delay;
    }

    struct Collective {
        address supervisor;
        bool frozen;
        uint16 year;
        uint32 epoch;
        uint8 lineCount;
        uint16 slotsUsed; // bitmap of the officer slots in use
        uint32 proposalLifetime;
        bytes32 nameHash;
        uint256 balance;
        uint256 totalIncome;
        uint256 totalPaid;
    }

    struct Officer {
        OfficerRole role;
        uint8 slot;
    }

    struct Line {
        bytes32 name;
        uint128 budget;
        uint128 spent;
    }

    struct Proposal {
        address proposer;
        uint8 line;
        ProposalStatus status;
        uint8 committeeRequired;
        uint8 committee; // committee approvals so far
        bool townshipRequired;
        bool townshipApproved;
        uint16 approvals; // bitmap of the officer slots that approved
        uint32 epoch;
        address payee;
        uint64 expiresAt;
        uint32 delay;
        uint128 amount;
        uint64 proposedAt;
        uint64 readyAt; // 0 until every required approval is in
        uint256 collectiveId;
        uint16 year;
        bytes32 purposeHash;
        bytes32 attachmentHash;
    }

    struct Asset {
        uint256 collectiveId;
        AssetKind kind;
        bool retired;
        address counterparty; // of the income contract, zero when none
        uint64 contractEndsAt;
        uint128 value; // book value, fen
        uint128 annualIncome; // contracted, fen a year
        bytes32 descriptionHash;
        bytes32 contractHash;
        uint256 incomeReceived;
    }

    IERC20 public immutable cash;
    IWalletRegistry public immutable registry;

    mapping(uint256 collectiveId => Collective) private _collectives;
    mapping(uint256 collectiveId => Tier[]) private _tiers;
    mapping(uint256 collectiveId => mapping(uint256 line => Line)) private _lines;
    mapping(uint256 collectiveId => mapping(address account => Officer)) private _officers;
    mapping(uint256 collectiveId => mapping(uint256 slot => address)) private _slotHolders;
    mapping(uint256 proposalId => Proposal) private _proposals;
    mapping(uint256 assetId => Asset) private _assets;

    uint256 public collectiveCount;
    uint256 public proposalCount;
    uint256 public assetCount;
    /// @notice Sum of every collective's balance: what this contract holds.
    uint256 public totalBalance;
    /// @notice The split window in days: payments executed to a payee this many Beijing days back
    /// (today included) count toward the tier of a new proposal to it.
    uint16 public splitWindowDays;

    /// @dev Sum of the pending proposals of a collective to a payee.
    mapping(uint256 collectiveId => mapping(address payee => uint256)) private _pendingTo;
    /// @dev Executed payments of a collective to a payee, by Beijing day number.
    mapping(uint256 collectiveId => mapping(address payee => mapping(uint256 day => uint256))) private _paidOn;

    /// @param cash_ The digital cash.
    /// @param registry_ The wallet registry (payees must be registered).
    /// @param admin Holds DEFAULT_ADMIN_ROLE (grants TOWNSHIP_ROLE).
    constructor(IERC20 cash_, IWalletRegistry registry_, address admin) {
        cash = cash_;
        registry = registry_;
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        splitWindowDays = DEFAULT_SPLIT_WINDOW_DAYS;
        emit SplitWindowSet(0, DEFAULT_SPLIT_WINDOW_DAYS, msg.sender);
    }

    // ----------------------------------------------------------------------------------------
    // Township
    // ----------------------------------------------------------------------------------------

    /// @notice Create a collective with its township `supervisor`, its village `officers` and their
    /// `roles`, its approval `tiers` (ascending limits) and how long a proposal lives. Returns its id.
    function createCollective(
        address supervisor,
        bytes32 nameHash,
        address[] calldata officers,
        OfficerRole[] calldata roles,
        Tier[] calldata tiers,
        uint32 proposalLifetime
    ) external onlyRole(TOWNSHIP_ROLE) returns (uint256 id) {
        if (officers.length != roles.length) revert CollectiveLengthMismatch(officers.length, roles.length);
        id = ++collectiveCount;
        if (supervisor == address(0)) revert CollectiveInvalidSupervisor(id, supervisor);
        Collective storage c = _collectives[id];
        c.supervisor = supervisor;
        c.nameHash = nameHash;
        c.epoch = 1;
        emit CollectiveCreated(id, supervisor, nameHash, msg.sender);
        for (uint256 i = 0; i < officers.length; ++i) {
            // At creation every listed account is new and has a role.
            if (roles[i] == OfficerRole.None || _officers[id][officers[i]].role != OfficerRole.None) {
                revert CollectiveInvalidOfficer(id, officers[i]);
            }
            _setOfficer(id, c, officers[i], roles[i]);
        }
        _setRules(id, c, tiers, proposalLifetime);
    }

    /// @notice Set the split window to `windowDays` (1..MAX_SPLIT_WINDOW_DAYS) for every collective:
    /// payments to a payee executed that many Beijing days back count toward a new proposal's tier.
    /// Proposals made before keep the tier they were given.
    function setSplitWindow(uint16 windowDays) external onlyRole(TOWNSHIP_ROLE) {
        if (windowDays == 0 || windowDays > MAX_SPLIT_WINDOW_DAYS) {
            revert CollectiveInvalidSplitWindow(windowDays, MAX_SPLIT_WINDOW_DAYS);
        }
        uint16 previous = splitWindowDays;
        splitWindowDays = windowDays;
        emit SplitWindowSet(previous, windowDays, msg.sender);
    }

    /// @notice Replace the supervisor of collective `id` (starts a new epoch).
    function setSupervisor(uint256 id, address supervisor) external onlyRole(TOWNSHIP_ROLE) {
        Collective storage c = _collective(id);
        address previous = c.supervisor;
        if (supervisor == address(0) || supervisor == previous || _officers[id][supervisor].role != OfficerRole.None) {
            revert CollectiveInvalidSupervisor(id, supervisor);
        }
        c.supervisor = supervisor;
        emit SupervisorChanged(id, previous, supervisor, ++c.epoch);
    }

    // ----------------------------------------------------------------------------------------
    // Supervisor
    // ----------------------------------------------------------------------------------------

    /// @notice Give `account` the officer role `role` in collective `id`; `role` None removes it.
    /// Starts a new epoch.
    function setOfficer(uint256 id, address account, OfficerRole role) external {
        Collective storage c = _supervised(id);
        if (_officers[id][account].role == role) revert CollectiveOfficerUnchanged(id, account, role);
        _setOfficer(id, c, account, role);
    }

    /// @notice Replace the approval tiers and the proposal lifetime of collective `id`. Starts a
    /// new epoch.
    function setRules(uint256 id, Tier[] calldata tiers, uint32 proposalLifetime) external {
        Collective storage c = _supervised(id);
        ++c.epoch;
        _setRules(id, c, tiers, proposalLifetime);
    }

    /// @notice Open fiscal `year` (after the current one) with its budget lines: `names[i]` gets
    /// `budgets[i]` fen, nothing spent. Starts a new epoch: last year's pending proposals lapse.
    function openYear(uint256 id, uint16 year, bytes32[] calldata names, uint128[] calldata budgets) external {
        Collective storage c = _supervised(id);
        if (year <= c.year) revert CollectiveYearNotAfter(id, c.year, year);
        if (names.length != budgets.length) revert CollectiveLengthMismatch(names.length, budgets.length);
        if (names.length == 0 || names.length > MAX_LINES) revert CollectiveLineCount(names.length, MAX_LINES);
        c.year = year;
        c.lineCount = uint8(names.length); // <= MAX_LINES
        uint32 epoch = ++c.epoch;
        emit YearOpened(id, year, uint8(names.length), epoch);
        for (uint256 i = 0; i < names.length; ++i) {
            _lines[id][i] = Line({name: names[i], budget: budgets[i], spent: 0});
            emit BudgetLineSet(id, year, uint8(i), names[i], budgets[i]);
        }
    }

    /// @notice Change the budget of `line` within the current year (not below what it spent).
    function amendBudget(uint256 id, uint8 line, uint128 budget) external {
        Collective storage c = _supervised(id);
        Line storage l = _line(id, c, line);
        if (budget < l.spent) revert CollectiveBudgetBelowSpent(id, line, l.spent, budget);
        uint256 previous = l.budget;
        l.budget = budget;
        emit BudgetAmended(id, c.year, line, previous, budget);
    }

    /// @notice Freeze collective `id`: no proposals, approvals or payments until unfrozen.
    function freeze(uint256 id, bytes32 reasonHash) external {
        Collective storage c = _supervised(id);
        if (c.frozen) revert CollectiveFrozen(id);
        c.frozen = true;
        emit AccountFrozen(id, msg.sender, reasonHash);
    }

    /// @notice Unfreeze collective `id`.
    function unfreeze(uint256 id) external {
        Collective storage c = _supervised(id);
        if (!c.frozen) revert CollectiveNotFrozen(id);
        c.frozen = false;
        emit AccountUnfrozen(id, msg.sender);
    }

    // ----------------------------------------------------------------------------------------
    // Proposals
    // ----------------------------------------------------------------------------------------

    /// @notice A village officer proposes paying `amount` fen of collective `id` to `payee`,
    /// charged to budget `line`, for the purpose whose text hashes to `purposeHash`, with evidence
    /// (invoice, contract) hashing to `attachmentHash`. The tier comes from the amount plus what the
    /// collective recently committed to `payee` (see "Split payments"). Returns the proposal id.
    function propose(
        uint256 id,
        address payee,
        uint128 amount,
        uint8 line,
        bytes32 purposeHash,
        bytes32 attachmentHash
    ) external returns (uint256 proposalId) {
        Collective storage c = _collective(id);
        if (c.frozen) revert CollectiveFrozen(id);
        if (_officers[id][msg.sender].role == OfficerRole.None) revert CollectiveNotOfficer(id, msg.sender);
        _checkOfficerNotFrozen(id);
        if (payee == address(0) || payee == address(this)) revert CollectiveInvalidPayee(payee);
        if (!registry.isRegistered(payee)) revert CollectivePayeeNotRegistered(payee);
        if (registry.isFrozen(payee)) revert CollectivePayeeFrozen(payee);
        if (amount == 0) revert CollectiveZeroAmount();
        {
            Line storage l = _line(id, c, line);
            uint256 remaining = l.budget - l.spent; // spent <= budget always
            if (amount > remaining) revert CollectiveBudgetExceeded(id, line, remaining, amount);
        }
        uint256 recent = recentTo(id, payee);
        Tier memory tier = _splitTier(id, amount, recent);
        uint64 expiresAt = uint64(block.timestamp) + c.proposalLifetime;

        proposalId = ++proposalCount;
        _pendingTo[id][payee] += amount;
        Proposal storage p = _proposals[proposalId];
        p.proposer = msg.sender;
        p.line = line;
        p.status = ProposalStatus.Pending;
        p.committeeRequired = tier.committee;
        p.townshipRequired = tier.township;
        p.epoch = c.epoch;
        p.payee = payee;
        p.expiresAt = expiresAt;
        p.delay = tier.delay;
        p.amount = amount;
        p.proposedAt = uint64(block.timestamp);
        p.collectiveId = id;
        p.year = c.year;
        p.purposeHash = purposeHash;
        p.attachmentHash = attachmentHash;
        emit ProposalCreated(proposalId, id, msg.sender, payee, amount, line, purposeHash, attachmentHash);
        emit ProposalTierBasis(proposalId, payee, recent, recent + amount);
        emit ProposalTerms(proposalId, tier.committee, tier.township, tier.delay, expiresAt);
    }

    /// @notice Approve proposal `proposalId`: as a committee member (not its proposer), or as the
    /// collective's supervisor (the township approval). Once per approver.
    function approve(uint256 proposalId) external {
        Proposal storage p = _pending(proposalId);
        uint256 id = p.collectiveId;
        Collective storage c = _collectives[id];
        if (c.frozen) revert CollectiveFrozen(id);
        _checkLive(proposalId, p, c); // first: the bitmap only means something in the proposal's epoch
        bool township = msg.sender == c.supervisor;
        uint16 bit = 0;
        if (township) {
            if (p.townshipApproved) revert CollectiveAlreadyApproved(proposalId, msg.sender);
        } else {
            bit = uint16(1) << _approver(id, msg.sender).slot;
            if (msg.sender == p.proposer) revert CollectiveSelfApproval(proposalId, msg.sender);
            if (p.approvals & bit != 0) revert CollectiveAlreadyApproved(proposalId, msg.sender);
        }
        _checkOfficerNotFrozen(id);

        if (township) {
            p.townshipApproved = true;
        } else {
            p.approvals |= bit;
            ++p.committee; // one per distinct bit of 16: never above 16
        }
        emit ProposalApproved(proposalId, msg.sender, township, p.committee, p.townshipApproved);
        if (p.readyAt == 0 && _approved(p)) {
            p.readyAt = uint64(block.timestamp);
            emit ProposalReady(proposalId, uint64(block.timestamp) + p.delay);
        }
    }

    /// @notice Reject proposal `proposalId` (a committee member or the supervisor), giving the hash
    /// of the reason. Works on frozen collectives and on expired or stale proposals too.
    function reject(uint256 proposalId, bytes32 reasonHash) external {
        Proposal storage p = _pending(proposalId);
        uint256 id = p.collectiveId;
        if (msg.sender != _collectives[id].supervisor) _approver(id, msg.sender);
        p.status = ProposalStatus.Rejected;
        _pendingTo[id][p.payee] -= p.amount; // added when proposed, still there while pending
        emit ProposalRejected(proposalId, msg.sender, reasonHash);
    }

    /// @notice The proposer withdraws proposal `proposalId`.
    function cancel(uint256 proposalId) external {
        Proposal storage p = _pending(proposalId);
        if (msg.sender != p.proposer) revert CollectiveNotProposer(proposalId, msg.sender);
        p.status = ProposalStatus.Cancelled;
        _pendingTo[p.collectiveId][p.payee] -= p.amount; // added when proposed, still there while pending
        emit ProposalCancelled(proposalId, msg.sender);
    }

    /// @notice Pay approved proposal `proposalId` (any village officer), once its time lock is over
    /// and until it expires (inclusive), within its budget line and the collective's balance.
    function execute(uint256 proposalId) external nonReentrant {
        Proposal storage p = _pending(proposalId);
        uint256 id = p.collectiveId;
        Collective storage c = _collectives[id];
        if (c.frozen) revert CollectiveFrozen(id);
        if (_officers[id][msg.sender].role == OfficerRole.None) revert CollectiveNotOfficer(id, msg.sender);
        _checkOfficerNotFrozen(id);
        _checkLive(proposalId, p, c);
        if (!_approved(p)) {
            revert CollectiveNotApproved(
                proposalId, p.committee, p.committeeRequired, p.townshipApproved, p.townshipRequired
            );
        }
        uint64 executableAt = p.readyAt + p.delay;
        if (block.timestamp < executableAt) revert CollectiveTimelocked(proposalId, executableAt);
        uint256 amount = p.amount;
        // Same epoch, so same year: the line is the one proposed against.
        Line storage l = _lines[id][p.line];
        uint256 remaining = l.budget - l.spent;
        if (amount > remaining) revert CollectiveBudgetExceeded(id, p.line, remaining, amount);
        if (amount > c.balance) revert CollectiveInsufficientFunds(id, c.balance, amount);

        p.status = ProposalStatus.Executed;
        _pendingTo[id][p.payee] -= amount; // added when proposed, still there while pending
        _paidOn[id][p.payee][_today()] += amount;
        l.spent += uint128(amount); // <= budget, checked above
        c.balance -= amount;
        c.totalPaid += amount;
        totalBalance -= amount;
        emit ProposalExecuted(proposalId, id, p.payee, amount, p.line, l.spent, msg.sender);
        // The collective's money: the fund itself is the owner (its own freeze is checked above).
        IDigitalCash(address(cash)).payFor(address(this), p.payee, amount, 0);
    }

    // ----------------------------------------------------------------------------------------
    // Asset and resource register; income
    // ----------------------------------------------------------------------------------------

    /// @notice A village officer registers an asset or resource of collective `id` with its book
    /// `value` in fen and the hash of its description (deed, survey, photo). Returns its id (from 1).
    function registerAsset(uint256 id, AssetKind kind, uint128 value, bytes32 descriptionHash)
        external
        returns (uint256 assetId)
    {
        _collective(id);
        if (_officers[id][msg.sender].role == OfficerRole.None) revert CollectiveNotOfficer(id, msg.sender);
        _checkOfficerNotFrozen(id);
        if (kind == AssetKind.None) revert CollectiveInvalidAssetKind(kind);
        assetId = ++assetCount;
        Asset storage a = _assets[assetId];
        a.collectiveId = id;
        a.kind = kind;
        a.value = value;
        a.descriptionHash = descriptionHash;
        emit AssetRegistered(assetId, id, kind, value, descriptionHash);
    }

    /// @notice A village officer records the income contract of `assetId` (lease, contracting):
    /// `counterparty`, `annualIncome` fen a year, ending at `endsAt`, the contract's hash.
    /// `counterparty` zero records that the asset has no contract any more.
    function setIncomeContract(
        uint256 assetId,
        address counterparty,
        uint128 annualIncome,
        uint64 endsAt,
        bytes32 contractHash
    ) external {
        Asset storage a = _activeAsset(assetId);
        uint256 id = a.collectiveId;
        if (_officers[id][msg.sender].role == OfficerRole.None) revert CollectiveNotOfficer(id, msg.sender);
        _checkOfficerNotFrozen(id);
        if (counterparty != address(0) && endsAt <= block.timestamp) {
            revert CollectiveContractEndsInPast(endsAt, block.timestamp);
        }
        a.counterparty = counterparty;
        a.annualIncome = annualIncome;
        a.contractEndsAt = endsAt;
        a.contractHash = contractHash;
        emit IncomeContractSet(assetId, counterparty, annualIncome, endsAt, contractHash);
    }

    /// @notice The supervisor records a new book value of `assetId` (appraisal hashed in `evidenceHash`).
    function revalueAsset(uint256 assetId, uint128 value, bytes32 evidenceHash) external {
        Asset storage a = _activeAsset(assetId);
        _supervised(a.collectiveId);
        _checkOfficerNotFrozen(a.collectiveId);
        uint256 previous = a.value;
        a.value = value;
        emit AssetRevalued(assetId, previous, value, evidenceHash);
    }

    /// @notice The supervisor retires `assetId` (sold, demolished, returned): no more income tagged to it.
    function retireAsset(uint256 assetId, bytes32 reasonHash) external {
        Asset storage a = _activeAsset(assetId);
        _supervised(a.collectiveId);
        _checkOfficerNotFrozen(a.collectiveId);
        a.retired = true;
        emit AssetRetired(assetId, reasonHash);
    }

    /// @notice Pay `amount` fen into collective `id`, tagged to `assetId` (0: untagged), with a memo
    /// hash. Anyone may pay (a lessee, the township's subsidy account); the caller must have approved
    /// this contract for `amount`. Accepted while the collective is frozen.
    function recordIncome(uint256 id, uint256 assetId, uint256 amount, bytes32 memoHash) external nonReentrant {
        Collective storage c = _collective(id);
        if (amount == 0) revert CollectiveZeroAmount();
        if (assetId != 0) {
            Asset storage a = _activeAsset(assetId);
            if (a.collectiveId != id) revert CollectiveAssetNotInCollective(assetId, id);
            a.incomeReceived += amount;
        }
        c.balance += amount;
        c.totalIncome += amount;
        totalBalance += amount;
        emit IncomeRecorded(id, assetId, msg.sender, amount, memoHash);
        cash.safeTransferFrom(msg.sender, address(this), amount);
    }

    // ----------------------------------------------------------------------------------------
    // Views
    // ----------------------------------------------------------------------------------------

    /// @notice Collective `id` as stored.
    function collectiveOf(uint256 id) external view returns (Collective memory) {
        return _collective(id);
    }

    /// @notice The approval tiers of collective `id`, ascending.
    function tiersOf(uint256 id) external view returns (Tier[] memory) {
        _collective(id);
        return _tiers[id];
    }

    /// @notice The tier that applies to `amount` in collective `id` (reverts above the highest).
    function tierFor(uint256 id, uint256 amount) external view returns (Tier memory) {
        _collective(id);
        return _tierFor(id, amount);
    }

    /// @notice What collective `id` has recently committed to `payee`, on every line: its pending
    /// proposals to it plus its payments to it executed in the split window.
    function recentTo(uint256 id, address payee) public view returns (uint256 recent) {
        recent = _pendingTo[id][payee];
        uint256 today = _today();
        uint256 window = splitWindowDays; // 1..MAX_SPLIT_WINDOW_DAYS
        uint256 first = today + 1 > window ? today + 1 - window : 0; // no day before the epoch
        for (uint256 day = first; day <= today; ++day) {
            recent += _paidOn[id][payee][day];
        }
    }

    /// @notice The tier a proposal of `amount` to `payee` in collective `id` would get now (split
    /// payments included; reverts when `amount` alone is above the highest tier).
    function tierForPayment(uint256 id, address payee, uint256 amount) external view returns (Tier memory) {
        _collective(id);
        return _splitTier(id, amount, recentTo(id, payee));
    }

    /// @notice The budget lines of the current year of collective `id`.
    function linesOf(uint256 id) external view returns (Line[] memory lines) {
        Collective storage c = _collective(id);
        lines = new Line[](c.lineCount);
        for (uint256 i = 0; i < c.lineCount; ++i) {
            lines[i] = _lines[id][i];
        }
    }

    /// @notice The role and slot of `account` in collective `id` (role None: not an officer).
    function officerOf(uint256 id, address account) external view returns (Officer memory) {
        return _officers[id][account];
    }

    /// @notice The officers of collective `id` and their roles, by slot.
    function officersOf(uint256 id) external view returns (address[] memory accounts, OfficerRole[] memory roles) {
        Collective storage c = _collective(id);
        uint256 used = c.slotsUsed;
        uint256 n = 0;
        for (uint256 s = 0; s < MAX_OFFICERS; ++s) {
            if (used & (1 << s) != 0) ++n;
        }
        accounts = new address[](n);
        roles = new OfficerRole[](n);
        n = 0;
        for (uint256 s = 0; s < MAX_OFFICERS; ++s) {
            if (used & (1 << s) == 0) continue;
            address account = _slotHolders[id][s];
            accounts[n] = account;
            roles[n] = _officers[id][account].role;
            ++n;
        }
    }

    /// @notice Proposal `proposalId` as stored.
    function proposalOf(uint256 proposalId) external view returns (Proposal memory) {
        // slither-disable-next-line incorrect-equality (an enum status, not a balance)
        if (_proposals[proposalId].status == ProposalStatus.None) revert CollectiveUnknownProposal(proposalId);
        return _proposals[proposalId];
    }

    /// @notice Whether committee member `account` (the supervisor: the township approval) approved
    /// `proposalId`. Answers only while the collective is still in the proposal's epoch (officer
    /// slots and the supervisor may change hands afterwards), else false; the `ProposalApproved`
    /// events are the lasting record of who approved what.
    function hasApproved(uint256 proposalId, address account) external view returns (bool) {
        Proposal storage p = _proposals[proposalId];
        if (p.status == ProposalStatus.None) revert CollectiveUnknownProposal(proposalId);
        Collective storage c = _collectives[p.collectiveId];
        if (p.epoch != c.epoch) return false; // slots and the supervisor may have changed since
        if (account == c.supervisor) return p.townshipApproved;
        Officer memory o = _officers[p.collectiveId][account];
        return o.role == OfficerRole.Committee && p.approvals & (uint16(1) << o.slot) != 0;
    }

    /// @notice Where proposal `proposalId` stands now (status, epoch, clock and approvals together).
    function proposalState(uint256 proposalId) external view returns (ProposalState) {
        Proposal storage p = _proposals[proposalId];
        ProposalStatus s = p.status;
        if (s == ProposalStatus.None) return ProposalState.None;
        if (s == ProposalStatus.Executed) return ProposalState.Executed;
        if (s == ProposalStatus.Rejected) return ProposalState.Rejected;
        if (s == ProposalStatus.Cancelled) return ProposalState.Cancelled;
        if (p.epoch != _collectives[p.collectiveId].epoch) return ProposalState.Stale;
        if (block.timestamp > p.expiresAt) return ProposalState.Expired;
        if (!_approved(p)) return ProposalState.Pending;
        if (block.timestamp < p.readyAt + p.delay) return ProposalState.Timelocked;
        return ProposalState.Executable;
    }

    /// @notice Asset `assetId` as stored.
    function assetOf(uint256 assetId) external view returns (Asset memory) {
        if (_assets[assetId].kind == AssetKind.None) revert CollectiveUnknownAsset(assetId);
        return _assets[assetId];
    }

    // ----------------------------------------------------------------------------------------
    // Internal
    // ----------------------------------------------------------------------------------------

    function _collective(uint256 id) private view returns (Collective storage c) {
        c = _collectives[id];
        if (c.epoch == 0) revert CollectiveUnknown(id);
    }

    /// @dev The caller acts for collective `id` (proposes, approves, executes, keeps the books): its
    /// own wallet must not be frozen. Registration is not asked (a township supervisor need not hold a wallet).
    function _checkOfficerNotFrozen(uint256 id) private view {
        if (registry.isFrozen(msg.sender)) revert CollectiveOfficerFrozen(id, msg.sender);
    }

    function _supervised(uint256 id) private view returns (Collective storage c) {
        c = _collective(id);
        if (msg.sender != c.supervisor) revert CollectiveNotSupervisor(id, msg.sender);
    }

    function _line(uint256 id, Collective storage c, uint8 line) private view returns (Line storage) {
        if (line >= c.lineCount) revert CollectiveUnknownLine(id, line);
        return _lines[id][line];
    }

    function _pending(uint256 proposalId) private view returns (Proposal storage p) {
        p = _proposals[proposalId];
        if (p.status == ProposalStatus.None) revert CollectiveUnknownProposal(proposalId);
        if (p.status != ProposalStatus.Pending) revert CollectiveProposalNotPending(proposalId, p.status);
    }

    /// @dev A committee member of collective `id`: reverts for non-officers and treasurers.
    function _approver(uint256 id, address account) private view returns (Officer memory o) {
        o = _officers[id][account];
        if (o.role == OfficerRole.None) revert CollectiveNotOfficer(id, account);
        if (o.role != OfficerRole.Committee) revert CollectiveNotApprover(id, account);
    }

    /// @dev Same epoch as the collective, and not expired (the expiry second itself still counts).
    function _checkLive(uint256 proposalId, Proposal storage p, Collective storage c) private view {
        if (p.epoch != c.epoch) revert CollectiveProposalStale(proposalId, p.epoch, c.epoch);
        if (block.timestamp > p.expiresAt) revert CollectiveProposalExpired(proposalId, p.expiresAt);
    }

    function _approved(Proposal storage p) private view returns (bool) {
        return p.committee >= p.committeeRequired && (p.townshipApproved || !p.townshipRequired);
    }

    function _activeAsset(uint256 assetId) private view returns (Asset storage a) {
        a = _assets[assetId];
        if (a.kind == AssetKind.None) revert CollectiveUnknownAsset(assetId);
        if (a.retired) revert CollectiveAssetRetired(assetId);
    }

    /// @dev The tier of `amount` given `recent` committed to the same payee: the tier of the basis
    /// `amount + recent`, the highest one when the basis is above it (`amount` alone must fit).
    function _splitTier(uint256 id, uint256 amount, uint256 recent) private view returns (Tier memory) {
        Tier memory own = _tierFor(id, amount); // reverts when the amount alone fits no tier
        Tier[] storage tiers = _tiers[id];
        uint256 basis = amount + recent;
        if (basis <= own.maxAmount) return own;
        uint256 top = tiers.length - 1; // 1..MAX_TIERS tiers
        if (basis > tiers[top].maxAmount) return tiers[top];
        return _tierFor(id, basis);
    }

    function _today() private view returns (uint256) {
        return (block.timestamp + _DAY_OFFSET) / 1 days;
    }

    function _tierFor(uint256 id, uint256 amount) private view returns (Tier memory) {
        Tier[] storage tiers = _tiers[id];
        uint256 n = tiers.length; // 1..MAX_TIERS
        for (uint256 i = 0; i < n; ++i) {
            if (amount <= tiers[i].maxAmount) return tiers[i];
        }
        revert CollectiveAmountAboveTiers(id, amount, tiers[n - 1].maxAmount);
    }

    /// @dev Add, change or remove (`role` None) an officer; the caller checked `role` differs from
    /// the current one. Starts a new epoch, so a freed slot can be given to someone else.
    function _setOfficer(uint256 id, Collective storage c, address account, OfficerRole role) private {
        if (account == address(0) || account == c.supervisor || account == address(this)) {
            revert CollectiveInvalidOfficer(id, account);
        }
        Officer storage o = _officers[id][account];
        OfficerRole previous = o.role;
        uint8 slot = 0;
        if (previous == OfficerRole.None) {
            uint16 used = c.slotsUsed;
            while (slot < MAX_OFFICERS && used & (uint16(1) << slot) != 0) ++slot;
            if (slot == MAX_OFFICERS) revert CollectiveTooManyOfficers(id, MAX_OFFICERS);
            c.slotsUsed = used | (uint16(1) << slot);
            _slotHolders[id][slot] = account;
            o.slot = slot;
            o.role = role;
        } else {
            slot = o.slot;
            if (role == OfficerRole.None) {
                c.slotsUsed &= ~(uint16(1) << slot);
                delete _slotHolders[id][slot];
                delete _officers[id][account];
            } else {
                o.role = role;
            }
        }
        // At creation the epoch stays 1; afterwards every change starts a new one.
        uint32 epoch = c.epoch;
        if (c.proposalLifetime != 0) c.epoch = ++epoch;
        emit OfficerSet(id, account, previous, role, slot, epoch);
    }

    function _setRules(uint256 id, Collective storage c, Tier[] calldata tiers, uint32 proposalLifetime) private {
        if (tiers.length == 0 || tiers.length > MAX_TIERS) revert CollectiveTierCount(tiers.length, MAX_TIERS);
        if (proposalLifetime == 0 || proposalLifetime > MAX_LIFETIME) revert CollectiveInvalidLifetime(proposalLifetime);
        delete _tiers[id];
        uint256 previousMax = 0;
        for (uint256 i = 0; i < tiers.length; ++i) {
            Tier calldata t = tiers[i];
            if (
                t.maxAmount <= previousMax || (t.committee == 0 && !t.township) || t.committee > MAX_OFFICERS
                    || t.delay >= proposalLifetime
            ) revert CollectiveInvalidTier(i);
            previousMax = t.maxAmount;
            _tiers[id].push(t);
        }
        c.proposalLifetime = proposalLifetime;
        emit RulesSet(id, tiers, proposalLifetime, c.epoch);
    }
}
