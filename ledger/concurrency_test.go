package ledger_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/tally-loyalty/tally"
	"github.com/tally-loyalty/tally/ledger"
)

// TestConcurrency_AwardsDeductionsAndReplaysKeepInvariants hammers a few
// members with awards, deductions and replayed keys from many goroutines, then
// checks that each balance is exactly the sum of what succeeded once.
func TestConcurrency_AwardsDeductionsAndReplaysKeepInvariants(t *testing.T) {
	l, _, _ := newLedger(t)
	ctx := context.Background()
	members := []string{"telegram:1", "telegram:2", "discord:3", "discord:4"}
	const workers, ops = 16, 60
	for _, m := range members {
		mustAward(t, l, m, 1, "seed-"+m, nil)
	}

	type done struct {
		member string
		delta  int64
		txn    int64
	}
	var mu sync.Mutex
	applied := map[string]done{} // key → first non-replayed outcome
	replays := map[string][]int64{}
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for i := range ops {
				m := members[rng.IntN(len(members))]
				// Keys are shared between workers on purpose: many requests race on one key.
				key := fmt.Sprintf("%s-%d", m, rng.IntN(workers*ops/4))
				points := int64(1 + (len(key) % 5 * 10))
				var res ledger.Result
				var err error
				var delta int64
				if rng.IntN(3) == 0 {
					key = "d-" + key
					res, err = l.Deduct(ctx, ledger.Deduction{Member: ref(t, m), Points: points, Key: key})
					delta = -points
				} else {
					res, err = l.Award(ctx, ledger.Award{Member: ref(t, m), Points: points, Key: key})
					delta = points
				}
				switch tally.ErrorCode(err) {
				case "":
				case tally.EINSUFFICIENT:
					continue
				default:
					errs <- fmt.Errorf("worker %d op %d: %w", w, i, err)
					return
				}
				mu.Lock()
				if res.Replayed {
					replays[key] = append(replays[key], res.TxnID)
				} else {
					if prev, ok := applied[key]; ok {
						errs <- fmt.Errorf("key %s applied twice: txns %d and %d", key, prev.txn, res.TxnID)
					}
					applied[key] = done{m, delta, res.TxnID}
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	want := map[string]int64{}
	for _, m := range members {
		want[m] = 1
	}
	for key, d := range applied {
		want[d.member] += d.delta
		for _, txn := range replays[key] {
			if txn != d.txn {
				t.Errorf("key %s replayed as txn %d, applied as %d", key, txn, d.txn)
			}
		}
	}
	for key := range replays {
		if _, ok := applied[key]; !ok {
			t.Errorf("key %s replayed but never applied", key)
		}
	}
	for _, m := range members {
		if got := available(t, l, m); got != want[m] || got < 0 {
			t.Errorf("%s: balance %d, want %d", m, got, want[m])
		}
	}
	r := mustCheck(t, l)
	if r.Transactions != int64(len(applied)+len(members)) {
		t.Errorf("%d transactions, %d applied keys", r.Transactions, len(applied))
	}
	t.Logf("%d transactions applied, %d replays", len(applied), len(replays))
}

// TestConcurrency_OneKeyAtOnceAppliesOnce sends one request from many
// goroutines at the same moment: one applies, the others replay it.
func TestConcurrency_OneKeyAtOnceAppliesOnce(t *testing.T) {
	l, _, _ := newLedger(t)
	ctx := context.Background()
	const n = 24
	results := make([]ledger.Result, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			results[i], errs[i] = l.Award(ctx, ledger.Award{Member: ref(t, "telegram:77"), Points: 40, Key: "same"})
		}()
	}
	close(start)
	wg.Wait()
	fresh := 0
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("request %d: %v", i, errs[i])
		}
		if !results[i].Replayed {
			fresh++
		}
		if results[i].TxnID != results[0].TxnID || results[i].Balance != 40 {
			t.Fatalf("request %d = %+v, request 0 = %+v", i, results[i], results[0])
		}
	}
	if fresh != 1 {
		t.Fatalf("%d requests applied, want 1", fresh)
	}
	if got := available(t, l, "telegram:77"); got != 40 {
		t.Fatalf("balance %d, want 40", got)
	}
	mustCheck(t, l)
}

// TestConcurrency_OneKeyForDifferentMembers: the same key sent for different
// members at once applies for exactly one; the others conflict.
func TestConcurrency_OneKeyForDifferentMembers(t *testing.T) {
	l, _, _ := newLedger(t)
	ctx := context.Background()
	const n = 12
	for i := range n { // members exist first, so every request reaches the insert race
		mustAward(t, l, fmt.Sprint("discord:", i+1), 1, fmt.Sprint("seed", i), nil)
	}
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = l.Award(ctx, ledger.Award{Member: ref(t, fmt.Sprint("discord:", i+1)), Points: 10, Key: "shared"})
		}()
	}
	wg.Wait()
	ok, conflicts := 0, 0
	for _, err := range errs {
		switch tally.ErrorCode(err) {
		case "":
			ok++
		case tally.ECONFLICT:
			conflicts++
		default:
			t.Fatal(err)
		}
	}
	if ok != 1 || conflicts != n-1 {
		t.Fatalf("%d applied, %d conflicts; want 1 and %d", ok, conflicts, n-1)
	}
	mustCheck(t, l)
}

