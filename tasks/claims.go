package tasks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/tally-loyalty/tally"
	"github.com/tally-loyalty/tally/ledger"
	"github.com/tally-loyalty/tally/program"
)

// Claim states.
const (
	Pending  = "pending"
	Approved = "approved"
	Rejected = "rejected"
)

// MaxEvidence is the longest evidence (URL or text) a claim may carry, in bytes.
const MaxEvidence = 500

// Claim is a member's claim of a task for one period.
type Claim struct {
	ID            int64
	Task          string
	Member        int64
	MemberName    string
	Period        string
	Points        int64
	Evidence      string
	Platform      string // where the member claimed
	UserID        string
	Locale        string // the language the member spoke when claiming
	Status        string
	CreatedAt     time.Time
	DecidedAt     *time.Time
	DecidedBy     int64 // 0: approved automatically
	DecidedByName string
	Reason        string
	// Full is set on a claim rejected because its task's limit was reached.
	Full    bool
	PaidTxn int64 // 0 until paid
}

// Claimant is the member making a claim, as the chat saw them.
type Claimant struct {
	Member   int64
	Name     string
	Platform string
	UserID   string
	Locale   string
}

// Why a claim, or a decision, is refused.
const (
	RefusedUnknown  = "unknown_task"
	RefusedClosed   = "closed"   // not started yet or ended
	RefusedAlready  = "already"  // claimed this period (Next says when again; zero for once)
	RefusedFull     = "full"     // the task's limit of approved claims is reached
	RefusedEvidence = "evidence" // missing or malformed evidence (Evidence says which kind)
	RefusedOwn      = "own"      // a moderator deciding their own claim
)

// Refused says why something was not done; nothing changed.
type Refused struct {
	Why      string
	Task     *program.Task
	Next     time.Time // RefusedAlready: when the task can be claimed again
	Evidence string    // RefusedEvidence: the kind the task needs
}

func (r *Refused) Error() string {
	switch r.Why {
	case RefusedAlready:
		return "already claimed this period"
	case RefusedEvidence:
		return "the claim needs " + r.Evidence + " evidence"
	}
	return "claim refused: " + r.Why
}

// AsRefused returns the refusal inside err.
func AsRefused(err error) (*Refused, bool) {
	var r *Refused
	return r, errors.As(err, &r)
}

// checkEvidence validates evidence for a task and returns it cleaned.
func checkEvidence(t *program.Task, evidence string) (string, error) {
	evidence = strings.TrimSpace(evidence)
	refuse := &Refused{Why: RefusedEvidence, Task: t, Evidence: t.Evidence}
	switch t.Evidence {
	case program.EvidenceNone:
		return "", nil
	case program.EvidenceURL:
		u, err := url.Parse(evidence)
		if evidence == "" || len(evidence) > MaxEvidence || err != nil || (u.Scheme != "http" && u.Scheme != "https") ||
			u.Hostname() == "" || strings.ContainsAny(evidence, " \t\r\n") || u.User != nil {
			return "", refuse
		}
		return u.String(), nil
	default:
		if evidence == "" || len(evidence) > MaxEvidence || !utf8.ValidString(evidence) {
			return "", refuse
		}
		for _, r := range evidence {
			if unicode.IsControl(r) && r != '\n' {
				return "", refuse
			}
		}
		return evidence, nil
	}
}

