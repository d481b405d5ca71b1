package queue_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/tally-loyalty/tally"
	"github.com/tally-loyalty/tally/bot"
	"github.com/tally-loyalty/tally/ledger"
	"github.com/tally-loyalty/tally/locales"
	"github.com/tally-loyalty/tally/program"
	"github.com/tally-loyalty/tally/queue"
	"github.com/tally-loyalty/tally/tallytest"
	"github.com/tally-loyalty/tally/tasks"
)

const jobsProgram = `
[moderation]
telegram_admin_ids = [900]
telegram_review_chat = -100123

[[tasks]]
key = "checkin"
points = 10
recurrence = "daily"
title = { en = "Daily check-in" }

[[tasks]]
key = "share"
points = 200
approval = "manual"
title = { en = "Share" }
`

// sender is a scripted platform: it answers each send with the next error of
// its script (nil once the script is used up) and records what it sent.
type sender struct {
	mu     sync.Mutex
	script []error
	sent   []bot.Outgoing
	tries  int
	times  []time.Time
}

func (s *sender) Send(_ context.Context, m bot.Outgoing) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tries++
	s.times = append(s.times, time.Now())
	if len(s.script) > 0 {
		err := s.script[0]
		s.script = s.script[1:]
		if err != nil {
			return err
		}
	}
	s.sent = append(s.sent, m)
	return nil
}

func (s *sender) count() (tries, sent int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tries, len(s.sent)
}

type jobsEnv struct {
	pool   *pgxpool.Pool
	ledger *ledger.Service
	tasks  *tasks.Service
	router *bot.Router
	redis  string
	sender *sender
}

func newJobsEnv(t *testing.T) *jobsEnv {
	t.Helper()
	prog, err := program.Parse([]byte(jobsProgram), "test")
	if err != nil {
		t.Fatal(err)
	}
	cat, err := locales.Load()
	if err != nil {
		t.Fatal(err)
	}
	pool := tallytest.DB(t)
	l := ledger.New(pool, tally.SystemClock{})
	svc := tasks.New(pool, l, prog, tally.SystemClock{}, slog.Default())
	r := bot.NewRouter(l, cat, prog, slog.Default())
	r.UseTasks(svc)
	return &jobsEnv{pool: pool, ledger: l, tasks: svc, router: r, redis: tallytest.Redis(t), sender: &sender{}}
}

// start runs a worker; mw, if given, wraps its handlers.
func (e *jobsEnv) start(t *testing.T, mw asynq.MiddlewareFunc) (*queue.Queue, *queue.Jobs) {
	t.Helper()
	q, err := queue.New(context.Background(), e.redis, queue.Config{Concurrency: 4, ShutdownTimeout: time.Second}, slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	j, err := queue.RegisterJobs(q, e.tasks, map[string]bot.Sender{"telegram": e.sender}, e.router)
	if err != nil {
		t.Fatal(err)
	}
	if mw != nil {
		q.Use(mw)
	}
	if err := q.Start(); err != nil {
		t.Fatal(err)
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			q.Shutdown()
		}
	})
	return q, j
}

func (e *jobsEnv) member(t *testing.T, id string) tasks.Claimant {
	t.Helper()
	p, err := e.ledger.EnsureMember(context.Background(), "telegram", id, "user "+id)
	if err != nil {
		t.Fatal(err)
	}
	return tasks.Claimant{Member: p.ID, Name: p.Name, Platform: "telegram", UserID: id, Locale: "en"}
}

func (e *jobsEnv) balance(t *testing.T, member int64) int64 {
	t.Helper()
	_, b, err := e.ledger.Member(context.Background(), ledger.MemberRef{ID: member})
	if err != nil {
		t.Fatal(err)
	}
	return b.Available
}

// waitFor polls cond for up to 15 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (e *jobsEnv) messageStatus(t *testing.T, kind string) (status string, attempts int) {
	t.Helper()
	err := e.pool.QueryRow(context.Background(), "SELECT status, attempts FROM outbound WHERE kind = $1 ORDER BY id DESC LIMIT 1", kind).
		Scan(&status, &attempts)
	if err != nil {
		return "", 0
	}
	return status, attempts
}

