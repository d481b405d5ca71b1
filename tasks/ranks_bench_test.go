package tasks

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tally-loyalty/tally/ledger"
	"github.com/tally-loyalty/tally/program"
	"github.com/tally-loyalty/tally/tallytest"
)

// BenchmarkLeaderboard reads a top 10 plus one member's rank from the Redis
// board of a season of 20,000 members.
func BenchmarkLeaderboard(b *testing.B) {
	e := seasonEnvB(b)
	ctx := context.Background()
	opt, _ := redis.ParseURL(tallytest.Redis(b))
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	rr := NewRedisRanker(e.svc.pool, rdb, "tally:board:")
	e.svc.SetRanker(rr)
	season, _ := e.svc.EnsureSeason(ctx)
	const n = 20000
	for from := 0; from < n; from += 1000 {
		awards := make([]ledger.Award, 1000)
		for i := range awards {
			awards[i] = ledger.Award{Member: ledger.MemberRef{Platform: "telegram", UserID: fmt.Sprint(1000 + from + i)}, Points: int64(1 + (from+i)*7%5000), Key: fmt.Sprint("k", from+i)}
		}
		if _, err := e.ledger.AwardBatch(ctx, awards); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := e.svc.Leaderboard(ctx, season, 10, 0); err != nil {
		b.Fatal(err)
	}
	rr.Wait() // the first read started building the Redis board
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		t0 := time.Now()
		if _, err := e.svc.Leaderboard(ctx, season, 10, int64(1+i%n)); err != nil {
			b.Fatal(err)
		}
		if i < 3 {
			b.Logf("read %d: %s", i, time.Since(t0))
		}
	}
}

func seasonEnvB(b *testing.B) *env {
	prog, err := program.Parse([]byte("[seasons]\njoin = \"auto\"\n"), "bench")
	if err != nil {
		b.Fatal(err)
	}
	pool := tallytest.DB(b)
	clock := tallytest.NewClock(time.Now())
	l := ledger.New(pool, clock)
	return &env{svc: New(pool, l, prog, clock, nil), ledger: l, clock: clock}
}
