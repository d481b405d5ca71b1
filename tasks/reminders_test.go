package tasks

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
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

// talkers makes n members who talked to the bot on Telegram (user ids 1..n)
// and awards each the points given (none for 0).
func (e *env) talkers(t *testing.T, n int, points int64) []int64 {
	t.Helper()
	ctx := context.Background()
	var ids []int64
	for i := range n {
		p, err := e.ledger.EnsureMember(ctx, "telegram", fmt.Sprint(i+1), "m")
		if err != nil {
			t.Fatal(err)
		}
		if points > 0 {
			if _, err := e.ledger.Award(ctx, ledger.Award{Member: ledger.MemberRef{ID: p.ID}, Points: points, Key: fmt.Sprint("k", i)}); err != nil {
				t.Fatal(err)
			}
		}
		ids = append(ids, p.ID)
	}
	return ids
}

// dispatch hands recorded reminders on and checks what it did.
func (e *env) dispatch(t *testing.T, want DispatchRun) {
	t.Helper()
	got, err := e.svc.DispatchReminders(context.Background())
	if err != nil || got != want {
		t.Fatalf("dispatch: %+v %v, want %+v", got, err, want)
	}
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
	if run, err := e.svc.RecordReminders(ctx); err != nil || run != (ReminderRun{}) {
		t.Fatalf("a year ahead: %+v %v", run, err)
	}
	// 30 days before, twice (and as if on two instances): one reminder.
	e.clock.Set(expires.Add(-30 * 24 * time.Hour))
	run, err := e.svc.RecordReminders(ctx)
	if err != nil || run.Recorded != 1 || run.Silenced != 1 || run.NeverTalked != 1 {
		t.Fatalf("30 days before: %+v %v", run, err)
	}
	if again, _ := e.svc.RecordReminders(ctx); again.Recorded != 0 {
		t.Fatalf("a second run queued %+v", again)
	}
	if len(e.notes.Messages()) != 0 {
		t.Fatal("recording a reminder sent it before it was dispatched")
	}
	e.dispatch(t, DispatchRun{Handed: 1})
	e.dispatch(t, DispatchRun{})
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
	if run, err := e.svc.RecordReminders(ctx); err != nil || run.Recorded != 1 {
		t.Fatalf("7 days before: %+v %v", run, err)
	}
	e.dispatch(t, DispatchRun{Handed: 1})
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
	if run, _ := e.svc.RecordReminders(ctx); run.Recorded != 1 || run.Superseded != 1 {
		t.Fatalf("2 days before the promotion ends: %+v", run)
	}
	e.dispatch(t, DispatchRun{Handed: 1})
	e.clock.Set(soon.Add(-12 * time.Hour))
	run, err = e.svc.RecordReminders(ctx)
	if err != nil || run.Recorded != 1 || run.Superseded != 0 {
		t.Fatalf("12 hours before: %+v %v", run, err)
	}
	e.dispatch(t, DispatchRun{Handed: 1})
	if n := len(e.notes.Messages()); n != 4 {
		t.Fatalf("%d reminders handed on, want 4", n)
	}
	// After the expiry nothing more; notify off only silences reminders.
	e.clock.Set(soon.Add(time.Hour))
	if run, _ := e.svc.RecordReminders(ctx); run.Recorded != 0 {
		t.Fatalf("after the expiry: %+v", run)
	}
}

