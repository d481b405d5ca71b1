package ledger

import (
	"context"
	"fmt"
	"time"
)

// KindExpiry moves a lot's remaining points to the expired account.
const KindExpiry = "expiry"

// ExpiredLot is one lot a sweep expired.
type ExpiredLot struct {
	Lot, Member, Points, TxnID int64
	ExpiresAt                  time.Time
}

// Sweep is what one ExpireDue call did.
type Sweep struct {
	Lots    []ExpiredLot
	Points  int64
	Members int
}

// expireMembers is how many members one sweep transaction takes: their
// awards and spending wait for it, so it stays short.
const expireMembers = 200

// ExpireDue expires the lots whose expiry has passed, up to about
// expireMembers members per call (call again until it returns no lots). Each
// lot expires through its own ledger transaction with the key
// 'tally:expire:<lot>', so concurrent sweeps and a sweep rerun after a crash
// expire every point once; a lot spent before its expiry expires nothing.
func (s *Service) ExpireDue(ctx context.Context) (sw Sweep, err error) {
	start := time.Now()
	defer func() { s.observe("expire", outcomeOf(err), time.Since(start)) }()
	for attempt := 1; ; attempt++ {
		sw = Sweep{}
		rows, err := s.pool.Query(ctx, "SELECT lot_id, member_id, points, txn_id, expires_at FROM ledger_expire_due($1, $2)",
			s.now(), expireMembers)
		if err == nil {
			members := map[int64]bool{}
			for rows.Next() {
				var l ExpiredLot
				if err := rows.Scan(&l.Lot, &l.Member, &l.Points, &l.TxnID, &l.ExpiresAt); err != nil {
					rows.Close()
					return Sweep{}, fmt.Errorf("expire: %w", err)
				}
				sw.Lots = append(sw.Lots, l)
				sw.Points += l.Points
				members[l.Member] = true
			}
			sw.Members = len(members)
			err = rows.Err()
		}
		if err == nil {
			return sw, nil
		}
		if !retryable(err) || attempt == maxAttempts {
			return Sweep{}, fmt.Errorf("expire: %w", err)
		}
	}
}

func outcomeOf(err error) string {
	if err != nil {
		return "error"
	}
	return "ok"
}
