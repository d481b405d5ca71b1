package tasks

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/tally-loyalty/tally/ledger"
	"github.com/tally-loyalty/tally/program"
	"github.com/tally-loyalty/tally/tallytest"
)

func reminderEnv(t *testing.T, now time.Time) *env {
	t.Helper()
	prog, err := program.Parse([]byte(`
[program]
timezone = "Europe/Berlin"

[expiry]
policy = "after_earn"
after = "12mo"
reminders = ["30d", "7d", "1d"]
`), "test")
	if err != nil {
		t.Fatal(err)
	}
	pool := tallytest.DB(t)
	clock := tallytest.NewClock(now)
	policy := ledger.ExpiryPolicy{Policy: prog.Expiry.Policy, Months: prog.Expiry.After.Months, Location: prog.Location}
	l := ledger.New(pool, clock, ledger.WithExpiry(policy.Expires))
	svc := New(pool, l, prog, clock, slog.Default())
	rec := &tallytest.Notifier{}
	svc.SetNotifier(rec)
	return &env{svc: svc, ledger: l, clock: clock, notes: rec}
}

func TestReminders_OncePerMemberInstantAndOffset(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 1, 10, 9, 0, 0, 0, time.UTC)
	e := reminderEnv(t, start)
	ctx := context.Background()
	talk := func(platform, id string) int64 {
		p, err := e.ledger.EnsureMember(ctx, platform, id, "m"+id)
		if err != nil {
			t.Fatal(err)
		}
		return p.ID
	}
	a := talk("telegram", "1")
	award := func(member int64, points int64, key string) {
		if _, err := e.ledger.Award(ctx, ledger.Award{Member: ledger.MemberRef{ID: member}, Points: points, Key: key}); err != nil {
			t.Fatal(err)
		}
	}
	award(a, 100, "a1")
	award(a, 50, "a2") // same instant: one reminder for 150
	quiet := talk("telegram", "2")
	e.ledger.SetNotify(ctx, quiet, false)
	award(quiet, 10, "q")
	if _, err := e.ledger.Award(ctx, ledger.Award{Member: ledger.MemberRef{Platform: "telegram", UserID: "3"}, Points: 10, Key: "n"}); err != nil {
		t.Fatal(err) // a member only the admin API knows
	}
	expires := start.AddDate(1, 0, 0)

	// Long before: nothing.
	if run, err := e.svc.QueueReminders(ctx); err != nil || run != (ReminderRun{}) {
		t.Fatalf("a year ahead: %+v %v", run, err)
	}
	// 30 days before, twice (and as if on two instances): one reminder.
	e.clock.Set(expires.Add(-30 * 24 * time.Hour))
	run, err := e.svc.QueueReminders(ctx)
	if err != nil || run.Queued != 1 || run.Silenced != 1 || run.NeverTalked != 1 {
		t.Fatalf("30 days before: %+v %v", run, err)
	}
	if again, _ := e.svc.QueueReminders(ctx); again.Queued != 0 {
		t.Fatalf("a second run queued %+v", again)
	}
	m, err := e.svc.Message(ctx, e.notes.Messages()[0])
	if err != nil || m.Kind != KindExpiryReminder || m.Param("points") != 150 || m.UserID != "1" || m.Param("expires") != expires.Unix() {
		t.Fatalf("reminder %+v %v", m, err)
	}
	// The member linked Discord and wrote from there last: the 7-day
	// reminder goes there.
	d := talk("discord", "9")
	code, _, _ := e.ledger.CreateLinkCode(ctx, d, "discord")
	if res, err := e.ledger.Link(ctx, code, a); err != nil || res.Outcome != ledger.Linked {
		t.Fatalf("link: %+v %v", res, err)
	}
	talk("discord", "9")
	e.clock.Set(expires.Add(-7 * 24 * time.Hour))
	if run, err := e.svc.QueueReminders(ctx); err != nil || run.Queued != 1 {
		t.Fatalf("7 days before: %+v %v", run, err)
	}
	msgs := e.notes.Messages()
	if m, _ := e.svc.Message(ctx, msgs[len(msgs)-1]); m.Platform != "discord" || m.UserID != "9" {
		t.Fatalf("7-day reminder to %s:%s, want discord:9", m.Platform, m.UserID)
	}
	// Points earned two days before their expiry (a short promotion): the
	// 7-day reminder at once, the 30-day one is not sent late; then the
	// 1-day one.
	soon := e.clock.Now().Add(2 * 24 * time.Hour)
	b := talk("telegram", "5")
	if _, err := e.ledger.Award(ctx, ledger.Award{Member: ledger.MemberRef{ID: b}, Points: 5, Key: "promo", ExpiresAt: &soon}); err != nil {
		t.Fatal(err)
	}
	if run, _ := e.svc.QueueReminders(ctx); run.Queued != 1 || run.Superseded != 1 {
		t.Fatalf("2 days before the promotion ends: %+v", run)
	}
	e.clock.Set(soon.Add(-12 * time.Hour))
	run, err = e.svc.QueueReminders(ctx)
	if err != nil || run.Queued != 1 || run.Superseded != 0 {
		t.Fatalf("12 hours before: %+v %v", run, err)
	}
	// After the expiry nothing more; notify off only silences reminders.
	e.clock.Set(soon.Add(time.Hour))
	if run, _ := e.svc.QueueReminders(ctx); run.Queued != 0 {
		t.Fatalf("after the expiry: %+v", run)
	}
}

func TestReminders_TwoWorkersRecordEachOnce(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 1, 10, 9, 0, 0, 0, time.UTC)
	e := reminderEnv(t, start)
	ctx := context.Background()
	for i := range 30 {
		p, err := e.ledger.EnsureMember(ctx, "telegram", fmt.Sprint(i+1), "m")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.ledger.Award(ctx, ledger.Award{Member: ledger.MemberRef{ID: p.ID}, Points: 10, Key: fmt.Sprint("k", i)}); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			e.svc.MarkUnreachable(ctx, p.ID) // blocked the bot
		}
	}
	e.clock.Set(start.AddDate(1, 0, 0).Add(-24 * time.Hour))
	var wg sync.WaitGroup
	runs := make(chan ReminderRun, 2)
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			run, err := e.svc.QueueReminders(ctx)
			if err != nil {
				t.Error(err)
			}
			runs <- run
		}()
	}
	wg.Wait()
	close(runs)
	var total ReminderRun
	for r := range runs {
		total.Queued += r.Queued
		total.Blocked += r.Blocked
		total.Superseded += r.Superseded
	}
	if total.Queued != 29 || total.Blocked != 1 || total.Superseded != 60 || len(e.notes.Messages()) != 29 {
		t.Fatalf("two workers: %+v, %d handed on; want 29 queued, 1 blocked, 60 superseded", total, len(e.notes.Messages()))
	}
}