func TestJobs_ClaimPaidAndMemberTold(t *testing.T) {
	t.Parallel()
	e := newJobsEnv(t)
	e.start(t, nil)
	who := e.member(t, "1")
	if _, err := e.tasks.Claim(context.Background(), who, "checkin", ""); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the approval message", func() bool { _, sent := e.sender.count(); return sent == 1 })
	if got := e.balance(t, who.Member); got != 10 {
		t.Fatalf("balance %d, want 10", got)
	}
	if m := e.sender.sent[0]; m.UserID != "1" || m.Text == "" {
		t.Fatalf("sent %+v", m)
	}
	waitFor(t, "the message recorded as sent", func() bool { s, _ := e.messageStatus(t, tasks.KindClaimApproved); return s == tasks.Sent })
}

func TestJobs_WorkerStoppedAfterTheLedgerCommitPaysOnce(t *testing.T) {
	t.Parallel()
	e := newJobsEnv(t)
	var once sync.Once
	paid := make(chan struct{})
	// The first payment job commits to the ledger, then hangs until its
	// worker is shut down: the job never completes and goes back to the queue.
	hang := func(next asynq.Handler) asynq.Handler {
		return asynq.HandlerFunc(func(ctx context.Context, task *asynq.Task) error {
			first := false
			once.Do(func() { first = task.Type() == queue.TypePayClaim })
			err := next.ProcessTask(ctx, task)
			if first {
				close(paid)
				<-ctx.Done()
				return ctx.Err()
			}
			return err
		})
	}
	q1, _ := e.start(t, hang)
	who := e.member(t, "1")
	if _, err := e.tasks.Claim(context.Background(), who, "checkin", ""); err != nil {
		t.Fatal(err)
	}
	<-paid
	q1.Shutdown()
	if got := e.balance(t, who.Member); got != 10 {
		t.Fatalf("balance %d after the first run, want 10", got)
	}
	// A new worker picks the job up again.
	e.start(t, nil)
	waitFor(t, "the approval message", func() bool { _, sent := e.sender.count(); return sent == 1 })
	if got := e.balance(t, who.Member); got != 10 {
		t.Fatalf("balance %d after the retry, want 10", got)
	}
	rep, err := e.ledger.Check(context.Background())
	if err != nil || !rep.OK() {
		t.Fatalf("check: %+v %v", rep.Violations, err)
	}
}

func TestJobs_RateLimitIsWaitedOut(t *testing.T) {
	t.Parallel()
	e := newJobsEnv(t)
	e.sender.script = []error{&bot.RateLimitedError{After: 2 * time.Second}}
	e.start(t, nil)
	if _, err := e.tasks.Claim(context.Background(), e.member(t, "1"), "checkin", ""); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the message after the rate limit", func() bool { _, sent := e.sender.count(); return sent == 1 })
	if gap := e.sender.times[1].Sub(e.sender.times[0]); gap < 2*time.Second {
		t.Fatalf("retried after %v, before the platform's retry_after of 2 s", gap)
	}
	waitFor(t, "sent", func() bool { s, _ := e.messageStatus(t, tasks.KindClaimApproved); return s == tasks.Sent })
	if _, attempts := e.messageStatus(t, tasks.KindClaimApproved); attempts != 0 {
		t.Fatalf("a rate limit counted as %d failed attempts", attempts)
	}
}

