package ledger

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"time"

	"github.com/tally-loyalty/tally"
)

// Liability is what the programme owes its members at one instant and how the
// points came and went, month by month, in the programme's timezone.
//
// The outstanding figures are the remaining points of active lots: Outstanding
// is all of them, split into ByExpiry (not yet expired) and Overdue (past their
// expiry, not yet swept); pending lots are counted apart in Pending and are not
// part of Outstanding.
type Liability struct {
	AsOf        time.Time
	Timezone    string
	Outstanding int64
	Pending     int64
	Overdue     int64
	// ByExpiry holds one bucket per month of expiry with points left, oldest
	// first, then always the bucket of points that never expire (Month "").
	ByExpiry []ExpiryBucket
	// Activity holds the months with at least one posting on a system
	// account, oldest first, within the requested range. Months without
	// activity are left out.
	Activity []MonthActivity
}

// ExpiryBucket is the points that expire in one month ("YYYY-MM"), or never
// (Month "").
type ExpiryBucket struct {
	Month  string
	Points int64
}

// MonthActivity is one month's net movement through the system accounts.
// Issued, Adjustments and Partners are the points those accounts credited to
// members; Spent (the redeemed account) and Expired the points they took. So a
// month changes the outstanding total by
// Issued − Spent − Expired + Adjustments + Partners.
type MonthActivity struct {
	Month       string // "YYYY-MM" in the programme's timezone
	Issued      int64
	Spent       int64
	Expired     int64
	Adjustments int64
	Partners    int64
}

// monthPattern is a month as the report's range takes it: YYYY-MM.
var monthPattern = regexp.MustCompile(`^[1-9][0-9]{3}-(0[1-9]|1[0-2])$`)

