package ledger

import (
	"context"
	"fmt"
	"time"

	"github.com/tally-loyalty/tally"
)

// AwardBatch credits up to MaxBatch awards in one database transaction, with
// multi-row statements. A malformed item makes the whole batch invalid and
// nothing changes. Otherwise each item has its own outcome: created, replayed
// (its key was used before with the same parameters), or an error of its own
// (idempotency_conflict, not_found for an unknown internal id).
func (s *Service) AwardBatch(ctx context.Context, awards []Award) (out []BatchResult, err error) {
	start := time.Now()
	defer func() { s.track("award_batch", start, nil, err) }()
	if len(awards) == 0 || len(awards) > MaxBatch {
		return nil, tally.Errorf(tally.EINVALID, "awards must hold 1 to %d items", MaxBatch)
	}
	now := s.now()
	seen := make(map[string]int, len(awards))
	refs := make([]MemberRef, len(awards))
	for i, a := range awards {
		if err := a.validate(now); err != nil {
			return nil, tally.Errorf(tally.EINVALID, "awards[%d]: %s", i, tally.ErrorMessage(err))
		}
		if j, dup := seen[a.Key]; dup {
			return nil, tally.Errorf(tally.EINVALID, "awards[%d]: idempotency_key repeats awards[%d]", i, j)
		}
		seen[a.Key] = i
		refs[i] = a.Member
	}
	members, err := s.resolveMany(ctx, refs, true)
	if err != nil {
		return nil, err
	}
	missing, err := s.missingMembers(ctx, members)
	if err != nil {
		return nil, err
	}
	out = make([]BatchResult, len(awards))
	fps := make([][]byte, len(awards))
	expiries := make([]*time.Time, len(awards))
	for i, a := range awards {
		expiries[i] = truncExpiry(a.ExpiresAt)
		fps[i] = fingerprint(KindAward, members[i], a.Points, a.Reason, expiries[i])
	}
	for attempt := 1; ; attempt++ {
		fresh, err := s.classifyBatch(ctx, awards, members, fps, missing, out)
		if err != nil {
			return nil, err
		}
		if len(fresh) == 0 {
			return out, nil
		}
		err = s.creditBatch(ctx, fresh, awards, members, fps, expiries, now, out)
		if err == nil {
			return out, nil
		}
		if (sqlState(err) == stateKeyExists || retryable(err)) && attempt < maxAttempts {
			continue // a concurrent request took one of the keys: classify again
		}
		return nil, fmt.Errorf("award batch: %w", mapErr(err, MemberRef{}))
	}
}

// missingMembers returns the internal ids among members that name nobody.
func (s *Service) missingMembers(ctx context.Context, members []int64) (map[int64]bool, error) {
	rows, err := s.pool.Query(ctx, `SELECT m FROM unnest($1::bigint[]) AS m
		WHERE NOT EXISTS (SELECT 1 FROM members WHERE id = m)`, members)
	if err != nil {
		return nil, fmt.Errorf("check members: %w", err)
	}
	missing := map[int64]bool{}
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		missing[id] = true
	}
	return missing, rows.Err()
}

// classifyBatch fills out for items that need no new transaction (replays,
// conflicts, unknown members) and returns the indexes of the others.
func (s *Service) classifyBatch(ctx context.Context, awards []Award, members []int64, fps [][]byte,
	missing map[int64]bool, out []BatchResult) ([]int, error) {
	keys := make([]string, len(awards))
	for i, a := range awards {
		keys[i] = a.Key
	}
	rows, err := s.pool.Query(ctx, `SELECT idempotency_key, id, member_id, abs(points), balance_after, created_at, fingerprint
		FROM txns WHERE idempotency_key = ANY ($1)`, keys)
	if err != nil {
		return nil, fmt.Errorf("read idempotency keys: %w", err)
	}
	type stored struct {
		res Result
		fp  []byte
	}
	have := map[string]stored{}
	for rows.Next() {
		var key string
		var st stored
		if err := rows.Scan(&key, &st.res.TxnID, &st.res.MemberID, &st.res.Points, &st.res.Balance, &st.res.CreatedAt, &st.fp); err != nil {
			return nil, err
		}
		st.res.Replayed = true
		have[key] = st
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	var fresh []int
	for i, a := range awards {
		st, ok := have[a.Key]
		switch {
		case ok && string(st.fp) == string(fps[i]):
			out[i] = BatchResult{Result: st.res}
		case ok:
			out[i] = BatchResult{Err: tally.Errorf(tally.ECONFLICT, "idempotency_key %q was used for a different request", clip(a.Key))}
		case missing[members[i]]:
			out[i] = BatchResult{Err: tally.Errorf(tally.ENOTFOUND, errMemberNotFoundFmt, a.Member)}
		default:
			fresh = append(fresh, i)
		}
	}
	return fresh, nil
}

// creditBatch runs one ledger_credit_batch statement for the fresh items.
func (s *Service) creditBatch(ctx context.Context, fresh []int, awards []Award, members []int64, fps [][]byte,
	expiries []*time.Time, now time.Time, out []BatchResult) error {
	n := len(fresh)
	ms, pts := make([]int64, n), make([]int64, n)
	reasons, keys := make([]string, n), make([]string, n)
	fs, exps := make([][]byte, n), make([]*time.Time, n)
	for j, i := range fresh {
		ms[j], pts[j], reasons[j], keys[j], fs[j], exps[j] = members[i], awards[i].Points, awards[i].Reason, awards[i].Key, fps[i], expiries[i]
	}
	rows, err := s.pool.Query(ctx, `SELECT idx, txn_id, balance_after
		FROM ledger_credit_batch($1, $2, $3, $4, $5, $6, $7, 'issued', $8)`,
		ms, pts, reasons, keys, fs, exps, KindAward, now)
	if err != nil {
		return err
	}
	results := make([]Result, 0, n)
	for rows.Next() {
		var idx int64
		var r Result
		if err := rows.Scan(&idx, &r.TxnID, &r.Balance); err != nil {
			return err
		}
		i := fresh[idx-1]
		r.MemberID, r.Points, r.CreatedAt = members[i], awards[i].Points, now
		results = append(results, r)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if len(results) != n {
		return fmt.Errorf("award batch: %d results for %d items", len(results), n)
	}
	// Only a statement that completed is committed: fill out now.
	for j, i := range fresh {
		out[i] = BatchResult{Result: results[j]}
	}
	return nil
}