func TestJobs_BlockedMemberStopsSending(t *testing.T) {
	t.Parallel()
	e := newJobsEnv(t)
	e.sender.script = []error{fmt.Errorf("telegram: Forbidden: bot was blocked by the user: %w", bot.ErrUnreachable)}
	e.start(t, nil)
	who := e.member(t, "1")
	if _, err := e.tasks.Claim(context.Background(), who, "checkin", ""); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the message skipped", func() bool { s, _ := e.messageStatus(t, tasks.KindClaimApproved); return s == tasks.Skipped })
	time.Sleep(300 * time.Millisecond)
	if tries, sent := e.sender.count(); tries != 1 || sent != 0 {
		t.Fatalf("%d tries, %d sent; want one try and no retry", tries, sent)
	}
	var unreachable bool
	if err := e.pool.QueryRow(context.Background(), "SELECT unreachable FROM members WHERE id = $1", who.Member).Scan(&unreachable); err != nil || !unreachable {
		t.Fatalf("member not marked unreachable (%v)", err)
	}
	// The points were paid all the same.
	if got := e.balance(t, who.Member); got != 10 {
		t.Fatalf("balance %d", got)
	}
}

func TestJobs_TransientFailureIsRetried(t *testing.T) {
	t.Parallel()
	e := newJobsEnv(t)
	e.sender.script = []error{errors.New("connection reset")}
	e.start(t, nil)
	if _, err := e.tasks.Claim(context.Background(), e.member(t, "1"), "checkin", ""); err != nil {
		t.Fatal(err)
	}
	// asynq's first backoff is a few seconds at most.
	deadline := time.Now().Add(40 * time.Second)
	for {
		if _, sent := e.sender.count(); sent == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("message not sent after a transient failure")
		}
		time.Sleep(50 * time.Millisecond)
	}
	waitFor(t, "sent", func() bool { s, _ := e.messageStatus(t, tasks.KindClaimApproved); return s == tasks.Sent })
	if _, attempts := e.messageStatus(t, tasks.KindClaimApproved); attempts != 1 {
		t.Fatalf("attempts %d, want 1", attempts)
	}
}