// Claim records a member's claim of a task. An automatic task is approved at
// once and paid by the queue; a manual one waits for a moderator, and is
// posted to the review chats. A second claim in the same period, a closed or
// full task and bad evidence are refused with *Refused and change nothing.
func (s *Service) Claim(ctx context.Context, who Claimant, taskKey, evidence string) (Claim, error) {
	t, ok := s.prog.Task(taskKey)
	if !ok {
		return Claim{}, &Refused{Why: RefusedUnknown}
	}
	now := s.now()
	if !t.Open(now) {
		return Claim{}, &Refused{Why: RefusedClosed, Task: t}
	}
	evidence, err := checkEvidence(t, evidence)
	if err != nil {
		return Claim{}, err
	}
	period, next := Period(t.Recurrence, now, s.prog.Location)
	c := Claim{Task: t.Key, Member: who.Member, MemberName: who.Name, Period: period, Points: t.Points, Evidence: evidence,
		Platform: who.Platform, UserID: who.UserID, Locale: who.Locale, Status: Pending, CreatedAt: now}
	auto := t.Approval == program.ApprovalAuto
	if auto {
		c.Status, c.DecidedAt = Approved, &now
	}
	var reviews []int64
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		reviews = nil
		if t.Limit > 0 {
			full, err := s.full(ctx, tx, t, auto)
			if err != nil {
				return err
			}
			if full {
				return &Refused{Why: RefusedFull, Task: t}
			}
		}
		// One claim per person and period, also when /link joined two of
		// their accounts: claims of merged-away accounts count, and the
		// member's row orders concurrent claims.
		if _, err := tx.Exec(ctx, "SELECT 1 FROM members WHERE id = $1 FOR UPDATE", c.Member); err != nil {
			return fmt.Errorf("lock member: %w", err)
		}
		var taken bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM claims WHERE task_key = $1 AND period = $2 AND status <> 'rejected'
			AND member_id IN (`+sameMemberIDs("$3")+`))`, c.Task, c.Period, c.Member).Scan(&taken); err != nil {
			return fmt.Errorf("read claims: %w", err)
		}
		if taken {
			return &Refused{Why: RefusedAlready, Task: t, Next: next}
		}
		err := tx.QueryRow(ctx, `INSERT INTO claims (task_key, member_id, period, points, evidence, platform, user_id, locale,
				status, created_at, decided_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id`,
			c.Task, c.Member, c.Period, c.Points, c.Evidence, c.Platform, c.UserID, c.Locale, c.Status, c.CreatedAt, c.DecidedAt).Scan(&c.ID)
		if uniqueViolation(err) {
			return &Refused{Why: RefusedAlready, Task: t, Next: next}
		}
		if err != nil {
			return fmt.Errorf("record claim: %w", err)
		}
		if auto {
			return nil
		}
		for _, dest := range s.reviewChats() {
			id, err := s.record(ctx, tx, outMessage{dedupe: fmt.Sprintf("claim:%d:review:%s", c.ID, dest.platform),
				platform: dest.platform, chatID: dest.chat, locale: s.prog.DefaultLocale, kind: KindReview,
				params: map[string]any{"claim": c.ID}})
			if err != nil {
				return err
			}
			reviews = append(reviews, id)
		}
		return nil
	})
	if err != nil {
		return Claim{}, err
	}
	if auto {
		s.hand(ctx, "pay claim", c.ID, s.notify.PayClaim)
	}
	for _, id := range reviews {
		s.hand(ctx, "send", id, s.notify.Send)
	}
	return c, nil
}

type reviewChat struct{ platform, chat string }

func (s *Service) reviewChats() []reviewChat {
	var out []reviewChat
	if s.prog.TelegramReviewChat != "" {
		out = append(out, reviewChat{"telegram", s.prog.TelegramReviewChat})
	}
	if s.prog.DiscordReviewChannel != "" {
		out = append(out, reviewChat{"discord", s.prog.DiscordReviewChannel})
	}
	return out
}

// full reports whether a limited task has all its approved claims; with lock
// set it first takes the task's lock so concurrent approvals count in turn.
func (s *Service) full(ctx context.Context, tx pgx.Tx, t *program.Task, lock bool) (bool, error) {
	if lock {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(hashtextextended($1 || $2, 0))", lockTask, t.Key); err != nil {
			return false, fmt.Errorf("lock task: %w", err)
		}
	}
	var n int64
	if err := tx.QueryRow(ctx, "SELECT count(*) FROM claims WHERE task_key = $1 AND status = 'approved'", t.Key).Scan(&n); err != nil {
		return false, fmt.Errorf("count approved claims: %w", err)
	}
	return n >= t.Limit, nil
}

// sameMemberIDs selects the member $1 and every account /link merged into it
// (merges are one hop: ledger_link re-points older merges to the survivor).
func sameMemberIDs(param string) string {
	return "SELECT id FROM members WHERE id = " + param + " OR merged_into = " + param
}

const claimColumns = `c.id, c.task_key, c.member_id, m.name, c.period, c.points, c.evidence, c.platform, c.user_id, c.locale,
	c.status, c.created_at, c.decided_at, coalesce(c.decided_by, 0), coalesce(d.name, ''), c.reason, c.full_task, coalesce(c.paid_txn, 0)`

const claimFrom = ` FROM claims c JOIN members m ON m.id = c.member_id LEFT JOIN members d ON d.id = c.decided_by `

func scanClaim(row pgx.Row) (Claim, error) {
	var c Claim
	err := row.Scan(&c.ID, &c.Task, &c.Member, &c.MemberName, &c.Period, &c.Points, &c.Evidence, &c.Platform, &c.UserID,
		&c.Locale, &c.Status, &c.CreatedAt, &c.DecidedAt, &c.DecidedBy, &c.DecidedByName, &c.Reason, &c.Full, &c.PaidTxn)
	return c, err
}

// Get returns a claim.
func (s *Service) Get(ctx context.Context, id int64) (Claim, error) {
	c, err := scanClaim(s.pool.QueryRow(ctx, "SELECT "+claimColumns+claimFrom+"WHERE c.id = $1", id))
	if errors.Is(err, pgx.ErrNoRows) {
		return Claim{}, tally.Errorf(tally.ENOTFOUND, "claim %d not found", id)
	}
	if err != nil {
		return Claim{}, fmt.Errorf("read claim: %w", err)
	}
	return c, nil
}

// Actor is a moderator acting from a chat.
type Actor struct {
	Member   int64
	Name     string
	Platform string
}

// Decision is the outcome of a moderator's approve or reject.
type Decision struct {
	Claim Claim
	// Decided is false when someone decided the claim before: the first
	// decision wins and Claim shows it.
	Decided bool
	// Full is set when an approval found the task's limit reached: the claim
	// was rejected instead.
	Full bool
}

// Decide approves or rejects a pending claim. The first decision wins; later
// ones change nothing and return the claim as decided. A moderator cannot
// decide their own claim. An approval is paid by the queue; the member is told
// the outcome either way.
func (s *Service) Decide(ctx context.Context, claimID int64, mod Actor, approve bool, reason string) (Decision, error) {
	reason = strings.TrimSpace(reason)
	if len(reason) > ledger.MaxReasonLen || !utf8.ValidString(reason) {
		return Decision{}, tally.Errorf(tally.EINVALID, "the reason must be text of at most %d bytes", ledger.MaxReasonLen)
	}
	var d Decision
	var message int64
	var updates []int64
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		d, message = Decision{}, 0
		// Lock first, then read: a read that waited on the lock would see the
		// decision but not the decider's name (joined rows are not re-read).
		var locked int64
		err := tx.QueryRow(ctx, "SELECT id FROM claims WHERE id = $1 FOR UPDATE", claimID).Scan(&locked)
		if err == nil {
			d.Claim, err = scanClaim(tx.QueryRow(ctx, "SELECT "+claimColumns+claimFrom+"WHERE c.id = $1", claimID))
		}
		c := d.Claim
		if errors.Is(err, pgx.ErrNoRows) {
			return tally.Errorf(tally.ENOTFOUND, "claim %d not found", claimID)
		}
		if err != nil {
			return fmt.Errorf("read claim: %w", err)
		}
		if c.Status != Pending {
			return nil
		}
		if s.sameMember(ctx, tx, c.Member, mod.Member) {
			t, _ := s.prog.Task(c.Task)
			return &Refused{Why: RefusedOwn, Task: t}
		}
		now := s.now()
		status, kind := Rejected, KindClaimRejected
		if approve {
			status = Approved
			if t, ok := s.prog.Task(c.Task); ok && t.Limit > 0 {
				full, err := s.full(ctx, tx, t, true)
				if err != nil {
					return err
				}
				if full {
					status, kind, d.Full = Rejected, KindClaimFull, true
				}
			}
		}
		if _, err := tx.Exec(ctx, `UPDATE claims SET status = $2, decided_at = $3, decided_by = $4, reason = $5, full_task = $6 WHERE id = $1`,
			c.ID, status, now, mod.Member, reason, d.Full); err != nil {
			return fmt.Errorf("decide claim: %w", err)
		}
		action := "reject"
		if approve {
			action = "approve"
		}
		outcome := "ok"
		if d.Full {
			outcome = RefusedFull
		}
		if _, err := tx.Exec(ctx, `INSERT INTO audit_log (at, actor_kind, actor_member, action, target_member, points, reason,
				outcome, claim_id, platform, day)
			VALUES ($1, 'moderator', $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
			now, mod.Member, action, c.Member, c.Points, reason, outcome, c.ID, mod.Platform, s.day(now)); err != nil {
			return fmt.Errorf("audit decision: %w", err)
		}
		// The claim's review posts on other platforms show the decision too
		// (the adapter edits the post that was pressed).
		rows, err := tx.Query(ctx, `SELECT id, platform, chat_id FROM outbound
			WHERE dedupe_key = ANY ($1) AND platform <> $2`,
			[]string{fmt.Sprintf("claim:%d:review:telegram", c.ID), fmt.Sprintf("claim:%d:review:discord", c.ID)}, mod.Platform)
		if err != nil {
			return fmt.Errorf("read review posts: %w", err)
		}
		type post struct {
			id             int64
			platform, chat string
		}
		posts, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (post, error) {
			var p post
			return p, r.Scan(&p.id, &p.platform, &p.chat)
		})
		if err != nil {
			return fmt.Errorf("read review posts: %w", err)
		}
		updates = updates[:0]
		for _, p := range posts {
			id, err := s.record(ctx, tx, outMessage{dedupe: fmt.Sprintf("claim:%d:review-update:%s", c.ID, p.platform),
				platform: p.platform, chatID: p.chat, locale: s.prog.DefaultLocale, kind: KindReviewUpdate,
				params: map[string]any{"claim": c.ID, "post": p.id}})
			if err != nil {
				return err
			}
			if id != 0 {
				updates = append(updates, id)
			}
		}
		if status == Rejected {
			message, err = s.record(ctx, tx, outMessage{dedupe: fmt.Sprintf("claim:%d:rejected", c.ID), member: c.Member,
				platform: c.Platform, userID: c.UserID, locale: c.Locale, kind: kind,
				params: map[string]any{"claim": c.ID}})
			if err != nil {
				return err
			}
		}
		d.Decided = true
		d.Claim.Status, d.Claim.DecidedAt, d.Claim.DecidedBy, d.Claim.DecidedByName, d.Claim.Reason = status, &now, mod.Member, mod.Name, reason
		d.Claim.Full = d.Full
		return nil
	})
	if err != nil {
		return Decision{}, err
	}
	if d.Decided && d.Claim.Status == Approved {
		s.hand(ctx, "pay claim", d.Claim.ID, s.notify.PayClaim)
	}
	for _, id := range updates {
		s.hand(ctx, "send", id, s.notify.Send)
	}
	if message != 0 {
		s.hand(ctx, "send", message, s.notify.Send)
	}
	return d, nil
}

