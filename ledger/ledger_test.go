package ledger_test

import (
	"context"
	"fmt"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tally-loyalty/tally"
	"github.com/tally-loyalty/tally/ledger"
	"github.com/tally-loyalty/tally/tallytest"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func newLedger(t *testing.T) (*ledger.Service, *tallytest.Clock, *pgxpool.Pool) {
	t.Helper()
	t.Parallel()
	pool := tallytest.DB(t)
	clock := tallytest.NewClock(t0)
	return ledger.New(pool, clock), clock, pool
}

func ref(t *testing.T, s string) ledger.MemberRef {
	t.Helper()
	r, err := ledger.ParseMemberRef(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func mustAward(t *testing.T, l *ledger.Service, member string, points int64, key string, expires *time.Time) ledger.Result {
	t.Helper()
	res, err := l.Award(context.Background(), ledger.Award{Member: ref(t, member), Points: points, Reason: "test", Key: key, ExpiresAt: expires})
	if err != nil {
		t.Fatalf("award %s %d: %v", member, points, err)
	}
	return res
}

func available(t *testing.T, l *ledger.Service, member string) int64 {
	t.Helper()
	_, b, err := l.Member(context.Background(), ref(t, member))
	if err != nil {
		t.Fatal(err)
	}
	return b.Available
}

// mustCheck fails the test when any invariant is broken.
func mustCheck(t *testing.T, l *ledger.Service) ledger.Report {
	t.Helper()
	r, err := l.Check(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range r.Violations {
		t.Errorf("invariant %d: %s", v.Invariant, v.Detail)
	}
	return r
}

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	if got := tally.ErrorCode(err); got != code {
		t.Fatalf("error %v: code %q, want %q", err, got, code)
	}
}

func TestParseMemberRef(t *testing.T) {
	t.Parallel()
	good := map[string]ledger.MemberRef{
		"17":                           {ID: 17},
		"telegram:42":                  {Platform: "telegram", UserID: "42"},
		"discord:80351110224678912":    {Platform: "discord", UserID: "80351110224678912"},
		"console:1":                    {Platform: "console", UserID: "1"},
		"discord:12345678901234567890": {Platform: "discord", UserID: "12345678901234567890"},
	}
	for in, want := range good {
		got, err := ledger.ParseMemberRef(in)
		if err != nil || got != want {
			t.Errorf("ParseMemberRef(%q) = %+v, %v; want %+v", in, got, err, want)
		}
		if got.String() != in {
			t.Errorf("String() = %q, want %q", got.String(), in)
		}
	}
	for _, in := range []string{"", "0", "-3", "+3", "1.5", "abc", "telegram:", "telegram:abc", "telegram:-1",
		"slack:42", ":42", "telegram:123456789012345678901", "99999999999999999999999", "telegram:4 2", "telegram:42:1",
		"telegram:042", "017", "discord:0"} {
		if _, err := ledger.ParseMemberRef(in); tally.ErrorCode(err) != tally.EINVALID {
			t.Errorf("ParseMemberRef(%q) = %v, want invalid", in, err)
		}
	}
}

func TestAward_CreatesMemberOnFirstAwardAndReplays(t *testing.T) {
	l, _, _ := newLedger(t)
	ctx := context.Background()
	if _, _, err := l.Member(ctx, ref(t, "telegram:42")); tally.ErrorCode(err) != tally.ENOTFOUND {
		t.Fatalf("unknown member: %v, want not_found", err)
	}
	first := mustAward(t, l, "telegram:42", 100, "k1", nil)
	if first.Replayed || first.Balance != 100 || first.Points != 100 || first.TxnID == 0 {
		t.Fatalf("first award = %+v", first)
	}
	again := mustAward(t, l, "telegram:42", 100, "k1", nil)
	if !again.Replayed || again.TxnID != first.TxnID || again.Balance != 100 || !again.CreatedAt.Equal(first.CreatedAt) {
		t.Fatalf("replay = %+v, want the original %+v", again, first)
	}
	second := mustAward(t, l, fmt.Sprint(first.MemberID), 50, "k2", nil) // by internal id
	if second.Balance != 150 || second.MemberID != first.MemberID {
		t.Fatalf("second award = %+v", second)
	}
	m, b, err := l.Member(ctx, ref(t, "telegram:42"))
	if err != nil {
		t.Fatal(err)
	}
	if b.Available != 150 || b.Pending != 0 || len(m.Identities) != 1 || m.Identities[0] != "telegram:42" {
		t.Fatalf("member = %+v %+v", m, b)
	}
	r := mustCheck(t, l)
	if r.Transactions != 2 || r.Outstanding.Int64() != 150 || r.System["issued"].Int64() != -150 {
		t.Fatalf("report = %+v", r)
	}
}

func TestAward_SameKeyOtherParametersConflicts(t *testing.T) {
	l, _, _ := newLedger(t)
	ctx := context.Background()
	mustAward(t, l, "telegram:1", 100, "k", nil)
	mustAward(t, l, "telegram:2", 5, "other", nil)
	cases := []ledger.Award{
		{Member: ref(t, "telegram:1"), Points: 101, Reason: "test", Key: "k"},
		{Member: ref(t, "telegram:1"), Points: 100, Reason: "other reason", Key: "k"},
		{Member: ref(t, "telegram:2"), Points: 100, Reason: "test", Key: "k"},
		{Member: ref(t, "telegram:3"), Points: 100, Reason: "test", Key: "k"}, // a new member
		{Member: ref(t, "telegram:1"), Points: 100, Reason: "test", Key: "k", ExpiresAt: tallytest.Ptr(t0.Add(time.Hour))},
	}
	for i, a := range cases {
		_, err := l.Award(ctx, a)
		if tally.ErrorCode(err) != tally.ECONFLICT {
			t.Errorf("case %d: %v, want idempotency_conflict", i, err)
		}
	}
	if _, err := l.Deduct(ctx, ledger.Deduction{Member: ref(t, "telegram:1"), Points: 100, Reason: "test", Key: "k"}); tally.ErrorCode(err) != tally.ECONFLICT {
		t.Errorf("deduction with an award's key: %v, want idempotency_conflict", err)
	}
	if _, _, err := l.Member(ctx, ref(t, "telegram:3")); tally.ErrorCode(err) != tally.ENOTFOUND {
		t.Errorf("a conflicting award created member telegram:3: %v", err)
	}
	if got := available(t, l, "telegram:1"); got != 100 {
		t.Errorf("balance %d after conflicts, want 100", got)
	}
	mustCheck(t, l)
}

func TestAward_RefusesBadInputAndChangesNothing(t *testing.T) {
	l, _, _ := newLedger(t)
	ctx := context.Background()
	mustAward(t, l, "telegram:1", 10, "seed", nil)
	cases := map[string]ledger.Award{
		"zero points":      {Member: ref(t, "telegram:1"), Points: 0, Key: "a"},
		"negative points":  {Member: ref(t, "telegram:1"), Points: -5, Key: "a"},
		"points over 2^53": {Member: ref(t, "telegram:1"), Points: ledger.MaxPoints + 1, Key: "a"},
		"no key":           {Member: ref(t, "telegram:1"), Points: 5},
		"key too long":     {Member: ref(t, "telegram:1"), Points: 5, Key: strings.Repeat("k", 256)},
		"reason too long":  {Member: ref(t, "telegram:1"), Points: 5, Key: "a", Reason: strings.Repeat("r", 501)},
		"reason not utf8":  {Member: ref(t, "telegram:1"), Points: 5, Key: "a", Reason: "\xff"},
		"expiry in past":   {Member: ref(t, "telegram:1"), Points: 5, Key: "a", ExpiresAt: tallytest.Ptr(t0.Add(-time.Second))},
		"expiry now":       {Member: ref(t, "telegram:1"), Points: 5, Key: "a", ExpiresAt: tallytest.Ptr(t0)},
		"new member, bad":  {Member: ref(t, "telegram:9"), Points: 0, Key: "a"},
		"no member":        {Points: 5, Key: "a"},
	}
	for name, a := range cases {
		if _, err := l.Award(ctx, a); tally.ErrorCode(err) != tally.EINVALID {
			t.Errorf("%s: %v, want invalid", name, err)
		}
	}
	if _, err := l.Award(ctx, ledger.Award{Member: ledger.MemberRef{ID: 999}, Points: 5, Key: "a"}); tally.ErrorCode(err) != tally.ENOTFOUND {
		t.Errorf("unknown internal id: %v, want not_found", err)
	}
	r := mustCheck(t, l)
	if r.Members != 1 || r.Transactions != 1 || r.Outstanding.Int64() != 10 {
		t.Fatalf("bad input changed the ledger: %+v", r)
	}
}

func TestAward_BalanceAboveJSONSafeLimitIsRefused(t *testing.T) {
	l, _, _ := newLedger(t)
	ctx := context.Background()
	mustAward(t, l, "telegram:7", ledger.MaxPoints-1, "a", nil)
	mustAward(t, l, "telegram:7", 1, "b", nil)
	_, err := l.Award(ctx, ledger.Award{Member: ref(t, "telegram:7"), Points: 1, Key: "c"})
	wantCode(t, err, tally.EINVALID)
	_, err = l.AwardBatch(ctx, []ledger.Award{
		{Member: ref(t, "telegram:8"), Points: ledger.MaxPoints, Key: "d"},
		{Member: ref(t, "telegram:8"), Points: 1, Key: "e"},
	})
	wantCode(t, err, tally.EINVALID)
	if got := available(t, l, "telegram:7"); got != ledger.MaxPoints {
		t.Fatalf("balance %d, want %d", got, int64(ledger.MaxPoints))
	}
	r := mustCheck(t, l)
	if r.Transactions != 2 {
		t.Fatalf("%d transactions, want 2", r.Transactions)
	}
}

// TestCheck_TotalsBeyondInt64: members together may hold more than int64.
func TestCheck_TotalsBeyondInt64(t *testing.T) {
	l, _, _ := newLedger(t)
	ctx := context.Background()
	for b := range 2 {
		var items []ledger.Award
		for i := range 600 {
			items = append(items, ledger.Award{Member: ref(t, fmt.Sprintf("discord:%d", b*1000+i+1)), Points: ledger.MaxPoints, Key: fmt.Sprint(b, "-", i)})
		}
		if _, err := l.AwardBatch(ctx, items); err != nil {
			t.Fatal(err)
		}
	}
	r := mustCheck(t, l)
	want := new(big.Int).Mul(big.NewInt(1200), big.NewInt(ledger.MaxPoints))
	if r.Outstanding.Cmp(want) != 0 || r.Outstanding.IsInt64() {
		t.Fatalf("outstanding %s, want %s", r.Outstanding, want)
	}
}

func TestDeduct_InsufficientLeavesKeyFreeForRetry(t *testing.T) {
	l, _, _ := newLedger(t)
	ctx := context.Background()
	mustAward(t, l, "discord:5", 100, "a1", nil)
	d := ledger.Deduction{Member: ref(t, "discord:5"), Points: 150, Reason: "mug", Key: "d1"}
	_, err := l.Deduct(ctx, d)
	wantCode(t, err, tally.EINSUFFICIENT)
	if !strings.Contains(tally.ErrorMessage(err), "100") {
		t.Errorf("message %q should say what is available", tally.ErrorMessage(err))
	}
	if got := available(t, l, "discord:5"); got != 100 {
		t.Fatalf("refused deduction changed the balance to %d", got)
	}
	mustAward(t, l, "discord:5", 60, "a2", nil)
	res, err := l.Deduct(ctx, d)
	if err != nil || res.Balance != 10 || res.Replayed {
		t.Fatalf("retry after top-up = %+v, %v", res, err)
	}
	again, err := l.Deduct(ctx, d)
	if err != nil || !again.Replayed || again.TxnID != res.TxnID || again.Balance != 10 {
		t.Fatalf("replay = %+v, %v", again, err)
	}
	// Replaying still answers the original even when the balance is short now.
	mustAward(t, l, "discord:5", 1, "a3", nil)
	if again, err := l.Deduct(ctx, d); err != nil || !again.Replayed {
		t.Fatalf("replay with a short balance = %+v, %v", again, err)
	}
	if got := available(t, l, "discord:5"); got != 11 {
		t.Fatalf("balance %d, want 11", got)
	}
	mustCheck(t, l)
}

func TestDeduct_RefusesBadInput(t *testing.T) {
	l, _, _ := newLedger(t)
	ctx := context.Background()
	mustAward(t, l, "telegram:1", 10, "seed", nil)
	for name, c := range map[string]struct {
		d    ledger.Deduction
		code string
	}{
		"unknown identity":  {ledger.Deduction{Member: ref(t, "telegram:2"), Points: 1, Key: "x"}, tally.ENOTFOUND},
		"unknown id":        {ledger.Deduction{Member: ledger.MemberRef{ID: 77}, Points: 1, Key: "x"}, tally.ENOTFOUND},
		"zero":              {ledger.Deduction{Member: ref(t, "telegram:1"), Points: 0, Key: "x"}, tally.EINVALID},
		"huge":              {ledger.Deduction{Member: ref(t, "telegram:1"), Points: 1 << 62, Key: "x"}, tally.EINVALID},
		"no key":            {ledger.Deduction{Member: ref(t, "telegram:1"), Points: 1}, tally.EINVALID},
		"more than balance": {ledger.Deduction{Member: ref(t, "telegram:1"), Points: 11, Key: "x"}, tally.EINSUFFICIENT},
	} {
		_, err := l.Deduct(ctx, c.d)
		if tally.ErrorCode(err) != c.code {
			t.Errorf("%s: %v, want %s", name, err, c.code)
		}
	}
	if r := mustCheck(t, l); r.Members != 1 || r.Transactions != 1 {
		t.Fatalf("refusals changed the ledger: %+v", r)
	}
}

func TestSpend_ConsumesSoonestExpiringLotFirst(t *testing.T) {
	l, clock, pool := newLedger(t)
	ctx := context.Background()
	m := "telegram:3"
	never := mustAward(t, l, m, 100, "never", nil) // no expiry: spent last
	clock.Advance(time.Minute)
	late := mustAward(t, l, m, 100, "late", tallytest.Ptr(t0.Add(90*24*time.Hour))) // expires in 90 days
	clock.Advance(time.Minute)
	soon := mustAward(t, l, m, 100, "soon", tallytest.Ptr(t0.Add(10*24*time.Hour))) // expires first
	clock.Advance(time.Minute)
	neverToo := mustAward(t, l, m, 100, "never2", nil) // no expiry, newer than "never"

	remaining := func() map[int64]int64 {
		rows, err := pool.Query(ctx, "SELECT txn_id, remaining FROM lots")
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		out := map[int64]int64{}
		for rows.Next() {
			var id, r int64
			rows.Scan(&id, &r)
			out[id] = r
		}
		return out
	}
	steps := []struct {
		spend int64
		want  map[int64]int64
	}{
		{150, map[int64]int64{soon.TxnID: 0, late.TxnID: 50, never.TxnID: 100, neverToo.TxnID: 100}},
		{80, map[int64]int64{soon.TxnID: 0, late.TxnID: 0, never.TxnID: 70, neverToo.TxnID: 100}},
		{100, map[int64]int64{soon.TxnID: 0, late.TxnID: 0, never.TxnID: 0, neverToo.TxnID: 70}},
	}
	for i, s := range steps {
		if _, err := l.Deduct(ctx, ledger.Deduction{Member: ref(t, m), Points: s.spend, Key: fmt.Sprint("d", i)}); err != nil {
			t.Fatal(err)
		}
		got := remaining()
		for id, want := range s.want {
			if got[id] != want {
				t.Fatalf("after spending %d: lot of txn %d has %d, want %d (all: %v)", s.spend, id, got[id], want, got)
			}
		}
	}
	mustCheck(t, l)
}

func TestBalance_LeavesOutExpiredLots(t *testing.T) {
	l, clock, _ := newLedger(t)
	ctx := context.Background()
	m := "discord:9"
	mustAward(t, l, m, 100, "a", tallytest.Ptr(t0.Add(time.Hour)))
	mustAward(t, l, m, 30, "b", nil)
	if got := available(t, l, m); got != 130 {
		t.Fatalf("available %d, want 130", got)
	}
	clock.Advance(time.Hour) // the first lot's expiry is reached
	if got := available(t, l, m); got != 30 {
		t.Fatalf("available after expiry %d, want 30", got)
	}
	_, err := l.Deduct(ctx, ledger.Deduction{Member: ref(t, m), Points: 31, Key: "d"})
	wantCode(t, err, tally.EINSUFFICIENT)
	res, err := l.Deduct(ctx, ledger.Deduction{Member: ref(t, m), Points: 30, Key: "d2"})
	if err != nil || res.Balance != 0 {
		t.Fatalf("deduct 30 = %+v, %v", res, err)
	}
	if res := mustAward(t, l, m, 5, "c", nil); res.Balance != 5 {
		t.Fatalf("award after expiry reports balance %d, want 5", res.Balance)
	}
	mustCheck(t, l)
}

func TestHistory_NewestFirstWithKeysetPages(t *testing.T) {
	l, clock, _ := newLedger(t)
	ctx := context.Background()
	m := "telegram:8"
	exp := t0.Add(48 * time.Hour)
	for i := range 5 {
		mustAward(t, l, m, int64(10+i), fmt.Sprint("a", i), nil)
		clock.Advance(time.Second)
	}
	mustAward(t, l, m, 7, "promo", &exp)
	if _, err := l.Deduct(ctx, ledger.Deduction{Member: ref(t, m), Points: 20, Reason: "sticker", Key: "d"}); err != nil {
		t.Fatal(err)
	}
	page1, more, err := l.History(ctx, ref(t, m), 0, 3)
	if err != nil || !more {
		t.Fatal(more, err)
	}
	if len(page1) != 3 || page1[0].Kind != ledger.KindDeduction || page1[0].Points != -20 || page1[0].Reason != "sticker" {
		t.Fatalf("page 1 = %+v", page1)
	}
	if page1[1].Points != 7 || page1[1].ExpiresAt == nil || !page1[1].ExpiresAt.Equal(exp) {
		t.Fatalf("promo entry = %+v", page1[1])
	}
	page2, more, err := l.History(ctx, ref(t, m), page1[2].TxnID, 3)
	if err != nil || !more {
		t.Fatal(more, err)
	}
	page3, more, err := l.History(ctx, ref(t, m), page2[2].TxnID, 3)
	if err != nil || more {
		t.Fatal(more, err)
	}
	var all []ledger.Entry
	all = append(append(append(all, page1...), page2...), page3...)
	if len(all) != 7 {
		t.Fatalf("%d entries over three pages, want 7", len(all))
	}
	for i := 1; i < len(all); i++ {
		if all[i].TxnID >= all[i-1].TxnID {
			t.Fatalf("not newest first: %+v", all)
		}
	}
	if _, _, err := l.History(ctx, ref(t, "telegram:404"), 0, 10); tally.ErrorCode(err) != tally.ENOTFOUND {
		t.Fatalf("history of unknown member: %v", err)
	}
	for _, lim := range []int{0, -1, ledger.MaxHistory + 1} {
		if _, _, err := l.History(ctx, ref(t, m), 0, lim); tally.ErrorCode(err) != tally.EINVALID {
			t.Fatalf("limit %d: %v", lim, err)
		}
	}
}

func TestAwardBatch_PerItemOutcomes(t *testing.T) {
	l, _, _ := newLedger(t)
	ctx := context.Background()
	mustAward(t, l, "telegram:1", 10, "old", nil)
	items := []ledger.Award{
		{Member: ref(t, "telegram:1"), Points: 5, Key: "b1"},
		{Member: ref(t, "telegram:2"), Points: 7, Key: "b2"},                   // new member
		{Member: ref(t, "telegram:1"), Points: 3, Key: "b3"},                   // same member again
		{Member: ref(t, "telegram:1"), Points: 10, Reason: "test", Key: "old"}, // replay
		{Member: ref(t, "telegram:1"), Points: 11, Key: "old2"},
		{Member: ledger.MemberRef{ID: 9999}, Points: 1, Key: "b4"}, // unknown id
	}
	// make "old2" a conflict: used before with other parameters
	mustAward(t, l, "telegram:2", 1, "old2", nil)
	out, err := l.AwardBatch(ctx, items)
	if err != nil {
		t.Fatal(err)
	}
	if out[0].Err != nil || out[0].Result.Balance != 15 || out[0].Result.Replayed {
		t.Errorf("item 0 = %+v", out[0])
	}
	if out[1].Err != nil || out[1].Result.Balance != 8 {
		t.Errorf("item 1 = %+v", out[1])
	}
	if out[2].Err != nil || out[2].Result.Balance != 18 {
		t.Errorf("item 2 = %+v (balances accumulate in item order)", out[2])
	}
	if out[3].Err != nil || !out[3].Result.Replayed || out[3].Result.Balance != 10 {
		t.Errorf("item 3 = %+v", out[3])
	}
	if tally.ErrorCode(out[4].Err) != tally.ECONFLICT {
		t.Errorf("item 4 = %+v", out[4])
	}
	if tally.ErrorCode(out[5].Err) != tally.ENOTFOUND {
		t.Errorf("item 5 = %+v", out[5])
	}
	again, err := l.AwardBatch(ctx, items)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if !again[i].Result.Replayed || again[i].Result.TxnID != out[i].Result.TxnID || again[i].Result.Balance != out[i].Result.Balance {
			t.Errorf("replayed item %d = %+v, want %+v", i, again[i], out[i])
		}
	}
	if got := available(t, l, "telegram:1"); got != 18 {
		t.Fatalf("balance %d, want 18", got)
	}
	mustCheck(t, l)
}

func TestAwardBatch_RefusesMalformedBatchWhole(t *testing.T) {
	l, _, _ := newLedger(t)
	ctx := context.Background()
	ok := ledger.Award{Member: ref(t, "telegram:1"), Points: 5, Key: "k1"}
	tooMany := make([]ledger.Award, ledger.MaxBatch+1)
	for i := range tooMany {
		tooMany[i] = ledger.Award{Member: ref(t, "telegram:1"), Points: 1, Key: fmt.Sprint(i)}
	}
	for name, items := range map[string][]ledger.Award{
		"empty":         nil,
		"too many":      tooMany,
		"duplicate key": {ok, ok},
		"bad points":    {ok, {Member: ref(t, "telegram:2"), Points: 0, Key: "k2"}},
	} {
		_, err := l.AwardBatch(ctx, items)
		if tally.ErrorCode(err) != tally.EINVALID {
			t.Errorf("%s: %v, want invalid", name, err)
		}
	}
	if r := mustCheck(t, l); r.Members != 0 || r.Transactions != 0 {
		t.Fatalf("malformed batches changed the ledger: %+v", r)
	}
}

func TestHistoryIsAppendOnly(t *testing.T) {
	l, _, pool := newLedger(t)
	ctx := context.Background()
	mustAward(t, l, "telegram:1", 10, "a", nil)
	for _, stmt := range []string{"UPDATE txns SET points = 11", "DELETE FROM postings", "DELETE FROM txns"} {
		if _, err := pool.Exec(ctx, stmt); err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Errorf("%s: %v, want refused", stmt, err)
		}
	}
}

func TestCheck_FindsBrokenInvariants(t *testing.T) {
	ctx := context.Background()
	cases := map[string]struct {
		sql       string
		invariant int
	}{
		"balance row drifts":             {"UPDATE members SET balance = balance + 1", 3},
		"unbalanced transaction":         {"INSERT INTO postings (txn_id, account, member_id, amount) SELECT id, 'adjustments', member_id, 5 FROM txns LIMIT 1", 2},
		"lot remainder drifts":           {"UPDATE lots SET remaining = remaining - 1", 3},
		"orphan posting":                 {"INSERT INTO postings (txn_id, account, member_id, amount) VALUES (9999, 'issued', 1, 1), (9999, 'member', 1, -1)", 2},
		"orphan lot":                     {"INSERT INTO lots (member_id, txn_id, amount, remaining, earned_at) VALUES (1, 9999, 1, 0, now())", 3},
		"transaction of nobody":          {"INSERT INTO txns (member_id, kind, points, idempotency_key, fingerprint, balance_after, created_at) VALUES (4242, 'award', 1, 'zz', '\\x00', 1, now())", 3},
		"trigger dropped":                {"DROP TRIGGER postings_append_only ON postings", 6},
		"consumption without lot change": {"INSERT INTO lot_consumptions SELECT (SELECT max(id) FROM txns), (SELECT min(id) FROM lots), (SELECT min(member_id) FROM lots), 1", 3},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			l, _, pool := newLedger(t)
			mustAward(t, l, "telegram:1", 10, "a", nil)
			mustAward(t, l, "telegram:1", 10, "b", tallytest.Ptr(t0.Add(time.Hour)))
			if _, err := l.Deduct(ctx, ledger.Deduction{Member: ref(t, "telegram:1"), Points: 3, Key: "d"}); err != nil {
				t.Fatal(err)
			}
			if r, _ := l.Check(ctx); !r.OK() {
				t.Fatalf("clean ledger: %+v", r.Violations)
			}
			if _, err := pool.Exec(ctx, c.sql); err != nil {
				t.Fatal(err)
			}
			r, err := l.Check(ctx)
			if err != nil {
				t.Fatal(err)
			}
			found := false
			for _, v := range r.Violations {
				found = found || v.Invariant == c.invariant
			}
			if !found {
				t.Fatalf("no violation of invariant %d found: %+v", c.invariant, r.Violations)
			}
		})
	}
}