func TestReminders_TwoWorkersRecordEachOnce(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 1, 10, 9, 0, 0, 0, time.UTC)
	e := reminderEnv(t, start)
	ctx := context.Background()
	members := e.talkers(t, 30, 10)
	e.svc.MarkUnreachable(ctx, members[0]) // blocked the bot
	e.clock.Set(start.AddDate(1, 0, 0).Add(-24 * time.Hour))
	e.svc.window = 10
	var wg sync.WaitGroup
	runs := make(chan ReminderRun, 2)
	dispatched := make(chan DispatchRun, 2)
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			run, err := e.svc.RecordReminders(ctx)
			if err != nil {
				t.Error(err)
			}
			runs <- run
			d, err := e.svc.DispatchReminders(ctx)
			if err != nil {
				t.Error(err)
			}
			dispatched <- d
		}()
	}
	wg.Wait()
	close(runs)
	close(dispatched)
	var total ReminderRun
	for r := range runs {
		total.Recorded += r.Recorded
		total.Blocked += r.Blocked
		total.Superseded += r.Superseded
	}
	if total.Recorded != 29 || total.Blocked != 1 || total.Superseded != 60 {
		t.Fatalf("two workers: %+v; want 29 recorded, 1 blocked, 60 superseded", total)
	}
	// One dispatcher at a time: the window, once, between them.
	handed := 0
	for d := range dispatched {
		handed += d.Handed
	}
	msgs := e.notes.Messages()
	if distinct(msgs) != len(msgs) || len(msgs) != handed || handed != 10 {
		t.Fatalf("two dispatchers handed on %d (%d messages, %d distinct), want the window of 10", handed, len(msgs), distinct(msgs))
	}
	// As messages go out, the rest follow, each once.
	for range 10 {
		for _, id := range e.notes.Messages() {
			if err := e.svc.Sent(ctx, id, ""); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := e.svc.DispatchReminders(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if msgs := e.notes.Messages(); len(msgs) != 29 || distinct(msgs) != 29 {
		t.Fatalf("%d reminders handed on (%d distinct), want 29", len(msgs), distinct(msgs))
	}
	var pending, queued int
	if err := e.svc.pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE status = 'pending'),
			count(*) FILTER (WHERE status = 'queued' AND outbound_id IS NOT NULL) FROM expiry_reminders`).Scan(&pending, &queued); err != nil {
		t.Fatal(err)
	}
	if pending != 0 || queued != 29 {
		t.Fatalf("reminders left pending %d, queued %d; want 0 and 29", pending, queued)
	}
}

func distinct(ids []int64) int {
	seen := map[int64]bool{}
	for _, id := range ids {
		seen[id] = true
	}
	return len(seen)
}

// TestReminders_DispatchWindow: no more than the window waits to be sent;
// more follow as messages go out.
func TestReminders_DispatchWindow(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 1, 10, 9, 0, 0, 0, time.UTC)
	e := reminderEnv(t, start)
	ctx := context.Background()
	e.talkers(t, 7, 10)
	e.svc.window = 3
	e.clock.Set(start.AddDate(1, 0, 0).Add(-24 * time.Hour))
	if run, err := e.svc.RecordReminders(ctx); err != nil || run.Recorded != 7 {
		t.Fatalf("recorded %+v %v", run, err)
	}
	e.dispatch(t, DispatchRun{Handed: 3})
	e.dispatch(t, DispatchRun{}) // three wait
	msgs := e.notes.Messages()
	e.svc.Sent(ctx, msgs[0], "")
	e.svc.Finish(ctx, msgs[1], Failed, "gone")
	e.dispatch(t, DispatchRun{Handed: 2})
	for _, id := range e.notes.Messages() {
		e.svc.Sent(ctx, id, "")
	}
	e.dispatch(t, DispatchRun{Handed: 2})
	e.dispatch(t, DispatchRun{})
	if msgs := e.notes.Messages(); len(msgs) != 7 || distinct(msgs) != 7 {
		t.Fatalf("handed on %v, want 7 distinct", msgs)
	}
}

// TestReminders_DispatchChecksAgain: what changed between recording a
// reminder and handing it on counts: a later reminder for the instant
// recorded meanwhile, the points expired, notify off, the bot blocked; and a
// message an earlier version recorded under the reminder's key is the
// reminder's.
func TestReminders_DispatchChecksAgain(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 1, 10, 9, 0, 0, 0, time.UTC)
	e := reminderEnv(t, start)
	ctx := context.Background()
	members := e.talkers(t, 5, 0)
	t1 := start.AddDate(0, 6, 0) // the 7-day reminders are recorded
	t2 := t1.Add(25 * time.Hour) // member 0's 1-day reminder too; then the dispatch
	award := func(i int, at time.Time) {
		if _, err := e.ledger.Award(ctx, ledger.Award{Member: ledger.MemberRef{ID: members[i]}, Points: 10, Key: fmt.Sprint(i), ExpiresAt: &at}); err != nil {
			t.Fatal(err)
		}
	}
	award(0, t1.Add(2*24*time.Hour))    // 7 days' reminder at t1, 1 day's at t2
	award(1, start.Add(3*24*time.Hour)) // 1 day's reminder recorded, then the points expire
	for i := 2; i < 5; i++ {
		award(i, t1.Add(7*24*time.Hour))
	}
	e.clock.Set(start.Add(2 * 24 * time.Hour))
	if run, err := e.svc.RecordReminders(ctx); err != nil || run.Recorded != 1 {
		t.Fatalf("recorded %+v %v", run, err)
	}
	e.clock.Set(t1)
	if run, err := e.svc.RecordReminders(ctx); err != nil || run.Recorded != 4 {
		t.Fatalf("recorded %+v %v", run, err)
	}
	e.ledger.SetNotify(ctx, members[2], false)
	e.svc.MarkUnreachable(ctx, members[3])
	var old int64
	if err := e.svc.pool.QueryRow(ctx, `INSERT INTO outbound (dedupe_key, member_id, platform, user_id, locale, kind, params, status, created_at)
		VALUES ($1, $2, 'telegram', '5', 'en', $3, '{}', 'sent', now()) RETURNING id`,
		fmt.Sprintf("remind:%d:%d:7d", members[4], t1.Add(7*24*time.Hour).Unix()), members[4], KindExpiryReminder).Scan(&old); err != nil {
		t.Fatal(err)
	}
	e.clock.Set(t2)
	if run, err := e.svc.RecordReminders(ctx); err != nil || run.Recorded != 1 {
		t.Fatalf("recorded %+v %v", run, err)
	}
	e.dispatch(t, DispatchRun{Handed: 1, Superseded: 1, Late: 1, Silenced: 1, Blocked: 1})
	if msgs := e.notes.Messages(); len(msgs) != 1 {
		t.Fatalf("handed on %v, want member 0's 1-day reminder alone", msgs)
	} else if m, err := e.svc.Message(ctx, msgs[0]); err != nil || m.Member != members[0] || m.Param("points") != 10 {
		t.Fatalf("handed on %+v %v", m, err)
	}
	rows, err := e.svc.pool.Query(ctx, "SELECT member_id, reminder, status, coalesce(outbound_id, 0) FROM expiry_reminders ORDER BY member_id, remind_at")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for rows.Next() {
		var m, ob int64
		var r, st string
		if err := rows.Scan(&m, &r, &st, &ob); err != nil {
			t.Fatal(err)
		}
		if ob == old {
			st += "(earlier)"
		}
		got = append(got, fmt.Sprintf("%d:%s:%s", slices.Index(members, m), r, st))
	}
	want := []string{"0:30d:superseded", "0:7d:superseded", "0:1d:queued", "1:30d:superseded", "1:7d:superseded", "1:1d:late",
		"2:30d:superseded", "2:7d:silenced", "3:30d:superseded", "3:7d:blocked", "4:30d:superseded", "4:7d:queued(earlier)"}
	if !slices.Equal(got, want) {
		t.Fatalf("reminders\n got %v\nwant %v", got, want)
	}
}

// TestReminders_MonthOffsets: a month before is counted on the calendar in
// the programme's timezone, across a DST change and a month end, as the
// programme file's durations are; the due offset with the latest reminder
// time is the one sent, whatever the file's order.
func TestReminders_MonthOffsets(t *testing.T) {
	t.Parallel()
	t.Run("alone", func(t *testing.T) {
		t.Parallel()
		monthReminder(t, `["1mo"]`)
	})
	svc, l, clock, p, expires := monthReminder(t, `["1mo", "30d", "1d"]`)
	ctx := context.Background()
	pool := svc.pool
	prog := svc.prog
	thirty := expires.Add(-30 * 24 * time.Hour)
	clock.Set(thirty)
	// A second member earns points expiring at the same instant: both
	// offsets are due at once, and the 30-day one is the later.
	q, err := l.EnsureMember(ctx, "telegram", "2", "m")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Award(ctx, ledger.Award{Member: ledger.MemberRef{ID: q.ID}, Points: 5, Key: "q", ExpiresAt: &expires}); err != nil {
		t.Fatal(err)
	}
	if run, err := svc.RecordReminders(ctx); err != nil || run != (ReminderRun{Recorded: 2, Superseded: 1}) {
		t.Fatalf("30 days before: %+v %v", run, err)
	}
	var got []string
	rows, _ := pool.Query(ctx, "SELECT member_id, reminder, remind_at, status FROM expiry_reminders ORDER BY member_id, remind_at")
	for rows.Next() {
		var m int64
		var r, st string
		var at time.Time
		if err := rows.Scan(&m, &r, &at, &st); err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%v %s %s %s", m == q.ID, r, at.In(prog.Location).Format("2006-01-02 15:04 MST"), st))
	}
	want := []string{"false 1mo 2027-02-28 10:00 CET pending", "false 30d 2027-03-01 09:00 CET pending",
		"true 1mo 2027-02-28 10:00 CET superseded", "true 30d 2027-03-01 09:00 CET pending"}
	if !slices.Equal(got, want) {
		t.Fatalf("reminders\n got %v\nwant %v", got, want)
	}
	// Both went unsent until the 30-day one was due: the 1-month one is
	// superseded at dispatch.
	rec := &tallytest.Notifier{}
	svc.SetNotifier(rec)
	if run, err := svc.DispatchReminders(ctx); err != nil || run != (DispatchRun{Handed: 2, Superseded: 1}) {
		t.Fatalf("dispatch %+v %v", run, err)
	}
	points := map[int64]int64{}
	for _, id := range rec.Messages() {
		m, err := svc.Message(ctx, id)
		if err != nil || m.Param("expires") != expires.Unix() {
			t.Fatalf("message %+v %v", m, err)
		}
		points[m.Member] = m.Param("points")
	}
	if points[p] != 70 || points[q.ID] != 5 {
		t.Fatalf("points told %v", points)
	}
}

// monthReminder awards points expiring on 31 March 2027, 10:00 in Berlin
// (summer time since the 28th), under a programme with the reminders given,
// the first of them "1mo", and records reminders a second before and at 28
// February, 10:00 winter time: a month before, though 28 February plus a
// month is 28 March.
func monthReminder(t *testing.T, reminders string) (*Service, *ledger.Service, *tallytest.Clock, int64, time.Time) {
	t.Helper()
	prog, err := program.Parse([]byte(`
[program]
timezone = "Europe/Berlin"

[expiry]
policy = "after_earn"
after = "12mo"
reminders = `+reminders+"\n"), "test")
	if err != nil {
		t.Fatal(err)
	}
	pool := tallytest.DB(t)
	clock := tallytest.NewClock(time.Date(2027, 1, 5, 12, 0, 0, 0, time.UTC))
	l := ledger.New(pool, clock)
	svc := New(pool, l, prog, clock, slog.Default())
	ctx := context.Background()
	p, err := l.EnsureMember(ctx, "telegram", "1", "m")
	if err != nil {
		t.Fatal(err)
	}
	expires := time.Date(2027, 3, 31, 10, 0, 0, 0, prog.Location)
	if _, err := l.Award(ctx, ledger.Award{Member: ledger.MemberRef{ID: p.ID}, Points: 70, Key: "k", ExpiresAt: &expires}); err != nil {
		t.Fatal(err)
	}
	month := time.Date(2027, 2, 28, 10, 0, 0, 0, prog.Location)
	if want := prog.Expiry.Reminders[0].Before(expires, prog.Location); !month.Equal(want) {
		t.Fatalf("the programme counts a month before as %v, the test %v", want, month)
	}
	clock.Set(month.Add(-time.Second))
	if run, err := svc.RecordReminders(ctx); err != nil || run != (ReminderRun{}) {
		t.Fatalf("a second before the month: %+v %v", run, err)
	}
	clock.Set(month)
	if run, err := svc.RecordReminders(ctx); err != nil || run != (ReminderRun{Recorded: 1}) {
		t.Fatalf("a month before: %+v %v", run, err)
	}
	return svc, l, clock, p.ID, expires
}

// TestReminders_SameSecondNothingLeftAndBusy: lots expiring within one second
// are one reminder for their sum; points spent between recording and
// dispatch are not reminded of; a second dispatcher steps aside.
func TestReminders_SameSecondNothingLeftAndBusy(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 1, 10, 9, 0, 0, 0, time.UTC)
	e := reminderEnv(t, start)
	ctx := context.Background()
	members := e.talkers(t, 2, 0)
	at := start.Add(10 * 24 * time.Hour)
	for i, a := range []ledger.Award{
		{Member: ledger.MemberRef{ID: members[0]}, Points: 10, Key: "a", ExpiresAt: tallytest.Ptr(at.Add(100 * time.Millisecond))},
		{Member: ledger.MemberRef{ID: members[0]}, Points: 20, Key: "b", ExpiresAt: tallytest.Ptr(at.Add(700 * time.Millisecond))},
		{Member: ledger.MemberRef{ID: members[1]}, Points: 40, Key: "c", ExpiresAt: &at},
	} {
		if _, err := e.ledger.Award(ctx, a); err != nil {
			t.Fatal(i, err)
		}
	}
	e.clock.Set(at.Add(-23 * time.Hour))
	if run, err := e.svc.RecordReminders(ctx); err != nil || run != (ReminderRun{Recorded: 2, Superseded: 4}) {
		t.Fatalf("recorded %+v %v", run, err)
	}
	if _, err := e.ledger.Deduct(ctx, ledger.Deduction{Member: ledger.MemberRef{ID: members[1]}, Points: 40, Key: "spend"}); err != nil {
		t.Fatal(err)
	}
	// Another dispatcher at work (its lock held here): this one steps aside.
	conn, err := e.svc.pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock("+dispatchLock+")"); err != nil {
		t.Fatal(err)
	}
	e.dispatch(t, DispatchRun{Busy: true})
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_unlock("+dispatchLock+")"); err != nil {
		t.Fatal(err)
	}
	e.dispatch(t, DispatchRun{Handed: 1, NothingLeft: 1})
	m, err := e.svc.Message(ctx, e.notes.Messages()[0])
	if err != nil || m.Member != members[0] || m.Param("points") != 30 || m.Param("expires") != at.Unix() {
		t.Fatalf("reminder %+v %v, want 30 points of member %d at %d", m, err, members[0], at.Unix())
	}
}