// Liability reports outstanding points at the clock's now and the monthly
// activity, months taken in loc (UTC when nil). from and to ("YYYY-MM", ""
// for open) bound the activity months, both included; the outstanding figures
// are always the whole ledger. Both parts are read in one snapshot. Sums are
// taken as numeric, so a total that does not fit int64 is an error rather than
// a wrapped number.
func (s *Service) Liability(ctx context.Context, loc *time.Location, from, to string) (Liability, error) {
	if loc == nil {
		loc = time.UTC
	}
	for _, p := range []struct{ name, v string }{{"from", from}, {"to", to}} {
		if p.v != "" && !monthPattern.MatchString(p.v) {
			return Liability{}, tally.Errorf(tally.EINVALID, "%s must be a month written YYYY-MM (e.g. 2026-01), not %q", p.name, clip(p.v))
		}
	}
	// Fixed-width YYYY-MM strings compare as the months do.
	if from != "" && to != "" && from > to {
		return Liability{}, tally.Errorf(tally.EINVALID, "from (%s) must not be after to (%s)", from, to)
	}
	rep := Liability{AsOf: s.now(), Timezone: loc.String(), ByExpiry: []ExpiryBucket{}, Activity: []MonthActivity{}}

	tx, err := s.pool.BeginTx(ctx, pgxTxRepeatableRead)
	if err != nil {
		return Liability{}, fmt.Errorf("liability report: %w", err)
	}
	defer tx.Rollback(ctx)
	// The queries below use the zone only on rows they find: try it first, so
	// an unknown one fails on an empty ledger too.
	if _, err := tx.Exec(ctx, "SELECT now() AT TIME ZONE $1", loc.String()); err != nil {
		return Liability{}, liabilityErr("time zone", loc, err)
	}

	// Lots: one pass over the unspent ones (pending and active), grouped into
	// pending, overdue, never-expiring and one group per month of expiry.
	rows, err := tx.Query(ctx, `SELECT kind, to_char(month, 'YYYY-MM'), points::text,
			coalesce(sum(points) FILTER (WHERE kind <> 'pending') OVER (), 0)::text FROM (
			SELECT CASE WHEN state = 'pending' THEN 'pending'
			            WHEN expires_at IS NULL THEN 'never'
			            WHEN expires_at <= $2 THEN 'overdue'
			            ELSE 'month' END AS kind,
			       CASE WHEN state = 'active' AND expires_at > $2
			            THEN date_trunc('month', expires_at AT TIME ZONE $1) END AS month,
			       sum(remaining) AS points
			FROM lots WHERE state IN ('pending', 'active')
			GROUP BY 1, 2) g
		ORDER BY month NULLS LAST`, loc.String(), rep.AsOf)
	if err != nil {
		return Liability{}, liabilityErr("outstanding points", loc, err)
	}
	defer rows.Close()
	var never int64
	for rows.Next() {
		var kind, points, total string
		var month *string
		if err := rows.Scan(&kind, &month, &points, &total); err != nil {
			return Liability{}, liabilityErr("outstanding points", loc, err)
		}
		n, err := toPoints("outstanding "+kind+" points", points)
		if err != nil {
			return Liability{}, err
		}
		if rep.Outstanding, err = toPoints("outstanding points", total); err != nil {
			return Liability{}, err
		}
		switch kind {
		case "pending":
			rep.Pending = n
		case "never":
			never = n
		case "overdue":
			rep.Overdue = n
		default:
			if n != 0 {
				rep.ByExpiry = append(rep.ByExpiry, ExpiryBucket{Month: *month, Points: n})
			}
		}
	}
	if err := rows.Err(); err != nil {
		return Liability{}, liabilityErr("outstanding points", loc, err)
	}
	rep.ByExpiry = append(rep.ByExpiry, ExpiryBucket{Points: never})

	// Activity: the system accounts' postings by month of their transaction.
	// Postings have no time of their own, so each joins its transaction; the
	// range bounds are instants computed by PostgreSQL in the same zone as the
	// grouping, so a month is cut the same way in both.
	var fromArg, toArg *string
	if from != "" {
		fromArg = &from
	}
	if to != "" {
		toArg = &to
	}
	rows, err = tx.Query(ctx, `SELECT to_char(month, 'YYYY-MM'),
			coalesce(-sum(amount) FILTER (WHERE account = 'issued'), 0)::text,
			coalesce(sum(amount) FILTER (WHERE account = 'redeemed'), 0)::text,
			coalesce(sum(amount) FILTER (WHERE account = 'expired'), 0)::text,
			coalesce(-sum(amount) FILTER (WHERE account = 'adjustments'), 0)::text,
			coalesce(-sum(amount) FILTER (WHERE account = 'partners'), 0)::text
		FROM (
			SELECT date_trunc('month', t.created_at AT TIME ZONE $1) AS month, p.account, p.amount
			FROM postings p JOIN txns t ON t.id = p.txn_id
			WHERE p.account <> 'member'
			  AND ($2::text IS NULL OR t.created_at >= (($2::text || '-01')::timestamp AT TIME ZONE $1))
			  AND ($3::text IS NULL OR t.created_at < ((($3::text || '-01')::timestamp + interval '1 month') AT TIME ZONE $1))
		) x
		GROUP BY month ORDER BY month`, loc.String(), fromArg, toArg)
	if err != nil {
		return Liability{}, liabilityErr("monthly activity", loc, err)
	}
	defer rows.Close()
	for rows.Next() {
		var month string
		var cols [5]string
		if err := rows.Scan(&month, &cols[0], &cols[1], &cols[2], &cols[3], &cols[4]); err != nil {
			return Liability{}, liabilityErr("monthly activity", loc, err)
		}
		var n [5]int64
		for i, c := range cols {
			if n[i], err = toPoints("activity of "+month, c); err != nil {
				return Liability{}, err
			}
		}
		rep.Activity = append(rep.Activity, MonthActivity{Month: month, Issued: n[0], Spent: n[1], Expired: n[2], Adjustments: n[3], Partners: n[4]})
	}
	if err := rows.Err(); err != nil {
		return Liability{}, liabilityErr("monthly activity", loc, err)
	}
	return rep, nil
}

// liabilityErr wraps a failed read; an unknown zone gets a message naming it.
func liabilityErr(what string, loc *time.Location, err error) error {
	if sqlState(err) == stateInvalidParameter {
		return fmt.Errorf("liability report: %s: PostgreSQL does not know the time zone %q: %w", what, loc.String(), err)
	}
	return fmt.Errorf("liability report: %s: %w", what, err)
}

// stateInvalidParameter is what PostgreSQL raises for an unknown time zone.
const stateInvalidParameter = "22023"

// toPoints reads a numeric sum, refusing one that does not fit int64.
func toPoints(what, v string) (int64, error) {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("liability report: %s: total %s does not fit a 64-bit integer", what, v)
	}
	return n, nil
}
