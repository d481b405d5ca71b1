package tasks

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tally-loyalty/tally"
	"github.com/tally-loyalty/tally/ledger"
)

// Refusals of moderator awards and deductions.
const (
	RefusedSelf  = "self"  // a moderator awarding or deducting their own points
	RefusedLimit = "limit" // over the moderator's daily_award_limit
)

// LimitRefused is a moderator award over the daily limit: Used points were
// handed out today already.
type LimitRefused struct {
	Limit, Used int64
	// Reset is when the moderator's day ends in the programme's timezone.
	Reset time.Time
}

func (e *LimitRefused) Error() string {
	return fmt.Sprintf("over the daily award limit: %d of %d points used today", e.Used, e.Limit)
}

// ActionKey is the ledger idempotency key of a moderator action.
func ActionKey(auditID int64) string {
	return ledger.ReservedKeyPrefix + "moderator:" + strconv.FormatInt(auditID, 10)
}

// ModeratorAward hands points to a member from the chat. Refused, with
// nothing paid: points out of range (invalid), awarding oneself (*Refused
// RefusedSelf), and going over the daily_award_limit (*LimitRefused). Every
// attempt is written to the audit log.
func (s *Service) ModeratorAward(ctx context.Context, mod Actor, target ledger.MemberRef, points int64, reason string) (ledger.Result, error) {
	return s.moderate(ctx, mod, "award", target, points, reason)
}

// ModeratorDeduct takes points from a member, soonest-expiring first;
// insufficient_points when they have fewer. Deducting from oneself is refused.
func (s *Service) ModeratorDeduct(ctx context.Context, mod Actor, target ledger.MemberRef, points int64, reason string) (ledger.Result, error) {
	return s.moderate(ctx, mod, "deduct", target, points, reason)
}

func (s *Service) moderate(ctx context.Context, mod Actor, action string, target ledger.MemberRef, points int64, reason string) (ledger.Result, error) {
	if points < 1 || points > ledger.MaxPoints {
		return ledger.Result{}, tally.Errorf(tally.EINVALID, "points must be a whole number from 1 to %d", int64(ledger.MaxPoints))
	}
	if len(reason) > ledger.MaxReasonLen {
		return ledger.Result{}, tally.Errorf(tally.EINVALID, "the reason must be at most %d bytes", ledger.MaxReasonLen)
	}
	var targetID *int64
	m, _, err := s.ledger.Member(ctx, target)
	switch {
	case err == nil:
		targetID = &m.ID
	case tally.ErrorCode(err) == tally.ENOTFOUND && action == "award":
		// The member is created by the award.
	default:
		return ledger.Result{}, err
	}
	now := s.now()
	var id int64
	var refusal error
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		id, refusal = 0, nil
		outcome := "pending"
		switch {
		case targetID != nil && s.sameMember(ctx, tx, *targetID, mod.Member):
			outcome, refusal = RefusedSelf, &Refused{Why: RefusedSelf}
		case action == "award" && s.prog.DailyAwardLimit > 0:
			if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(hashtextextended($1 || ($2::bigint)::text, 0))", lockModerator, mod.Member); err != nil {
				return fmt.Errorf("lock moderator: %w", err)
			}
			var used int64
			// Awards made today from an account since merged by /link count too.
			if err := tx.QueryRow(ctx, `SELECT coalesce(sum(points), 0) FROM audit_log
				WHERE actor_member IN (`+sameMemberIDs("$1")+`) AND day = $2 AND action = 'award' AND outcome IN ('pending', 'ok')`,
				mod.Member, s.day(now)).Scan(&used); err != nil {
				return fmt.Errorf("read daily awards: %w", err)
			}
			if used+points > s.prog.DailyAwardLimit {
				_, next := Period("daily", now, s.prog.Location)
				outcome, refusal = RefusedLimit, &LimitRefused{Limit: s.prog.DailyAwardLimit, Used: used, Reset: next}
			}
		}
		err := tx.QueryRow(ctx, `INSERT INTO audit_log (at, actor_kind, actor_member, action, target_member, target, points, reason,
				outcome, platform, day)
			VALUES ($1, 'moderator', $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id`,
			now, mod.Member, action, targetID, target.String(), points, reason, outcome, mod.Platform, s.day(now)).Scan(&id)
		if err != nil {
			return fmt.Errorf("audit %s: %w", action, err)
		}
		if refusal == nil {
			_, err = tx.Exec(ctx, "UPDATE audit_log SET idempotency_key = $2 WHERE id = $1", id, ActionKey(id))
		}
		return err
	})
	if err != nil {
		return ledger.Result{}, err
	}
	if refusal != nil {
		return ledger.Result{}, refusal
	}
	return s.carryOut(ctx, id, action, target, points, reason)
}

