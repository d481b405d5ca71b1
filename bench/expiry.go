package bench

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tally-loyalty/tally"
	"github.com/tally-loyalty/tally/ledger"
	"github.com/tally-loyalty/tally/program"
	"github.com/tally-loyalty/tally/tasks"
)

// Expiry targets (issue 7).
const (
	TargetExpire    = 60 * time.Second // expiring a million due lots
	TargetReminders = 30 * time.Second // finding and recording reminders for a million members
	// TargetAwardSlowdown: concurrent awards keep at least half their rate.
	TargetAwardSlowdown = 0.5
	lotsPerMember       = 10
	// idleFor is how long the awards' idle rate is measured, before and
	// after each phase.
	idleFor = 5 * time.Second
)

// pastClock reads the time a fixed while ago: the load awards points that are
// already due when the sweep runs on the real clock.
type pastClock struct{ ago time.Duration }

func (c pastClock) Now() time.Time { return time.Now().Add(-c.ago) }

// countingNotifier counts what is handed to the queue without a queue.
type countingNotifier struct{ n atomic.Int64 }

func (c *countingNotifier) PayClaim(context.Context, int64) error { return nil }
func (c *countingNotifier) Send(context.Context, int64) error     { c.n.Add(1); return nil }

// expiryResult is what the expiry phase measured.
type expiryResult struct {
	lots, members     int
	expire, reminders time.Duration
	// Awards/s with nothing else running, measured before and after each
	// phase on the same data, and while the phase runs.
	idleExpire, idleRemind     idleRate
	awardsExpire, awardsRemind float64
	queued                     int
	dispatch                   time.Duration // handing on one window of reminders as messages
	handed                     int
	expiredPoints, loaded      int64
}

// idleRate is the awards' rate with nothing else running just before and
// just after a phase; the phase is held to their mean (the rate drifts as
// tables grow, and a machine shared with other work drifts too).
type idleRate struct{ before, after float64 }

func (i idleRate) mean() float64 { return (i.before + i.after) / 2 }