// sameMember reports whether two member ids are one person (one may have been
// merged into the other by /link).
func (s *Service) sameMember(ctx context.Context, tx pgx.Tx, a, b int64) bool {
	if a == b {
		return true
	}
	var same bool
	err := tx.QueryRow(ctx, `SELECT coalesce((SELECT merged_into FROM members WHERE id = $1), $1)
		= coalesce((SELECT merged_into FROM members WHERE id = $2), $2)`, a, b).Scan(&same)
	return err == nil && same
}

// ClaimKey is the ledger idempotency key that pays a claim.
func ClaimKey(claimID int64) string {
	return ledger.ReservedKeyPrefix + "claim:" + strconv.FormatInt(claimID, 10)
}

// PayClaim pays an approved claim through the ledger and tells the member.
// It is the queue's award job: running it again, after a crash anywhere in it,
// pays nothing more (the ledger key is derived from the claim).
func (s *Service) PayClaim(ctx context.Context, claimID int64) error {
	c, err := s.Get(ctx, claimID)
	if err != nil {
		return err
	}
	if c.Status != Approved {
		return nil
	}
	res, err := s.ledger.AwardInternal(ctx, ledger.KindTask, ledger.Award{Member: ledger.MemberRef{ID: c.Member},
		Points: c.Points, Reason: "task " + c.Task, Key: ClaimKey(c.ID)})
	if err != nil {
		return fmt.Errorf("pay claim %d: %w", c.ID, err)
	}
	if s.afterPay != nil {
		if err := s.afterPay(c.ID); err != nil {
			return err
		}
	}
	var message int64
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "UPDATE claims SET paid_txn = $2, paid_at = $3 WHERE id = $1 AND paid_txn IS NULL",
			c.ID, res.TxnID, res.CreatedAt); err != nil {
			return fmt.Errorf("record payment: %w", err)
		}
		message, err = s.record(ctx, tx, outMessage{dedupe: fmt.Sprintf("claim:%d:approved", c.ID), member: c.Member,
			platform: c.Platform, userID: c.UserID, locale: c.Locale, kind: KindClaimApproved,
			params: map[string]any{"claim": c.ID, "balance": res.Balance}})
		return err
	})
	if err != nil {
		return err
	}
	if message != 0 {
		s.hand(ctx, "send", message, s.notify.Send)
	}
	return nil
}