func TestJobs_ReconcilerRecoversFromARedisFlush(t *testing.T) {
	t.Parallel()
	e := newJobsEnv(t)
	// Claims made while no worker runs; then Redis loses everything.
	who := e.member(t, "1")
	notifier := &tallytest.Notifier{} // a queue that will lose everything handed to it
	e.tasks.SetNotifier(notifier)
	if _, err := e.tasks.Claim(context.Background(), who, "checkin", ""); err != nil {
		t.Fatal(err)
	}
	claim, err := e.tasks.Claim(context.Background(), e.member(t, "2"), "share", "")
	if err != nil {
		t.Fatal(err)
	}
	opt, _ := redis.ParseURL(e.redis)
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	if err := rdb.FlushDB(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	_, jobs := e.start(t, nil)
	time.Sleep(200 * time.Millisecond)
	if got := e.balance(t, who.Member); got != 0 {
		t.Fatalf("paid %d before reconciling", got)
	}
	for range 2 { // two reconcilers at once enqueue each job once
		if err := jobs.Reconcile(context.Background(), 0); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the payment and both messages", func() bool { _, sent := e.sender.count(); return sent == 2 })
	if got := e.balance(t, who.Member); got != 10 {
		t.Fatalf("balance %d, want 10", got)
	}
	var review bot.Outgoing
	for _, m := range e.sender.sent {
		if m.ChatID != "" {
			review = m
		}
	}
	if review.ChatID != "-100123" || len(review.Buttons) != 2 || review.Buttons[0].Data != fmt.Sprintf("approve:%d", claim.ID) {
		t.Fatalf("review post %+v", review)
	}
}

func TestJobs_ArchivedJobIsRunAgainByTheReconciler(t *testing.T) {
	t.Parallel()
	e := newJobsEnv(t)
	var failed sync.Once
	archived := make(chan struct{})
	// The first payment job fails for good (out of retries): asynq archives
	// it, and its task id stays taken.
	failOnce := func(next asynq.Handler) asynq.Handler {
		return asynq.HandlerFunc(func(ctx context.Context, task *asynq.Task) error {
			if task.Type() == queue.TypePayClaim {
				var err error
				failed.Do(func() { err = fmt.Errorf("postgres gone: %w", asynq.SkipRetry); close(archived) })
				if err != nil {
					return err
				}
			}
			return next.ProcessTask(ctx, task)
		})
	}
	_, jobs := e.start(t, failOnce)
	who := e.member(t, "1")
	if _, err := e.tasks.Claim(context.Background(), who, "checkin", ""); err != nil {
		t.Fatal(err)
	}
	<-archived
	time.Sleep(200 * time.Millisecond)
	if got := e.balance(t, who.Member); got != 0 {
		t.Fatalf("balance %d before reconciling", got)
	}
	if err := jobs.Reconcile(context.Background(), 0); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the claim paid after reconciling", func() bool { return e.balance(t, who.Member) == 10 })
}

// poster is a scripted platform that can edit what it posted.
type poster struct {
	sender
	posted int
	edits  map[string]bot.Outgoing
}

func (p *poster) Post(ctx context.Context, m bot.Outgoing) (string, error) {
	if err := p.Send(ctx, m); err != nil {
		return "", err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.posted++
	return fmt.Sprintf("chat:%d", p.posted), nil
}

func (p *poster) Edit(_ context.Context, ref string, m bot.Outgoing) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.edits[ref] = m
	return nil
}

func (p *poster) edited(ref string) (bot.Outgoing, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	m, ok := p.edits[ref]
	return m, ok
}

func TestJobs_ReviewPostOnTheOtherPlatformShowsTheDecision(t *testing.T) {
	t.Parallel()
	prog, err := program.Parse([]byte(`
[moderation]
telegram_admin_ids = [900]
telegram_review_chat = -100123
discord_review_channel = "1300000000000000001"

[[tasks]]
key = "share"
points = 200
approval = "manual"
title = { en = "Share" }
`), "test")
	if err != nil {
		t.Fatal(err)
	}
	e := newJobsEnv(t)
	e.tasks = tasks.New(e.pool, e.ledger, prog, tally.SystemClock{}, slog.Default())
	cat, _ := locales.Load()
	e.router = bot.NewRouter(e.ledger, cat, prog, slog.Default())
	e.router.UseTasks(e.tasks)
	tg, dc := &poster{edits: map[string]bot.Outgoing{}}, &poster{edits: map[string]bot.Outgoing{}}
	q, err := queue.New(context.Background(), e.redis, queue.Config{Concurrency: 4, ShutdownTimeout: time.Second}, slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := queue.RegisterJobs(q, e.tasks, map[string]bot.Sender{"telegram": tg, "discord": dc}, e.router); err != nil {
		t.Fatal(err)
	}
	if err := q.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(q.Shutdown)
	ctx := context.Background()
	c, err := e.tasks.Claim(ctx, e.member(t, "1"), "share", "")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "both review posts", func() bool { _, a := tg.count(); _, b := dc.count(); return a == 1 && b == 1 })
	mod, _ := e.ledger.EnsureMember(ctx, "telegram", "900", "Mo")
	if _, err := e.tasks.Decide(ctx, c.ID, tasks.Actor{Member: mod.ID, Name: "Mo", Platform: "telegram"}, true, ""); err != nil {
		t.Fatal(err)
	}
	// The Telegram post was pressed (its adapter edits it); the Discord one
	// is edited by the queue.
	waitFor(t, "the Discord post edited", func() bool { _, ok := dc.edited("chat:1"); return ok })
	m, _ := dc.edited("chat:1")
	if !strings.Contains(m.Text, "Approved by Mo") || len(m.Buttons) != 0 {
		t.Fatalf("edited post %+v", m)
	}
	if _, ok := tg.edited("chat:1"); ok {
		t.Fatal("the pressed Telegram post was edited by the queue too")
	}
}

func TestJobs_ExpireSweepsDuePoints(t *testing.T) {
	t.Parallel()
	e := newJobsEnv(t)
	_, jobs := e.start(t, nil)
	ctx := context.Background()
	soon := time.Now().Add(time.Second)
	res, err := e.ledger.Award(ctx, ledger.Award{Member: ledger.MemberRef{Platform: "telegram", UserID: "1"}, Points: 25, Key: "promo", ExpiresAt: &soon})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Until(soon) + 50*time.Millisecond)
	if err := jobs.Expire(ctx); err != nil {
		t.Fatal(err)
	}
	var expired int64
	if err := e.pool.QueryRow(ctx, "SELECT coalesce(sum(amount), 0) FROM postings WHERE account = 'expired' AND member_id = $1", res.MemberID).Scan(&expired); err != nil || expired != 25 {
		t.Fatalf("expired %d (%v), want 25", expired, err)
	}
	if rep, err := e.ledger.Check(ctx); err != nil || !rep.OK() {
		t.Fatalf("check: %+v %v", rep.Violations, err)
	}
}

// newExpiryEnv is a jobs environment on the real clock whose programme has
// the [expiry] section given.
func newExpiryEnv(t *testing.T, section string) *jobsEnv {
	t.Helper()
	prog, err := program.Parse([]byte(section), "test")
	if err != nil {
		t.Fatal(err)
	}
	e := newJobsEnv(t)
	policy := ledger.ExpiryPolicy{Policy: prog.Expiry.Policy, Fixed: prog.Expiry.After.Fixed}
	e.ledger = ledger.New(e.pool, tally.SystemClock{}, ledger.WithExpiry(policy.Expires))
	e.tasks = tasks.New(e.pool, e.ledger, prog, tally.SystemClock{}, slog.Default())
	cat, _ := locales.Load()
	e.router = bot.NewRouter(e.ledger, cat, prog, slog.Default())
	e.router.UseTasks(e.tasks)
	return e
}

// TestJobs_ExpiryInRealTime runs a programme whose points live two seconds
// with a reminder one second before, on the real clock.
func TestJobs_ExpiryInRealTime(t *testing.T) {
	t.Parallel()
	e := newExpiryEnv(t, "[expiry]\npolicy = \"after_earn\"\nafter = \"2s\"\nreminders = [\"1s\"]\nsweep_every = \"10s\"\n")
	_, jobs := e.start(t, nil)
	ctx := context.Background()
	who := e.member(t, "1") // talked to the bot, on Telegram
	start := time.Now()
	if _, err := e.ledger.Award(ctx, ledger.Award{Member: ledger.MemberRef{ID: who.Member}, Points: 30, Key: "earn"}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Until(start.Add(1100 * time.Millisecond)))
	if err := jobs.Expire(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the reminder", func() bool { _, sent := e.sender.count(); return sent == 1 })
	if m := e.sender.sent[0]; m.UserID != "1" || !strings.Contains(m.Text, "30") {
		t.Fatalf("reminder %+v", m)
	}
	if got := e.balance(t, who.Member); got != 30 {
		t.Fatalf("balance %d before the expiry", got)
	}
	time.Sleep(time.Until(start.Add(2100 * time.Millisecond)))
	if err := jobs.Expire(ctx); err != nil {
		t.Fatal(err)
	}
	if got := e.balance(t, who.Member); got != 0 {
		t.Fatalf("balance %d after the expiry", got)
	}
	if _, sent := e.sender.count(); sent != 1 {
		t.Fatalf("%d messages, want the one reminder", sent)
	}
	if rep, err := e.ledger.Check(ctx); err != nil || !rep.OK() {
		t.Fatalf("check: %+v %v", rep.Violations, err)
	}
}

// TestJobs_RemindersDispatchedOnSchedule: reminders recorded outside the
// sweep (as when a window was full) go out with the periodic dispatch job.
func TestJobs_RemindersDispatchedOnSchedule(t *testing.T) {
	t.Parallel()
	e := newExpiryEnv(t, "[expiry]\npolicy = \"after_earn\"\nafter = \"2h\"\nreminders = [\"1h\"]\n")
	ctx := context.Background()
	who := e.member(t, "1")
	soon := time.Now().Add(30 * time.Minute) // a promotion: the 1-hour reminder is due
	if _, err := e.ledger.Award(ctx, ledger.Award{Member: ledger.MemberRef{ID: who.Member}, Points: 40, Key: "earn", ExpiresAt: &soon}); err != nil {
		t.Fatal(err)
	}
	if run, err := e.tasks.RecordReminders(ctx); err != nil || run.Recorded != 1 {
		t.Fatalf("recorded %+v %v", run, err)
	}
	start := time.Now()
	e.start(t, nil)
	waitFor(t, "the reminder", func() bool { _, sent := e.sender.count(); return sent == 1 })
	if m := e.sender.sent[0]; m.UserID != "1" || !strings.Contains(m.Text, "40") {
		t.Fatalf("reminder %+v", m)
	}
	t.Logf("sent %s after the worker started (dispatch every %s)", time.Since(start).Round(time.Millisecond), queue.DispatchEvery)
}

// TestJobs_SweepStoppedAfterTheLedgerCommitExpiresOnce: the sweep job's
// worker stops after the sweep committed and its reminder was recorded and
// handed on, before the job completed; asynq hands the job to the next
// worker, whose run expires nothing more and reminds nobody twice.
func TestJobs_SweepStoppedAfterTheLedgerCommitExpiresOnce(t *testing.T) {
	t.Parallel()
	e := newExpiryEnv(t, "[expiry]\npolicy = \"after_earn\"\nafter = \"2h\"\nreminders = [\"1h\"]\n")
	ctx := context.Background()
	due, remind := e.member(t, "1"), e.member(t, "2")
	soon, later := time.Now().Add(500*time.Millisecond), time.Now().Add(30*time.Minute)
	for _, a := range []ledger.Award{{Member: ledger.MemberRef{ID: due.Member}, Points: 25, Key: "due", ExpiresAt: &soon},
		{Member: ledger.MemberRef{ID: remind.Member}, Points: 40, Key: "remind", ExpiresAt: &later}} {
		if _, err := e.ledger.Award(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(time.Until(soon) + 50*time.Millisecond)

	var sweeps atomic.Int32
	swept := make(chan struct{})
	hang := func(next asynq.Handler) asynq.Handler {
		return asynq.HandlerFunc(func(ctx context.Context, task *asynq.Task) error {
			err := next.ProcessTask(ctx, task)
			if task.Type() == queue.TypeExpire && sweeps.Add(1) == 1 {
				close(swept)
				<-ctx.Done() // stopped before the job completes
				return ctx.Err()
			}
			return err
		})
	}
	q1, _ := e.start(t, hang)
	if _, err := q1.Client().Enqueue(asynq.NewTask(queue.TypeExpire, nil), asynq.Queue("default"), asynq.MaxRetry(0)); err != nil {
		t.Fatal(err)
	}
	<-swept
	q1.Shutdown()
	expired := func() (points int64) {
		if err := e.pool.QueryRow(ctx, "SELECT coalesce(sum(amount), 0) FROM postings WHERE account = 'expired'").Scan(&points); err != nil {
			t.Fatal(err)
		}
		return points
	}
	if got := expired(); got != 25 {
		t.Fatalf("%d points expired by the first run, want 25", got)
	}
	// The next worker runs the sweep again.
	e.start(t, hang)
	waitFor(t, "the sweep run again", func() bool { return sweeps.Load() == 2 })
	waitFor(t, "the reminder", func() bool { _, sent := e.sender.count(); return sent >= 1 })
	time.Sleep(200 * time.Millisecond) // a second message would have gone by now
	if _, sent := e.sender.count(); sent != 1 || e.sender.sent[0].UserID != "2" {
		t.Fatalf("%d messages (%+v), want the one reminder to member 2", sent, e.sender.sent)
	}
	if got := expired(); got != 25 {
		t.Fatalf("%d points expired after the rerun, want 25", got)
	}
	if rep, err := e.ledger.Check(ctx); err != nil || !rep.OK() {
		t.Fatalf("check: %+v %v", rep.Violations, err)
	}
}
