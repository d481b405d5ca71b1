package ledger_test

import (
	"context"
	"fmt"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/tally-loyalty/tally"
	"github.com/tally-loyalty/tally/ledger"
	"github.com/tally-loyalty/tally/tallytest"
)

// benchParallelism is goroutines per core in the parallel benchmarks: the
// work waits on Postgres, so one goroutine per core would leave the server
// idle between round trips.
const benchParallelism = 4

// benchLedger returns a ledger on a fresh database holding n members with the
// given points each, and their ids. The members are created with batch awards
// beforehand so that member creation is not what a benchmark measures.
func benchLedger(tb testing.TB, n int, points int64) (*ledger.Service, []int64) {
	tb.Helper()
	l := ledger.New(tallytest.DB(tb), tally.SystemClock{})
	ids := make([]int64, 0, n)
	for from := 0; from < n; from += ledger.MaxBatch {
		awards := make([]ledger.Award, min(ledger.MaxBatch, n-from))
		for i := range awards {
			awards[i] = ledger.Award{
				Member: ledger.MemberRef{Platform: "console", UserID: strconv.Itoa(from + i + 1)},
				Points: points, Reason: "seed", Key: fmt.Sprintf("seed-%d", from+i),
			}
		}
		for _, r := range benchBatch(tb, l, awards) {
			ids = append(ids, r.MemberID)
		}
	}
	return l, ids
}

// benchBatch runs one batch and fails the benchmark when any item did not
// create a transaction: every key a benchmark sends is new.
func benchBatch(tb testing.TB, l *ledger.Service, awards []ledger.Award) []ledger.Result {
	tb.Helper()
	res, err := l.AwardBatch(context.Background(), awards)
	if err != nil {
		tb.Fatalf("award batch: %v", err)
	}
	out := make([]ledger.Result, len(res))
	for i, r := range res {
		if r.Err != nil || r.Result.Replayed {
			tb.Fatalf("award batch item %d: err %v, replayed %v", i, r.Err, r.Result.Replayed)
		}
		out[i] = r.Result
	}
	return out
}

// benchMembersPerWorker is how many members each parallel worker owns, so no
// two workers ever wait on the same member row.
const benchMembersPerWorker = 100

// benchParallel runs op from benchParallelism goroutines per core, each with
// its own slice of members and a sequence number for unique keys, and reports
// ops/s under unit.
func benchParallel(b *testing.B, points int64, unit string, op func(l *ledger.Service, member int64, key string) error) {
	b.SetParallelism(benchParallelism)
	workers := benchParallelism * runtime.GOMAXPROCS(0)
	l, ids := benchLedger(b, workers*benchMembersPerWorker, points)
	var next atomic.Int64
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		w := int(next.Add(1)) - 1
		if w >= workers {
			b.Errorf("worker %d of %d: RunParallel started more goroutines than expected", w, workers)
			return
		}
		own := ids[w*benchMembersPerWorker : (w+1)*benchMembersPerWorker]
		for i := 0; pb.Next(); i++ {
			if err := op(l, own[i%len(own)], fmt.Sprintf("w%d-%d", w, i)); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), unit)
}

// BenchmarkAward measures single awards to existing members by internal id,
// the path a chat command takes once the member is known.
func BenchmarkAward(b *testing.B) {
	benchParallel(b, 1, "awards/s", func(l *ledger.Service, member int64, key string) error {
		_, err := l.Award(context.Background(), ledger.Award{
			Member: ledger.MemberRef{ID: member}, Points: 1, Reason: "bench", Key: key,
		})
		return err
	})
}

// BenchmarkAwardBatch1000 measures one client sending batches of 1000 awards,
// each batch to 1000 distinct existing members.
func BenchmarkAwardBatch1000(b *testing.B) {
	l, ids := benchLedger(b, ledger.MaxBatch, 1)
	awards := make([]ledger.Award, ledger.MaxBatch)
	sent := 0
	for b.Loop() {
		for i := range awards {
			awards[i] = ledger.Award{
				Member: ledger.MemberRef{ID: ids[i]}, Points: 1, Reason: "bench", Key: "batch-" + strconv.Itoa(sent),
			}
			sent++
		}
		benchBatch(b, l, awards)
	}
	b.ReportMetric(float64(sent)/b.Elapsed().Seconds(), "awards/s")
}

// BenchmarkDeduct measures single deductions of 1 point from members that
// each hold one large lot, so every deduction consumes the same lot and never
// runs short.
func BenchmarkDeduct(b *testing.B) {
	benchParallel(b, 1<<40, "deductions/s", func(l *ledger.Service, member int64, key string) error {
		_, err := l.Deduct(context.Background(), ledger.Deduction{
			Member: ledger.MemberRef{ID: member}, Points: 1, Reason: "bench", Key: key,
		})
		return err
	})
}
