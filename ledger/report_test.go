package ledger_test

import (
	"context"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tally-loyalty/tally"
	"github.com/tally-loyalty/tally/ledger"
	"github.com/tally-loyalty/tally/tallytest"
)

var berlin = mustZone("Europe/Berlin")

func mustZone(name string) *time.Location {
	loc, err := time.LoadLocation(name)
	if err != nil {
		panic(err)
	}
	return loc
}

func at(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

// reportFixture writes a ledger whose months differ between UTC and
// Europe/Berlin, and returns the transaction id of the lot that ends up overdue.
//
//	2026-01-15T10:00Z telegram:2 +50, expires 2027-01-10T00:00Z
//	2026-01-31T23:30Z telegram:1 +100, never expires (February in Berlin)
//	2026-02-28T23:00Z telegram:4 +40, never expires (March 1st 00:00 in Berlin)
//	2026-03-10T12:00Z telegram:1 +200, expires 2026-12-31T23:30Z (January 2027 in Berlin)
//	2026-03-10T12:00Z telegram:3 +30, expires an hour later (overdue, no sweep)
//	2026-03-20T12:00Z telegram:1 −120 (from the +200, the sooner to expire)
//	2026-03-20T12:00Z telegram:2 +25, expires 2026-06-15T12:00Z
//	as of 2026-04-01T09:00Z
func reportFixture(t *testing.T, l *ledger.Service, clock *tallytest.Clock) int64 {
	t.Helper()
	clock.Set(at("2026-01-15T10:00:00Z"))
	mustAward(t, l, "telegram:2", 50, "a", tallytest.Ptr(at("2027-01-10T00:00:00Z")))
	clock.Set(at("2026-01-31T23:30:00Z"))
	mustAward(t, l, "telegram:1", 100, "b", nil)
	clock.Set(at("2026-02-28T23:00:00Z"))
	mustAward(t, l, "telegram:4", 40, "c", nil)
	clock.Set(at("2026-03-10T12:00:00Z"))
	mustAward(t, l, "telegram:1", 200, "d", tallytest.Ptr(at("2026-12-31T23:30:00Z")))
	overdue := mustAward(t, l, "telegram:3", 30, "e", tallytest.Ptr(at("2026-03-10T13:00:00Z")))
	clock.Set(at("2026-03-20T12:00:00Z"))
	if _, err := l.Deduct(context.Background(), ledger.Deduction{Member: ref(t, "telegram:1"), Points: 120, Key: "f"}); err != nil {
		t.Fatal(err)
	}
	mustAward(t, l, "telegram:2", 25, "g", tallytest.Ptr(at("2026-06-15T12:00:00Z")))
	clock.Set(at("2026-04-01T09:00:00Z"))
	return overdue.TxnID
}

func liability(t *testing.T, l *ledger.Service, loc *time.Location, from, to string) ledger.Liability {
	t.Helper()
	rep, err := l.Liability(context.Background(), loc, from, to)
	if err != nil {
		t.Fatalf("liability %s..%s: %v", from, to, err)
	}
	return rep
}

func TestLiability_OutstandingByExpiryAndMonthlyActivityInProgrammeZone(t *testing.T) {
	l, clock, _ := newLedger(t)
	reportFixture(t, l, clock)

	got := liability(t, l, berlin, "", "")
	want := ledger.Liability{
		AsOf: at("2026-04-01T09:00:00Z"), Timezone: "Europe/Berlin",
		Outstanding: 325, Pending: 0, Overdue: 30,
		ByExpiry: []ledger.ExpiryBucket{{Month: "2026-06", Points: 25}, {Month: "2027-01", Points: 130}, {Month: "", Points: 140}},
		Activity: []ledger.MonthActivity{
			{Month: "2026-01", Issued: 50},
			{Month: "2026-02", Issued: 100},
			{Month: "2026-03", Issued: 295, Spent: 120},
		},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Berlin:\n got %+v\nwant %+v", got, want)
	}

	// The same ledger cut in UTC: the 23:30 and 23:00 transactions and the
	// New Year's Eve expiry fall in the earlier month.
	got = liability(t, l, nil, "", "")
	want.Timezone = "UTC"
	want.ByExpiry = []ledger.ExpiryBucket{{Month: "2026-06", Points: 25}, {Month: "2026-12", Points: 80}, {Month: "2027-01", Points: 50}, {Month: "", Points: 140}}
	want.Activity = []ledger.MonthActivity{
		{Month: "2026-01", Issued: 150},
		{Month: "2026-02", Issued: 40},
		{Month: "2026-03", Issued: 255, Spent: 120},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("UTC:\n got %+v\nwant %+v", got, want)
	}
	mustCheck(t, l)
}

func TestLiability_FromToBoundMonthsInProgrammeZone(t *testing.T) {
	l, clock, _ := newLedger(t)
	reportFixture(t, l, clock)
	months := func(rep ledger.Liability) string {
		var m []string
		for _, a := range rep.Activity {
			m = append(m, a.Month)
		}
		return strings.Join(m, " ")
	}
	for _, c := range []struct {
		loc      *time.Location
		from, to string
		want     string
	}{
		{berlin, "2026-02", "2026-02", "2026-02"},
		{berlin, "2026-02", "", "2026-02 2026-03"},
		{berlin, "", "2026-01", "2026-01"},
		{berlin, "2026-04", "", ""},
		{berlin, "2025-01", "2030-12", "2026-01 2026-02 2026-03"},
		{time.UTC, "2026-02", "2026-02", "2026-02"},
		{time.UTC, "", "2026-01", "2026-01"},
	} {
		rep := liability(t, l, c.loc, c.from, c.to)
		if got := months(rep); got != c.want {
			t.Errorf("%s %s..%s: months %q, want %q", c.loc, c.from, c.to, got, c.want)
		}
		// The outstanding side is the whole ledger whatever the range.
		if rep.Outstanding != 325 || rep.Overdue != 30 {
			t.Errorf("%s %s..%s: outstanding %d, overdue %d", c.loc, c.from, c.to, rep.Outstanding, rep.Overdue)
		}
	}
	// The transaction at 2026-02-28T23:00Z is March 1st, 00:00 in Berlin: the
	// first instant of March belongs to March and not to February.
	if rep := liability(t, l, berlin, "2026-03", "2026-03"); len(rep.Activity) != 1 || rep.Activity[0].Issued != 295 {
		t.Fatalf("March in Berlin: %+v", rep.Activity)
	}
	if rep := liability(t, l, berlin, "2026-02", "2026-02"); len(rep.Activity) != 1 || rep.Activity[0].Issued != 100 {
		t.Fatalf("February in Berlin: %+v", rep.Activity)
	}
}

func TestLiability_InvalidRange(t *testing.T) {
	l, _, _ := newLedger(t)
	for _, c := range []struct{ from, to, msg string }{
		{"2026-1", "", "from must be a month written YYYY-MM"},
		{"2026-13", "", "from must be"},
		{"2026-00", "", "from must be"},
		{"26-01", "", "from must be"},
		{"2026-01-01", "", "from must be"},
		{"0999-12", "", "from must be"},
		{" 2026-01", "", "from must be"},
		{"", "2026/01", "to must be a month written YYYY-MM"},
		{"", "January", "to must be"},
		{"2026-03", "2026-01", "from (2026-03) must not be after to (2026-01)"},
	} {
		_, err := l.Liability(context.Background(), berlin, c.from, c.to)
		if tally.ErrorCode(err) != tally.EINVALID || !strings.Contains(tally.ErrorMessage(err), c.msg) {
			t.Errorf("from %q to %q: %v, want invalid %q", c.from, c.to, err, c.msg)
		}
	}
}

// expireLot does what an expiry sweep does to a lot: a transaction that moves
// the lot's remaining points from the member to the expired account.
func expireLot(t *testing.T, pool *pgxpool.Pool, txn int64, now time.Time) {
	t.Helper()
	_, err := pool.Exec(context.Background(), `WITH l AS (SELECT id, member_id, remaining FROM lots WHERE txn_id = $1),
		t AS (INSERT INTO txns (member_id, kind, points, reason, idempotency_key, fingerprint, balance_after, created_at)
		      SELECT member_id, 'expiry', -remaining, '', 'test:expire:' || id, sha256(id::text::bytea), 0, $2 FROM l
		      RETURNING id, member_id, points),
		p AS (INSERT INTO postings (txn_id, account, member_id, amount)
		      SELECT t.id, a.account, t.member_id, CASE a.account WHEN 'member' THEN t.points ELSE -t.points END
		      FROM t CROSS JOIN (VALUES ('member'), ('expired')) AS a(account)),
		c AS (INSERT INTO lot_consumptions (txn_id, lot_id, member_id, amount) SELECT t.id, l.id, l.member_id, l.remaining FROM t, l),
		u AS (UPDATE lots SET remaining = 0, state = 'expired' WHERE id IN (SELECT id FROM l))
		UPDATE members m SET balance = m.balance - l.remaining FROM l WHERE m.id = l.member_id`, txn, now)
	if err != nil {
		t.Fatal(err)
	}
}

// adjust credits points to a member through the adjustments account, as a
// correction would.
func adjust(t *testing.T, pool *pgxpool.Pool, member, points int64, now time.Time) {
	t.Helper()
	_, err := pool.Exec(context.Background(), `WITH t AS (
		      INSERT INTO txns (member_id, kind, points, reason, idempotency_key, fingerprint, balance_after, created_at)
		      VALUES ($1, 'adjustment', $2, '', 'test:adjust', sha256('adjust'::bytea), 0, $3) RETURNING id),
		p AS (INSERT INTO postings (txn_id, account, member_id, amount)
		      SELECT t.id, a.account, $1, a.amount FROM t CROSS JOIN (VALUES ('member', $2::bigint), ('adjustments', -$2::bigint)) AS a(account, amount)),
		l AS (INSERT INTO lots (member_id, txn_id, amount, remaining, earned_at) SELECT $1, t.id, $2, $2, $3 FROM t)
		UPDATE members SET balance = balance + $2 WHERE id = $1`, member, points, now)
	if err != nil {
		t.Fatal(err)
	}
}

func TestLiability_ExpiredAndAdjustedPointsReconcile(t *testing.T) {
	l, clock, pool := newLedger(t)
	overdueTxn := reportFixture(t, l, clock)
	clock.Set(at("2026-04-02T08:00:00Z"))
	expireLot(t, pool, overdueTxn, clock.Now())
	tg4, err := l.Resolve(context.Background(), ref(t, "telegram:4"))
	if err != nil {
		t.Fatal(err)
	}
	adjust(t, pool, tg4, 7, clock.Now())
	mustCheck(t, l)

	rep := liability(t, l, berlin, "", "")
	if rep.Overdue != 0 || rep.Outstanding != 302 || rep.ByExpiry[len(rep.ByExpiry)-1] != (ledger.ExpiryBucket{Points: 147}) {
		t.Fatalf("outstanding after the sweep: %+v", rep)
	}
	april := rep.Activity[len(rep.Activity)-1]
	if april != (ledger.MonthActivity{Month: "2026-04", Expired: 30, Adjustments: 7}) {
		t.Fatalf("April: %+v", april)
	}
	// Every point outstanding came in and not yet out through a system account.
	var net int64
	for _, a := range rep.Activity {
		net += a.Issued - a.Spent - a.Expired + a.Adjustments + a.Partners
	}
	if net != rep.Outstanding {
		t.Fatalf("activity nets %d, outstanding %d", net, rep.Outstanding)
	}
	if r := mustCheck(t, l); r.Outstanding.Int64() != rep.Outstanding {
		t.Fatalf("Check says %s outstanding, the report %d", r.Outstanding, rep.Outstanding)
	}

	// Pending lots are counted apart, not in the total nor in a month.
	if _, err := pool.Exec(context.Background(), "UPDATE lots SET state = 'pending' WHERE expires_at = '2026-06-15T12:00:00Z'"); err != nil {
		t.Fatal(err)
	}
	rep = liability(t, l, berlin, "", "")
	want := []ledger.ExpiryBucket{{Month: "2027-01", Points: 130}, {Month: "", Points: 147}}
	if rep.Pending != 25 || rep.Outstanding != 277 || !reflect.DeepEqual(rep.ByExpiry, want) {
		t.Fatalf("with a pending lot: %+v", rep)
	}
}

func TestLiability_EmptyLedger(t *testing.T) {
	l, _, _ := newLedger(t)
	rep := liability(t, l, berlin, "", "")
	if rep.Outstanding != 0 || len(rep.Activity) != 0 || !reflect.DeepEqual(rep.ByExpiry, []ledger.ExpiryBucket{{}}) {
		t.Fatalf("empty ledger: %+v", rep)
	}
}

// TestLiability_TotalBeyondInt64IsAnError: 1025 members at the largest
// balance hold more than an int64 counts; the report refuses rather than wrap.
func TestLiability_TotalBeyondInt64IsAnError(t *testing.T) {
	l, _, _ := newLedger(t)
	awardMax(t, l, 1025)
	_, err := l.Liability(context.Background(), berlin, "", "")
	if err == nil || tally.ErrorCode(err) != tally.EINTERNAL || !strings.Contains(err.Error(), "does not fit a 64-bit integer") {
		t.Fatalf("liability over 2^63: %v", err)
	}
}

// awardMax gives n members ledger.MaxPoints each.
func awardMax(t *testing.T, l *ledger.Service, n int) {
	t.Helper()
	var batch []ledger.Award
	flush := func() {
		if _, err := l.AwardBatch(context.Background(), batch); err != nil {
			t.Fatal(err)
		}
		batch = batch[:0]
	}
	for i := 1; i <= n; i++ {
		batch = append(batch, ledger.Award{Member: ledger.MemberRef{Platform: "telegram", UserID: strconv.Itoa(i)}, Points: ledger.MaxPoints, Key: "max-" + strconv.Itoa(i)})
		if len(batch) == ledger.MaxBatch {
			flush()
		}
	}
	if len(batch) > 0 {
		flush()
	}
}

func TestLiability_ZoneUnknownToPostgresIsAnError(t *testing.T) {
	l, _, _ := newLedger(t)
	_, err := l.Liability(context.Background(), time.FixedZone("Nowhere/Special", 3600), "", "")
	if err == nil || !strings.Contains(err.Error(), `PostgreSQL does not know the time zone "Nowhere/Special"`) {
		t.Fatalf("unknown zone: %v", err)
	}
}