// TestConcurrency_BatchesOnOverlappingMembers: batches touching the same
// members in different orders, with single awards and deductions between them,
// neither deadlock nor lose points.
func TestConcurrency_BatchesOnOverlappingMembers(t *testing.T) {
	l, _, _ := newLedger(t)
	ctx := context.Background()
	const members, batches = 30, 12
	var wg sync.WaitGroup
	errs := make(chan error, batches*2)
	for b := range batches {
		wg.Add(2)
		go func() {
			defer wg.Done()
			var items []ledger.Award
			for i := range members {
				m := i
				if b%2 == 1 {
					m = members - 1 - i // the reverse order
				}
				items = append(items, ledger.Award{Member: ref(t, fmt.Sprint("telegram:", m+1)), Points: 3, Key: fmt.Sprintf("b%d-%d", b, m)})
			}
			// Every batch is sent twice: the second must replay item by item.
			for range 2 {
				if _, err := l.AwardBatch(ctx, items); err != nil {
					errs <- err
				}
			}
		}()
		go func() {
			defer wg.Done()
			m := fmt.Sprint("telegram:", b%members+1)
			if _, err := l.Award(ctx, ledger.Award{Member: ref(t, m), Points: 2, Key: fmt.Sprint("s", b)}); err != nil {
				errs <- err
			}
			if _, err := l.Deduct(ctx, ledger.Deduction{Member: ref(t, m), Points: 1, Key: fmt.Sprint("d", b)}); err != nil && tally.ErrorCode(err) != tally.EINSUFFICIENT {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	r := mustCheck(t, l)
	if r.System["issued"].Int64() != -(members*batches*3 + batches*2) {
		t.Fatalf("issued %d, want %d", r.System["issued"], -(members*batches*3 + batches*2))
	}
	if r.Outstanding.Int64() != -r.System["issued"].Int64()-r.System["redeemed"].Int64() {
		t.Fatalf("report = %+v", r)
	}
}

// TestConcurrency_BatchesAndSinglesSharingKeys: batches and single requests
// race on the same keys for different members. Every key applies once; the
// others replay or conflict, never fail.
func TestConcurrency_BatchesAndSinglesSharingKeys(t *testing.T) {
	l, _, _ := newLedger(t)
	ctx := context.Background()
	const keys, batchers, singles = 120, 6, 8
	member := func(k int) string { return fmt.Sprint("telegram:", k%5+1) }
	var wg sync.WaitGroup
	errs := make(chan error, batchers+singles)
	for w := range batchers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 99))
			for range 4 {
				var items []ledger.Award
				picked := map[int]bool{}
				for len(items) < 30 {
					k := rng.IntN(keys)
					if picked[k] {
						continue
					}
					picked[k] = true
					// Half the workers name the member differently: conflicts.
					m := member(k)
					if w%2 == 1 && k%3 == 0 {
						m = member(k + 1)
					}
					items = append(items, ledger.Award{Member: ref(t, m), Points: 7, Key: fmt.Sprint("k", k)})
				}
				out, err := l.AwardBatch(ctx, items)
				if err != nil {
					errs <- err
					return
				}
				for _, r := range out {
					if r.Err != nil && tally.ErrorCode(r.Err) != tally.ECONFLICT {
						errs <- r.Err
						return
					}
				}
			}
		}()
	}
	for w := range singles {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 5))
			for range 30 {
				k := rng.IntN(keys)
				_, err := l.Award(ctx, ledger.Award{Member: ref(t, member(k)), Points: 7, Key: fmt.Sprint("k", k)})
				if err != nil && tally.ErrorCode(err) != tally.ECONFLICT {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	r := mustCheck(t, l)
	if r.Outstanding.Int64() != r.Transactions*7 {
		t.Fatalf("outstanding %s for %d transactions of 7", r.Outstanding, r.Transactions)
	}
}

// TestConcurrency_BatchesWithKeysInOppositeOrder must not deadlock.
func TestConcurrency_BatchesWithKeysInOppositeOrder(t *testing.T) {
	l, _, _ := newLedger(t)
	ctx := context.Background()
	for round := range 8 {
		var up, down []ledger.Award
		for i := range 20 {
			up = append(up, ledger.Award{Member: ref(t, "telegram:1"), Points: 1, Key: fmt.Sprint(round, "-", i)})
			down = append(down, ledger.Award{Member: ref(t, "telegram:2"), Points: 1, Key: fmt.Sprint(round, "-", 19-i)})
		}
		var wg sync.WaitGroup
		var e1, e2 error
		wg.Add(2)
		go func() { defer wg.Done(); _, e1 = l.AwardBatch(ctx, up) }()
		go func() { defer wg.Done(); _, e2 = l.AwardBatch(ctx, down) }()
		wg.Wait()
		if e1 != nil || e2 != nil {
			t.Fatal(e1, e2)
		}
	}
	r := mustCheck(t, l)
	if r.Transactions != 8*20 {
		t.Fatalf("%d transactions, want %d", r.Transactions, 8*20)
	}
}