func TestCheck_FindsSpendingOutOfFIFOOrder(t *testing.T) {
	l, clock, pool := newLedger(t)
	ctx := context.Background()
	mustAward(t, l, "telegram:1", 10, "late", nil)
	clock.Advance(time.Second)
	mustAward(t, l, "telegram:1", 10, "soon", tallytest.Ptr(t0.Add(time.Hour)))
	clock.Advance(time.Second)
	if _, err := l.Deduct(ctx, ledger.Deduction{Member: ref(t, "telegram:1"), Points: 4, Key: "d"}); err != nil {
		t.Fatal(err)
	}
	mustCheck(t, l)
	// Rewrite history as if the debit had taken from the lot without expiry.
	for _, stmt := range []string{
		"ALTER TABLE lot_consumptions DISABLE TRIGGER lot_consumptions_append_only",
		"UPDATE lot_consumptions SET lot_id = (SELECT l.id FROM lots l JOIN txns t ON t.id = l.txn_id WHERE t.idempotency_key = 'late')",
		"ALTER TABLE lot_consumptions ENABLE TRIGGER lot_consumptions_append_only",
		"UPDATE lots SET remaining = amount - coalesce((SELECT sum(amount) FROM lot_consumptions c WHERE c.lot_id = lots.id), 0)",
	} {
		if _, err := pool.Exec(ctx, stmt); err != nil {
			t.Fatal(err)
		}
	}
	r, err := l.Check(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Violations) != 1 || r.Violations[0].Invariant != 4 {
		t.Fatalf("violations = %+v, want one of invariant 4", r.Violations)
	}
}