// TaskState is a task as one member sees it now.
type TaskState struct {
	Task   *program.Task
	Period string
	// Claim is the member's claim this period (the live one, else the latest
	// rejected one); nil when none.
	Claim *Claim
	// Next is when the next period starts (zero for tasks claimed once).
	Next time.Time
	Full bool
}

// Board returns the open tasks with the member's claims of this period.
func (s *Service) Board(ctx context.Context, member int64) ([]TaskState, error) {
	now := s.now()
	var out []TaskState
	var keys, periods []string
	for i := range s.prog.Tasks {
		t := &s.prog.Tasks[i]
		if !t.Open(now) {
			continue
		}
		period, next := Period(t.Recurrence, now, s.prog.Location)
		out = append(out, TaskState{Task: t, Period: period, Next: next})
		keys, periods = append(keys, t.Key), append(periods, period)
	}
	if len(out) == 0 {
		return nil, nil
	}
	rows, err := s.pool.Query(ctx, "SELECT "+claimColumns+claimFrom+`
		JOIN unnest($2::text[], $3::text[]) AS w(k, p) ON c.task_key = w.k AND c.period = w.p
		WHERE c.member_id IN (`+sameMemberIDs("$1")+`) ORDER BY c.id`, member, keys, periods)
	if err != nil {
		return nil, fmt.Errorf("read claims: %w", err)
	}
	claims, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Claim, error) { return scanClaim(r) })
	if err != nil {
		return nil, fmt.Errorf("read claims: %w", err)
	}
	var limited []string
	for i := range out {
		for j := range claims {
			c := &claims[j]
			if c.Task == out[i].Task.Key && (out[i].Claim == nil || out[i].Claim.Status == Rejected) {
				out[i].Claim = c
			}
		}
		if out[i].Task.Limit > 0 {
			limited = append(limited, out[i].Task.Key)
		}
	}
	if len(limited) > 0 {
		counts := map[string]int64{}
		rows, err := s.pool.Query(ctx, "SELECT task_key, count(*) FROM claims WHERE task_key = ANY($1) AND status = 'approved' GROUP BY task_key", limited)
		if err != nil {
			return nil, fmt.Errorf("count claims: %w", err)
		}
		for rows.Next() {
			var k string
			var n int64
			if err := rows.Scan(&k, &n); err != nil {
				return nil, err
			}
			counts[k] = n
		}
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("count claims: %w", err)
		}
		for i := range out {
			if l := out[i].Task.Limit; l > 0 {
				out[i].Full = counts[out[i].Task.Key] >= l
			}
		}
	}
	return out, nil
}

// jsonParams encodes message parameters.
func jsonParams(p map[string]any) []byte {
	b, _ := json.Marshal(p)
	return b
}
