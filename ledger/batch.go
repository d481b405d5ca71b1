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
// (idempotency_conflict, not_found for an unknown internal id). Members are
// created only for items that are credited.
func (s *Service) AwardBatch(ctx context.Context, awards []Award) (out []BatchResult, err error) {
	start := time.Now()
	defer func() { s.track("award_batch", start, nil, err) }()
	if len(awards) == 0 || len(awards) > MaxBatch {
		return nil, tally.Errorf(tally.EINVALID, "awards must hold 1 to %d items", MaxBatch)
	}
	now := s.now()
	seen := make(map[string]int, len(awards))
	for i, a := range awards {
		if err := a.validate(now, false); err != nil {
			return nil, tally.Errorf(tally.EINVALID, "awards[%d]: %s", i, tally.ErrorMessage(err))
		}
		if j, dup := seen[a.Key]; dup {
			return nil, tally.Errorf(tally.EINVALID, "awards[%d]: idempotency_key repeats awards[%d]", i, j)
		}
		seen[a.Key] = i
	}
	b := &batch{awards: awards, now: now, out: make([]BatchResult, len(awards)),
		fps: make([][]byte, len(awards)), expiries: make([]*time.Time, len(awards))}
	for i, a := range awards {
		// The fingerprint is of the request: a replay after the programme's
		// expiry policy changed is still a replay.
		b.expiries[i] = truncExpiry(a.ExpiresAt)
		b.fps[i] = fingerprint(KindAward, a.Member, a.Points, a.Reason, b.expiries[i])
		if b.expiries[i] == nil {
			b.expiries[i] = s.defaultExpiry(now)
		}
	}
	for attempt := 1; ; attempt++ {
		err := s.runBatch(ctx, b)
		if err == nil {
			return b.out, nil
		}
		if (sqlState(err) == stateKeyExists || retryable(err)) && attempt < maxAttempts {
			continue // a concurrent request took one of the keys: look again
		}
		return nil, fmt.Errorf("award batch: %w", mapErr(err, MemberRef{}))
	}
}

// batch is the state of one AwardBatch call across attempts.
type batch struct {
	awards   []Award
	now      time.Time
	fps      [][]byte
	expiries []*time.Time
	out      []BatchResult
}

// runBatch makes one attempt: settle the items whose key is known, create the
// members of the rest, and credit them in one statement.
func (s *Service) runBatch(ctx context.Context, b *batch) error {
	settled, err := s.settleKnownKeys(ctx, b, allIndexes(len(b.awards)))
	if err != nil {
		return err
	}
	var pending []int
	var refs []MemberRef
	for i := range b.awards {
		if !settled[i] {
			pending = append(pending, i)
			refs = append(refs, b.awards[i].Member)
		}
	}
	if len(pending) == 0 {
		return nil
	}
	ids, err := s.resolveMany(ctx, refs, true)
	if err != nil {
		return err
	}
	ids, missing, err := s.survivors(ctx, ids)
	if err != nil {
		return err
	}
	var fresh []int
	var members []int64
	for j, i := range pending {
		if missing[ids[j]] {
			b.out[i] = BatchResult{Err: tally.Errorf(tally.ENOTFOUND, errMemberNotFoundFmt, b.awards[i].Member)}
			continue
		}
		fresh = append(fresh, i)
		members = append(members, ids[j])
	}
	if len(fresh) == 0 {
		return nil
	}
	n := len(fresh)
	pts, reasons, keys := make([]int64, n), make([]string, n), make([]string, n)
	fps, exps := make([][]byte, n), make([]*time.Time, n)
	for j, i := range fresh {
		pts[j], reasons[j], keys[j], fps[j], exps[j] = b.awards[i].Points, b.awards[i].Reason, b.awards[i].Key, b.fps[i], b.expiries[i]
	}
	rows, err := s.pool.Query(ctx, `SELECT idx, txn_id, balance_after, key_exists
		FROM ledger_credit_batch($1, $2, $3, $4, $5, $6, $7, 'issued', $8)`,
		members, pts, reasons, keys, fps, exps, KindAward, b.now)
	if err != nil {
		return err
	}
	results := make(map[int]Result, n)
	var exists []int
	for rows.Next() {
		var idx int64
		var txn, bal *int64
		var known bool
		if err := rows.Scan(&idx, &txn, &bal, &known); err != nil {
			return err
		}
		j := int(idx - 1)
		if known {
			exists = append(exists, fresh[j])
			continue
		}
		results[fresh[j]] = Result{TxnID: *txn, MemberID: members[j], Points: pts[j], Balance: *bal, CreatedAt: b.now}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	// The statement completed, so it committed: record what it did.
	for i, r := range results {
		b.out[i] = BatchResult{Result: r}
	}
	if len(exists) > 0 {
		// Keys committed by others while this batch waited for its locks.
		settled, err := s.settleKnownKeys(ctx, b, exists)
		if err != nil {
			return err
		}
		for _, i := range exists {
			if !settled[i] {
				return fmt.Errorf("award batch: key of item %d vanished", i)
			}
		}
	}
	return nil
}

func allIndexes(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}

// settleKnownKeys fills b.out for the items among idx whose key is stored:
// a replay when the fingerprint matches, idempotency_conflict otherwise.
func (s *Service) settleKnownKeys(ctx context.Context, b *batch, idx []int) (map[int]bool, error) {
	keys := make([]string, len(idx))
	for j, i := range idx {
		keys[j] = b.awards[i].Key
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
	settled := map[int]bool{}
	for _, i := range idx {
		st, ok := have[b.awards[i].Key]
		switch {
		case !ok:
			continue
		case string(st.fp) == string(b.fps[i]):
			b.out[i] = BatchResult{Result: st.res}
		default:
			b.out[i] = BatchResult{Err: tally.Errorf(tally.ECONFLICT, "idempotency_key %q was used for a different request", clip(b.awards[i].Key))}
		}
		settled[i] = true
	}
	return settled, nil
}

// survivors maps each member id to the member it was merged into by /link (or
// itself), and reports the ids that name nobody.
func (s *Service) survivors(ctx context.Context, ids []int64) ([]int64, map[int64]bool, error) {
	rows, err := s.pool.Query(ctx, `SELECT u.id, m.id IS NULL, coalesce(m.merged_into, m.id, 0)
		FROM unnest($1::bigint[]) AS u(id) LEFT JOIN members m ON m.id = u.id`, ids)
	if err != nil {
		return nil, nil, fmt.Errorf("check members: %w", err)
	}
	to := map[int64]int64{}
	missing := map[int64]bool{}
	for rows.Next() {
		var id, target int64
		var gone bool
		if err := rows.Scan(&id, &gone, &target); err != nil {
			return nil, nil, err
		}
		if gone {
			missing[id] = true
		}
		to[id] = target
	}
	if err := rows.Err(); err != nil {
		return nil, nil, err
	}
	out := make([]int64, len(ids))
	for i, id := range ids {
		if missing[id] {
			out[i] = id
		} else {
			out[i] = to[id]
		}
	}
	return out, missing, nil
}
