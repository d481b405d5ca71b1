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

// Sweep is what an ExpireDue or ExpireAll call did. ExpireAll leaves Lots
// empty (a sweep may expire millions) and counts them in Expired.
type Sweep struct {
	Lots    []ExpiredLot
	Expired int
	Points  int64
	Members int
}

// expireMembers is how many members one sweep transaction takes: their
// awards and spending wait for it, so it stays short.
const expireMembers = 500

// ExpireDue expires the lots whose expiry has passed, up to about
// expireMembers members per call (call again until it returns no lots). A
// member's due lots expire through one ledger transaction keyed by the lowest
// of their ids, with a consumption per lot; the lots change state in it under
// the member's row lock, so concurrent sweeps and a sweep rerun after a crash
// expire every point once. A lot spent before its expiry expires nothing.
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
			sw.Members, sw.Expired = len(members), len(sw.Lots)
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

// ExpiryPolicy is the programme's rule for when earned points expire.
type ExpiryPolicy struct {
	Policy   string // after_earn, inactivity or none
	Months   int    // the lifetime in calendar months…
	Fixed    time.Duration
	Location *time.Location // …added in this zone
}

// Expires returns when points earned (or, under inactivity, last touched) at
// t expire; nil under the policy none. Months are added on the calendar in
// the policy's zone, a day past the end of a month becoming its last day,
// as Postgres adds them.
func (p ExpiryPolicy) Expires(t time.Time) *time.Time {
	if p.Policy != "after_earn" && p.Policy != "inactivity" {
		return nil
	}
	loc := p.Location
	if loc == nil {
		loc = time.UTC
	}
	l := t.In(loc)
	if p.Months > 0 {
		y, m, d := l.Date()
		first := time.Date(y, m+time.Month(p.Months), 1, l.Hour(), l.Minute(), l.Second(), l.Nanosecond(), loc)
		last := first.AddDate(0, 1, -1).Day()
		l = time.Date(first.Year(), first.Month(), min(d, last), l.Hour(), l.Minute(), l.Second(), l.Nanosecond(), loc)
	}
	e := l.Add(p.Fixed).UTC()
	return &e
}

// SetExpiryPolicy records the policy the database applies on its own (the
// inactivity policy re-dates a member's lots on each earning or spending).
func (s *Service) SetExpiryPolicy(ctx context.Context, p ExpiryPolicy) error {
	policy := p.Policy
	if policy == "" {
		policy = "none"
	}
	tz := "UTC"
	if p.Location != nil {
		tz = p.Location.String()
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO expiry_policy (policy, after_months, after_fixed, timezone) VALUES ($1, $2, $3, $4)
		ON CONFLICT (only_row) DO UPDATE SET policy = excluded.policy, after_months = excluded.after_months,
			after_fixed = excluded.after_fixed, timezone = excluded.timezone`, policy, p.Months, p.Fixed, tz)
	if err != nil {
		return fmt.Errorf("set expiry policy: %w", err)
	}
	return nil
}

// expirePause is the share of each sweep transaction's time the sweep waits
// before the next one, so awards running meanwhile keep a fair share of the
// machine (measured at a million lots: no pause 41 s and awards at 46%; half
// the time 86 s and awards at 75%).
const expirePause = 0.2

// ExpireAll expires every due lot, one ExpireDue transaction after another,
// pausing between them for a fifth of the time the last one took, and returns the
// totals.
func (s *Service) ExpireAll(ctx context.Context) (Sweep, error) {
	var total Sweep
	for {
		start := time.Now()
		sw, err := s.ExpireDue(ctx)
		if err != nil {
			return total, err
		}
		if len(sw.Lots) == 0 {
			return total, nil
		}
		total.Expired += sw.Expired
		total.Points += sw.Points
		total.Members += sw.Members
		select {
		case <-ctx.Done():
			return total, ctx.Err()
		case <-time.After(time.Duration(float64(time.Since(start)) * expirePause)):
		}
	}
}
