package bench

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tally-loyalty/tally"
	"github.com/tally-loyalty/tally/bot"
	"github.com/tally-loyalty/tally/ledger"
	"github.com/tally-loyalty/tally/locales"
	"github.com/tally-loyalty/tally/program"
	"github.com/tally-loyalty/tally/queue"
	"github.com/tally-loyalty/tally/tasks"
)

// Claim targets (issue 5): at 100 auto-approved claims a second, a claim's
// points are visible within 100 ms (p99) of the claim being accepted.
const (
	ClaimRate          = 100
	TargetClaimLatency = 100 * time.Millisecond
	claimQueue         = "tally_bench"
	claimWorkers       = 10
)

const claimsProgram = `
[program]
name = "Bench"

[[tasks]]
key = "bench"
points = 5
recurrence = "daily"
title = { en = "Bench" }
`

// claimsResult is what the claims phase measured.
type claimsResult struct {
	paced                     int             // claims sent at ClaimRate
	latency                   []time.Duration // claim accepted → points visible, sorted
	sustained                 int             // claims sent as fast as the clients could
	sustainedAccept, endToEnd time.Duration   // time to accept them all, and to pay them all
}

func (r claimsResult) p(q float64) time.Duration {
	return load{lat: r.latency}.p(q)
}

// discard is a platform that accepts every message.
type discard struct{ n atomic.Int64 }

func (d *discard) Send(context.Context, bot.Outgoing) error { d.n.Add(1); return nil }

// claimsPhase runs auto-approved claims through the chat router, the asynq
// queue on Redis (its own queue name, a worker in this process) and the
// ledger: first paced at ClaimRate for d, timing each claim from its
// acceptance to its payment, then as fast as clients claims at once.
func claimsPhase(ctx context.Context, opt Options, benchURL string, p *printer) (claimsResult, error) {
	var res claimsResult
	pool, err := openPool(ctx, benchURL, opt.Clients+claimWorkers+2)
	if err != nil {
		return res, err
	}
	defer pool.Close()
	prog, err := program.Parse([]byte(claimsProgram), "bench")
	if err != nil {
		return res, err
	}
	cat, err := locales.Load()
	if err != nil {
		return res, err
	}
	log := slog.New(slog.DiscardHandler)
	l := ledger.New(pool, tally.SystemClock{})
	svc := tasks.New(pool, l, prog, tally.SystemClock{}, log)
	router := bot.NewRouter(l, cat, prog, log)
	router.UseTasks(svc)
	q, err := queue.New(ctx, opt.RedisURL, queue.Config{Concurrency: claimWorkers, Name: claimQueue}, log)
	if err != nil {
		return res, err
	}
	out := &discard{}
	if _, err := queue.RegisterJobs(q, svc, map[string]bot.Sender{"telegram": out}, router); err != nil {
		q.Close()
		return res, err
	}
	if err := q.Start(); err != nil {
		return res, err
	}
	defer q.Shutdown()

	var next atomic.Int64
	next.Store(5_000_000_000) // telegram user ids of the bench's claimants
	var accepted sync.Map     // user id → when the claim was accepted
	claim := func(ctx context.Context) error {
		uid := strconv.FormatInt(next.Add(1), 10)
		reply := router.Handle(ctx, bot.Request{User: bot.User{Platform: "telegram", ID: uid, Name: "bench " + uid},
			ChatID: "-100", Group: true, Command: "claim", Args: []string{"bench"}})
		if reply.Private { // refusals and errors are private; an accepted claim is not
			return fmt.Errorf("claim by telegram:%s refused: %s", uid, reply.Text)
		}
		accepted.Store(uid, time.Now())
		return nil
	}

	// Paced: one claim every 1/ClaimRate s, each in its own goroutine so a
	// slow one does not hold back the schedule.
	p.say("claims: %d/s for %s through chat → queue (%d workers) → ledger", ClaimRate, opt.Duration, claimWorkers)
	tick := time.NewTicker(time.Second / ClaimRate)
	var wg sync.WaitGroup
	var firstErr atomic.Value
	deadline := time.Now().Add(opt.Duration)
	for time.Now().Before(deadline) {
		<-tick.C
		wg.Add(1)
		res.paced++
		go func() {
			defer wg.Done()
			if err := claim(ctx); err != nil {
				firstErr.CompareAndSwap(nil, err)
			}
		}()
	}
	tick.Stop()
	wg.Wait()
	if err, _ := firstErr.Load().(error); err != nil {
		return res, err
	}
	if err := waitPaid(ctx, pool, res.paced); err != nil {
		return res, err
	}
	res.latency, err = latencies(ctx, pool, &accepted)
	if err != nil {
		return res, err
	}

	p.say("claims: as fast as %d clients can for %s", opt.Clients, opt.Duration)
	start := time.Now()
	l2, err := drive(ctx, opt.Clients, opt.Duration, 1, func(ctx context.Context, _, _ int) error { return claim(ctx) })
	if err != nil {
		return res, err
	}
	res.sustained, res.sustainedAccept = l2.items, time.Since(start)
	if err := waitPaid(ctx, pool, res.paced+res.sustained); err != nil {
		return res, err
	}
	res.endToEnd = time.Since(start)
	// Every claim's member is told, once.
	want := int64(res.paced + res.sustained)
	for wait := time.Now().Add(time.Minute); out.n.Load() < want && time.Now().Before(wait); {
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // room for a duplicate to show
	if sent := out.n.Load(); sent != want {
		return res, fmt.Errorf("claims: %d approval messages sent for %d claims", sent, want)
	}
	return res, nil
}

// waitPaid waits until n claims are paid.
func waitPaid(ctx context.Context, pool *pgxpool.Pool, n int) error {
	deadline := time.Now().Add(2 * time.Minute)
	for {
		var paid int
		if err := pool.QueryRow(ctx, "SELECT count(*) FROM claims WHERE paid_txn IS NOT NULL").Scan(&paid); err != nil {
			return err
		}
		if paid >= n {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("claims: only %d of %d paid after 2 minutes", paid, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// latencies returns, sorted, how long after its acceptance each claim's
// points were visible: the payment is recorded after the ledger commit, so
// paid_at bounds the moment from above.
func latencies(ctx context.Context, pool *pgxpool.Pool, accepted *sync.Map) ([]time.Duration, error) {
	rows, err := pool.Query(ctx, "SELECT user_id, paid_at FROM claims WHERE paid_at IS NOT NULL")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []time.Duration
	for rows.Next() {
		var uid string
		var paid time.Time
		if err := rows.Scan(&uid, &paid); err != nil {
			return nil, err
		}
		if t, ok := accepted.Load(uid); ok {
			out = append(out, max(paid.Sub(t.(time.Time)), 0))
		}
	}
	slices.Sort(out)
	return out, rows.Err()
}
