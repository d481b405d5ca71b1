package api

import (
	"context"
	"net/http"
	"time"

	"github.com/tally-loyalty/tally"
	"github.com/tally-loyalty/tally/ledger"
	"github.com/tally-loyalty/tally/tasks"
)

// AuditLog is where the admin API writes its actions and reads the log of
// every moderator and admin action.
type AuditLog interface {
	Audit(ctx context.Context, before int64, limit int) ([]tasks.AuditEntry, bool, error)
	RecordAdmin(ctx context.Context, entries []tasks.AuditEntry) error
}

// WithAudit records every admin award and deduction in log and serves
// GET /v1/audit from it.
func WithAudit(log AuditLog) Option { return func(s *Server) { s.audit = log } }

// defaultAudit is the page size when limit is not given.
const defaultAudit = 50

// record writes admin actions to the audit log. The ledger call has happened:
// a failure to write the log is reported, not returned.
func (s *Server) record(ctx context.Context, entries ...tasks.AuditEntry) {
	if s.audit == nil {
		return
	}
	if err := s.audit.RecordAdmin(ctx, entries); err != nil {
		s.log.Error("api: audit log write failed", "entries", len(entries), "err", err)
	}
}

// adminEntry describes one admin mutation and its outcome.
func adminEntry(action string, ref ledger.MemberRef, points int64, reason, key string, res ledger.Result, err error) tasks.AuditEntry {
	e := tasks.AuditEntry{ActorKind: "admin", Action: action, TargetRef: ref.String(), Points: points, Reason: reason, Key: key, Outcome: "ok"}
	switch {
	case err != nil:
		e.Outcome = tally.ErrorCode(err)
	case res.Replayed:
		e.Outcome, e.Target, e.Txn = "replayed", res.MemberID, res.TxnID
	default:
		e.Target, e.Txn = res.MemberID, res.TxnID
	}
	return e
}

type actorJSON struct {
	Kind string `json:"kind"`
	*memberJSON
}

type auditJSON struct {
	ID             int64       `json:"id"`
	At             time.Time   `json:"at"`
	Actor          actorJSON   `json:"actor"`
	Action         string      `json:"action"`
	Target         *memberJSON `json:"target"`
	TargetRef      string      `json:"target_ref,omitempty"`
	Points         int64       `json:"points"`
	Reason         string      `json:"reason"`
	Outcome        string      `json:"outcome"`
	ClaimID        int64       `json:"claim_id,omitempty"`
	TransactionID  int64       `json:"transaction_id,omitempty"`
	IdempotencyKey string      `json:"idempotency_key,omitempty"`
	Platform       string      `json:"platform,omitempty"`
}

func (s *Server) auditLog(w http.ResponseWriter, r *http.Request) error {
	if s.audit == nil {
		return tally.Errorf(tally.ENOTFOUND, "the audit log is not available")
	}
	q := r.URL.Query()
	limit, err := limitParam(q, defaultAudit, tasks.MaxAudit)
	if err != nil {
		return err
	}
	before, err := beforeParam(q, "an id from an earlier page (next_before)")
	if err != nil {
		return err
	}
	entries, more, err := s.audit.Audit(r.Context(), before, limit)
	if err != nil {
		return err
	}
	var ids []int64
	for _, e := range entries {
		for _, id := range []int64{e.Actor, e.Target} {
			if id != 0 {
				ids = append(ids, id)
			}
		}
	}
	members, err := s.ledger.Describe(r.Context(), ids)
	if err != nil {
		return err
	}
	out := make([]auditJSON, len(entries))
	for i, e := range entries {
		a := auditJSON{ID: e.ID, At: e.At.UTC(), Actor: actorJSON{Kind: e.ActorKind}, Action: e.Action, TargetRef: e.TargetRef,
			Points: e.Points, Reason: e.Reason, Outcome: e.Outcome, ClaimID: e.Claim, TransactionID: e.Txn,
			IdempotencyKey: e.Key, Platform: e.Platform}
		if e.Actor != 0 {
			m := toMemberJSON(e.Actor, members[e.Actor])
			a.Actor.memberJSON = &m
		}
		if e.Target != 0 {
			m := toMemberJSON(e.Target, members[e.Target])
			a.Target = &m
		}
		out[i] = a
	}
	body := map[string]any{"entries": out}
	if more {
		body["next_before"] = out[len(out)-1].ID
	}
	writeJSON(w, http.StatusOK, body)
	return nil
}
