package ledger_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/tally-loyalty/tally/ledger"
	"github.com/tally-loyalty/tally/tallytest"
)

func TestExpireDue_MovesWhatIsLeftOfDueLotsOnce(t *testing.T) {
	l, clock, _ := newLedger(t)
	ctx := context.Background()
	soon, later := t0.Add(time.Hour), t0.Add(48*time.Hour)
	mustAward(t, l, "telegram:1", 100, "a", &soon)
	mustAward(t, l, "telegram:1", 50, "b", &later)
	mustAward(t, l, "telegram:1", 30, "c", nil)
	mustAward(t, l, "telegram:2", 40, "d", &soon)
	// Member 1 spends 60 before the expiry: soonest-expiring first, so 40 of
	// the first lot are left to expire. Member 2 spends all of theirs.
	if _, err := l.Deduct(ctx, ledger.Deduction{Member: ref(t, "telegram:1"), Points: 60, Key: "spend1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Deduct(ctx, ledger.Deduction{Member: ref(t, "telegram:2"), Points: 40, Key: "spend2"}); err != nil {
		t.Fatal(err)
	}
	if sw, err := l.ExpireDue(ctx); err != nil || len(sw.Lots) != 0 {
		t.Fatalf("before the expiry: %+v %v", sw, err)
	}
	clock.Set(soon)
	sw, err := l.ExpireDue(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(sw.Lots) != 1 || sw.Points != 40 || sw.Members != 1 || !sw.Lots[0].ExpiresAt.Equal(soon) {
		t.Fatalf("sweep %+v", sw)
	}
	if got := available(t, l, "telegram:1"); got != 80 {
		t.Fatalf("available %d, want 50 + 30", got)
	}
	for range 2 {
		if sw, err := l.ExpireDue(ctx); err != nil || len(sw.Lots) != 0 {
			t.Fatalf("a second sweep: %+v %v", sw, err)
		}
	}
	entries, _, err := l.History(ctx, ref(t, "telegram:1"), 0, 10)
	if err != nil || entries[0].Kind != ledger.KindExpiry || entries[0].Points != -40 {
		t.Fatalf("history %+v %v", entries, err)
	}
	mustCheck(t, l)
}

func TestExpireDue_ConcurrentSweepsAwardsAndSpending(t *testing.T) {
	l, clock, pool := newLedger(t)
	ctx := context.Background()
	due := t0.Add(time.Minute)
	const members = 40
	for i := range members {
		for j := range 5 {
			mustAward(t, l, fmt.Sprintf("telegram:%d", i+1), int64(10+j), fmt.Sprintf("seed-%d-%d", i, j), &due)
		}
		mustAward(t, l, fmt.Sprintf("telegram:%d", i+1), 100, fmt.Sprintf("keep-%d", i), nil)
	}
	clock.Set(due.Add(time.Second))
	var wg sync.WaitGroup
	var mu sync.Mutex
	var expired int64
	for w := range 3 { // three sweepers, as on three instances
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				sw, err := l.ExpireDue(ctx)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				expired += sw.Points
				mu.Unlock()
				if len(sw.Lots) == 0 {
					return
				}
			}
		}()
		wg.Add(1)
		go func() { // awards and spending on the same members meanwhile
			defer wg.Done()
			for i := range members {
				m := fmt.Sprintf("telegram:%d", i+1)
				mustAward(t, l, m, 7, fmt.Sprintf("during-%d-%d", w, i), nil)
				if _, err := l.Deduct(ctx, ledger.Deduction{Member: ref(t, m), Points: 3, Key: fmt.Sprintf("spend-%d-%d", w, i)}); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	// What the sweepers expired plus what spending took from due lots is
	// every due point, once.
	var left, expiredPosted int64
	if err := pool.QueryRow(ctx, "SELECT coalesce(sum(remaining), 0) FROM lots WHERE state = 'active' AND expires_at <= $1", clock.Now()).Scan(&left); err != nil {
		t.Fatal(err)
	}
	if err := pool.QueryRow(ctx, "SELECT coalesce(sum(amount), 0) FROM postings WHERE account = 'expired'").Scan(&expiredPosted); err != nil {
		t.Fatal(err)
	}
	// Spending after the expiry cannot touch due lots: all 40 × 60 expire.
	if left != 0 || expiredPosted != expired || expired != members*60 {
		t.Fatalf("%d due points left unexpired; expired account %d, sweeps reported %d", left, expiredPosted, expired)
	}
	mustCheck(t, l)
}

func TestExpiryPolicy_AfterEarnAndInactivity(t *testing.T) {
	t.Parallel()
	berlin, _ := time.LoadLocation("Europe/Berlin")
	// Months are added on the calendar; a day past a month's end is its last day.
	p := ledger.ExpiryPolicy{Policy: "after_earn", Months: 1, Location: berlin}
	if got := p.Expires(time.Date(2027, 1, 31, 10, 0, 0, 0, berlin)); !got.Equal(time.Date(2027, 2, 28, 10, 0, 0, 0, berlin)) {
		t.Fatalf("31 January + 1 month = %v", got)
	}
	if got := (ledger.ExpiryPolicy{Policy: "none", Months: 1}).Expires(t0); got != nil {
		t.Fatalf("policy none gives an expiry %v", got)
	}

	pool := tallytest.DB(t)
	clock := tallytest.NewClock(t0)
	ctx := context.Background()
	year := ledger.ExpiryPolicy{Policy: "after_earn", Months: 12, Location: berlin}
	l := ledger.New(pool, clock, ledger.WithExpiry(year.Expires))
	res, err := l.Award(ctx, ledger.Award{Member: ref(t, "telegram:1"), Points: 10, Key: "earn"})
	if err != nil {
		t.Fatal(err)
	}
	entries, _, _ := l.History(ctx, ref(t, "telegram:1"), 0, 1)
	if entries[0].ExpiresAt == nil || !entries[0].ExpiresAt.Equal(t0.AddDate(1, 0, 0)) {
		t.Fatalf("expiry %v, want a year after %v", entries[0].ExpiresAt, t0)
	}
	// The policy changes between runs: a replay is still a replay.
	l2 := ledger.New(pool, clock, ledger.WithExpiry(ledger.ExpiryPolicy{Policy: "after_earn", Months: 6}.Expires))
	again, err := l2.Award(ctx, ledger.Award{Member: ref(t, "telegram:1"), Points: 10, Key: "earn"})
	if err != nil || !again.Replayed || again.TxnID != res.TxnID {
		t.Fatalf("replay after a policy change: %+v %v", again, err)
	}

	// Inactivity: every earning or spending moves all the member's expiries.
	month := ledger.ExpiryPolicy{Policy: "inactivity", Fixed: 30 * 24 * time.Hour}
	if err := l.SetExpiryPolicy(ctx, month); err != nil {
		t.Fatal(err)
	}
	li := ledger.New(pool, clock, ledger.WithExpiry(month.Expires))
	mustAward(t, li, "telegram:2", 50, "i1", nil)
	clock.Advance(10 * 24 * time.Hour)
	mustAward(t, li, "telegram:2", 20, "i2", nil)
	clock.Advance(10 * 24 * time.Hour)
	if _, err := li.Deduct(ctx, ledger.Deduction{Member: ref(t, "telegram:2"), Points: 5, Key: "i3"}); err != nil {
		t.Fatal(err)
	}
	want := clock.Now().Add(30 * 24 * time.Hour)
	exp, ok, err := li.NextExpiry(ctx, res.MemberID+1)
	if err != nil || !ok || !exp.At.Equal(want) || exp.Points != 65 {
		t.Fatalf("next expiry %+v %v %v; want all 65 points at %v", exp, ok, err, want)
	}
	// Nothing expires before then; everything at once after.
	clock.Set(want.Add(-time.Second))
	if sw, _ := li.ExpireDue(ctx); len(sw.Lots) != 0 {
		t.Fatalf("expired early: %+v", sw)
	}
	clock.Set(want)
	if sw, err := li.ExpireDue(ctx); err != nil || sw.Points != 65 {
		t.Fatalf("sweep %+v %v", sw, err)
	}
	mustCheck(t, li)
}