// expiryPhase loads opt.ExpiryLots due lots (lotsPerMember per member) and
// expires them all while awards to other members run, then loads a lot per
// member expiring within a day for as many members and finds and records
// their reminders, again under concurrent awards.
func expiryPhase(ctx context.Context, opt Options, benchURL string, ids []int64, p *printer) (expiryResult, error) {
	r := expiryResult{lots: opt.ExpiryLots, members: opt.ExpiryLots / lotsPerMember}
	pool, err := openPool(ctx, benchURL, opt.Clients+maxBatchClients+4)
	if err != nil {
		return r, err
	}
	defer pool.Close()
	live := ledger.New(pool, tally.SystemClock{})
	past := ledger.New(pool, pastClock{ago: time.Hour})

	load := func(prefix string, base, members, perMember int, expires time.Time, l *ledger.Service) error {
		total := members * perMember
		var next atomic.Int64
		var wg sync.WaitGroup
		errs := make(chan error, maxBatchClients)
		for range maxBatchClients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					from := int(next.Add(batchSize)) - batchSize
					if from >= total || ctx.Err() != nil {
						return
					}
					n := min(batchSize, total-from)
					awards := make([]ledger.Award, n)
					for i := range awards {
						k := from + i
						awards[i] = ledger.Award{Member: ledger.MemberRef{Platform: "console", UserID: strconv.Itoa(base + k/perMember)},
							Points: 1 + int64(k%7), Key: prefix + "-" + strconv.Itoa(k), ExpiresAt: &expires}
					}
					res, err := l.AwardBatch(ctx, awards)
					if err == nil {
						err = batchErr(res)
					}
					if err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		return <-errs
	}
	// Awards to the bench's other members, from half the clients.
	awardsDuring := func(tag string, work func() error) (float64, error) {
		var n atomic.Int64
		done := make(chan struct{})
		var wg sync.WaitGroup
		clients := max(opt.Clients/2, 1)
		for w := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ; i++ {
					select {
					case <-done:
						return
					default:
					}
					id := ids[(w+i*clients)%len(ids)]
					if _, err := live.Award(ctx, ledger.Award{Member: ledger.MemberRef{ID: id}, Points: 1,
						Key: fmt.Sprintf("%s-%d-%d", tag, w, i)}); err != nil {
						return
					}
					n.Add(1)
				}
			}()
		}
		start := time.Now()
		err := work()
		close(done)
		wg.Wait()
		return float64(n.Load()) / time.Since(start).Seconds(), err
	}

	p.say("loading %d due lots over %d members (untimed)", r.lots, r.members)
	start := time.Now()
	if err := load("exp", 2_000_000_000, r.members, lotsPerMember, time.Now().Add(-50*time.Minute), past); err != nil {
		return r, fmt.Errorf("load due lots: %w", err)
	}
	p.say("loaded in %s", round(time.Since(start)))
	if _, err := pool.Exec(ctx, "ANALYZE lots"); err != nil {
		return r, err
	}
	// The loads leave dirty pages behind: written out before the idle rates
	// are taken, or the first would pay for them.
	settle := func() error {
		_, err := pool.Exec(ctx, "CHECKPOINT")
		return err
	}
	idle := func(tag string) (float64, error) {
		return awardsDuring(tag, func() error { time.Sleep(idleFor); return nil })
	}
	if err := settle(); err != nil {
		return r, err
	}
	if r.idleExpire.before, err = idle("idle-expire-before"); err != nil {
		return r, err
	}
	r.awardsExpire, err = awardsDuring("expire", func() error {
		t := time.Now()
		defer func() { r.expire = time.Since(t) }()
		sw, err := live.ExpireAll(ctx)
		r.expiredPoints = sw.Points
		return err
	})
	if err != nil {
		return r, err
	}
	if err := pool.QueryRow(ctx, "SELECT coalesce(sum(amount), 0) FROM lots WHERE txn_id IN (SELECT id FROM txns WHERE idempotency_key LIKE 'exp-%')").
		Scan(&r.loaded); err != nil {
		return r, err
	}

	if r.idleExpire.after, err = idle("idle-expire-after"); err != nil {
		return r, err
	}
	p.say("sweep done in %s (%d points); awards meanwhile %.0f/s against %.0f/s idle before and %.0f/s after",
		round(r.expire), r.expiredPoints, r.awardsExpire, r.idleExpire.before, r.idleExpire.after)

	// Reminders: one lot per member, expiring in twelve hours, a 1-day reminder.
	prog, err := program.Parse([]byte("[expiry]\npolicy = \"none\"\nreminders = [\"1d\"]\n"), "bench")
	if err != nil {
		return r, err
	}
	p.say("loading one lot expiring within a day for each of %d members who talked to the bot (untimed)", r.lots)
	if err := load("rem", 3_000_000_000, r.lots, 1, time.Now().Add(12*time.Hour), live); err != nil {
		return r, fmt.Errorf("load lots: %w", err)
	}
	// As if every member had talked to the bot (reminders go to them).
	if _, err := pool.Exec(ctx, "UPDATE members SET last_platform = 'console'"); err != nil {
		return r, err
	}
	// Autovacuum would have analyzed the new rows by now (it is off on the
	// development and CI machines).
	if _, err := pool.Exec(ctx, "ANALYZE members, identities, lots"); err != nil {
		return r, err
	}
	svc := tasks.New(pool, live, prog, tally.SystemClock{}, slog.New(slog.DiscardHandler))
	counter := &countingNotifier{}
	svc.SetNotifier(counter)
	if err := settle(); err != nil {
		return r, err
	}
	if r.idleRemind.before, err = idle("idle-remind-before"); err != nil {
		return r, err
	}
	r.awardsRemind, err = awardsDuring("remind", func() error {
		t := time.Now()
		defer func() { r.reminders = time.Since(t) }()
		run, err := svc.RecordReminders(ctx)
		r.queued = run.Recorded
		return err
	})
	if err != nil {
		return r, err
	}
	if r.idleRemind.after, err = idle("idle-remind-after"); err != nil {
		return r, err
	}
	// The first window of messages, as the sweep job hands it on.
	t := time.Now()
	d, err := svc.DispatchReminders(ctx)
	r.dispatch, r.handed = time.Since(t), d.Handed
	if err == nil && int64(r.handed) != counter.n.Load() {
		err = fmt.Errorf("dispatch: %d messages recorded, %d handed to the queue", r.handed, counter.n.Load())
	}
	return r, err
}