// carryOut pays a recorded moderator action through the ledger and records
// its outcome. Running it again pays nothing more (the key is the audit id).
func (s *Service) carryOut(ctx context.Context, id int64, action string, target ledger.MemberRef, points int64, reason string) (ledger.Result, error) {
	var res ledger.Result
	var err error
	if action == "award" {
		res, err = s.ledger.AwardInternal(ctx, ledger.KindAward, ledger.Award{Member: target, Points: points, Reason: reason, Key: ActionKey(id)})
	} else {
		res, err = s.ledger.DeductInternal(ctx, ledger.Deduction{Member: target, Points: points, Reason: reason, Key: ActionKey(id)})
	}
	outcome := "ok"
	var txn, member *int64
	if err != nil {
		outcome = tally.ErrorCode(err)
		if outcome == tally.EINTERNAL {
			return ledger.Result{}, err // left pending: the reconciler tries again
		}
	} else {
		txn, member = &res.TxnID, &res.MemberID
	}
	if _, uerr := s.pool.Exec(ctx, `UPDATE audit_log SET outcome = $2, txn_id = $3, target_member = coalesce($4, target_member)
		WHERE id = $1 AND outcome = 'pending'`, id, outcome, txn, member); uerr != nil && err == nil {
		err = fmt.Errorf("record outcome: %w", uerr)
	}
	return res, err
}

// FinishAction settles a moderator action a crash or an error left pending.
// It never pays: the moderator was told it failed (or saw nothing), and may
// have tried again. If the ledger holds the payment, the action is recorded
// as done; otherwise as interrupted, which frees its part of the daily limit.
func (s *Service) FinishAction(ctx context.Context, id int64) error {
	res, paid, err := s.ledger.Lookup(ctx, ActionKey(id))
	if err != nil {
		return err
	}
	outcome := "interrupted"
	var txn, member *int64
	if paid {
		outcome, txn, member = "ok", &res.TxnID, &res.MemberID
	}
	if _, err := s.pool.Exec(ctx, `UPDATE audit_log SET outcome = $2, txn_id = $3, target_member = coalesce($4, target_member)
		WHERE id = $1 AND outcome = 'pending'`, id, outcome, txn, member); err != nil {
		return fmt.Errorf("settle action: %w", err)
	}
	return nil
}

// AuditEntry is one moderator or admin action.
type AuditEntry struct {
	ID        int64
	At        time.Time
	ActorKind string // moderator or admin
	Actor     int64  // the moderator's member id; 0 for admins
	Action    string // award, deduct, approve, reject
	Target    int64  // 0 when the target was never found
	TargetRef string // the member as the request named it
	Points    int64
	Reason    string
	Outcome   string // ok, replayed, pending or an error code
	Claim     int64
	Txn       int64
	Key       string
	Platform  string
}

// MaxAudit is the most audit entries one page returns.
const MaxAudit = 200

// Audit returns audit entries newest first, before the id before (0: from the
// newest), and whether more follow.
func (s *Service) Audit(ctx context.Context, before int64, limit int) ([]AuditEntry, bool, error) {
	if limit < 1 || limit > MaxAudit {
		return nil, false, tally.Errorf(tally.EINVALID, "limit must be from 1 to %d", MaxAudit)
	}
	if before <= 0 {
		before = 1<<63 - 1
	}
	rows, err := s.pool.Query(ctx, `SELECT id, at, actor_kind, coalesce(actor_member, 0), action, coalesce(target_member, 0), target,
			coalesce(points, 0), reason, outcome, coalesce(claim_id, 0), coalesce(txn_id, 0), coalesce(idempotency_key, ''), platform
		FROM audit_log WHERE id < $1 ORDER BY id DESC LIMIT $2`, before, limit+1)
	if err != nil {
		return nil, false, fmt.Errorf("read audit log: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (AuditEntry, error) {
		var e AuditEntry
		err := r.Scan(&e.ID, &e.At, &e.ActorKind, &e.Actor, &e.Action, &e.Target, &e.TargetRef, &e.Points, &e.Reason,
			&e.Outcome, &e.Claim, &e.Txn, &e.Key, &e.Platform)
		return e, err
	})
	if err != nil {
		return nil, false, fmt.Errorf("read audit log: %w", err)
	}
	more := len(out) > limit
	if more {
		out = out[:limit]
	}
	return out, more, nil
}

// RecordAdmin writes admin API actions to the audit log in one statement.
func (s *Service) RecordAdmin(ctx context.Context, entries []AuditEntry) error {
	if len(entries) == 0 {
		return nil
	}
	now := s.now()
	n := len(entries)
	actions, refs, reasons, outcomes, keys := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	targets, points, txns := make([]*int64, n), make([]int64, n), make([]*int64, n)
	for i, e := range entries {
		actions[i], refs[i], reasons[i], outcomes[i], keys[i], points[i] = e.Action, e.TargetRef, e.Reason, e.Outcome, e.Key, e.Points
		if e.Target != 0 {
			targets[i] = &entries[i].Target
		}
		if e.Txn != 0 {
			txns[i] = &entries[i].Txn
		}
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO audit_log (at, actor_kind, action, target_member, target, points, reason, outcome,
			txn_id, idempotency_key, day)
		SELECT $1, 'admin', a, t, r, p, re, o, x, k, $10
		FROM unnest($2::text[], $3::bigint[], $4::text[], $5::bigint[], $6::text[], $7::text[], $8::bigint[], $9::text[])
			AS u(a, t, r, p, re, o, x, k)`,
		now, actions, targets, refs, points, reasons, outcomes, txns, keys, s.day(now))
	if err != nil {
		return fmt.Errorf("write audit log: %w", err)
	}
	return nil
}
