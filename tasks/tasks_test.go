package tasks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/tally-loyalty/tally"
	"github.com/tally-loyalty/tally/ledger"
	"github.com/tally-loyalty/tally/program"
	"github.com/tally-loyalty/tally/tallytest"
)

const testProgram = `
[program]
timezone = "Europe/Berlin"

[moderation]
telegram_admin_ids = [900, 901, 902]
telegram_review_chat = -1001234
discord_review_channel = "1300000000000000001"
daily_award_limit = 5000

[[tasks]]
key = "checkin"
points = 10
recurrence = "daily"
title = { en = "Daily check-in" }

[[tasks]]
key = "share"
points = 200
recurrence = "weekly"
approval = "manual"
evidence = "url"
title = { en = "Share a photo", de = "Teile ein Foto" }

[[tasks]]
key = "intro"
points = 50
evidence = "text"
title = { en = "Introduce yourself" }

[[tasks]]
key = "early"
points = 100
limit = 2
recurrence = "monthly"
title = { en = "Early bird" }

[[tasks]]
key = "helper"
points = 300
limit = 1
approval = "manual"
title = { en = "Help a newcomer" }

[[tasks]]
key = "winter"
points = 5
starts = 2027-01-01
title = { en = "Winter" }
`

type env struct {
	svc    *Service
	ledger *ledger.Service
	clock  *tallytest.Clock
	notes  *tallytest.Notifier
}

func newEnv(t *testing.T) *env {
	t.Helper()
	prog, err := program.Parse([]byte(testProgram), "test")
	if err != nil {
		t.Fatal(err)
	}
	pool := tallytest.DB(t)
	clock := tallytest.NewClock(time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)) // a Monday
	l := ledger.New(pool, clock)
	svc := New(pool, l, prog, clock, slog.Default())
	rec := &tallytest.Notifier{}
	svc.SetNotifier(rec)
	return &env{svc: svc, ledger: l, clock: clock, notes: rec}
}

func (e *env) member(t *testing.T, userID string) Claimant {
	t.Helper()
	p, err := e.ledger.EnsureMember(context.Background(), "telegram", userID, "user "+userID)
	if err != nil {
		t.Fatal(err)
	}
	return Claimant{Member: p.ID, Name: p.Name, Platform: "telegram", UserID: userID, Locale: "en"}
}

func (e *env) balance(t *testing.T, member int64) int64 {
	t.Helper()
	_, b, err := e.ledger.Member(context.Background(), ledger.MemberRef{ID: member})
	if err != nil {
		t.Fatal(err)
	}
	return b.Available
}

func (e *env) check(t *testing.T) {
	t.Helper()
	rep, err := e.ledger.Check(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() {
		t.Fatalf("ledger invariants broken: %+v", rep.Violations)
	}
}

func TestPeriod(t *testing.T) {
	t.Parallel()
	berlin, _ := time.LoadLocation("Europe/Berlin")
	cases := []struct {
		rec  string
		at   time.Time
		name string
		next time.Time
	}{
		// 23:30 UTC on Nov 22 is already Nov 23 in Berlin.
		{program.Daily, time.Date(2026, 11, 22, 23, 30, 0, 0, time.UTC), "2026-11-23", time.Date(2026, 11, 23, 23, 0, 0, 0, time.UTC)},
		// The day clocks go back lasts 25 hours.
		{program.Daily, time.Date(2026, 10, 25, 12, 0, 0, 0, time.UTC), "2026-10-25", time.Date(2026, 10, 25, 23, 0, 0, 0, time.UTC)},
		{program.Weekly, time.Date(2026, 11, 29, 22, 59, 0, 0, time.UTC), "2026-W48", time.Date(2026, 11, 29, 23, 0, 0, 0, time.UTC)},
		// ISO weeks cross years: Dec 31 2026 is in 2026-W53, Jan 1 2027 too.
		{program.Weekly, time.Date(2027, 1, 1, 12, 0, 0, 0, time.UTC), "2026-W53", time.Date(2027, 1, 3, 23, 0, 0, 0, time.UTC)},
		{program.Monthly, time.Date(2026, 3, 31, 22, 30, 0, 0, time.UTC), "2026-04", time.Date(2026, 4, 30, 22, 0, 0, 0, time.UTC)},
		{program.Once, time.Date(2026, 3, 31, 22, 30, 0, 0, time.UTC), "once", time.Time{}},
	}
	for _, c := range cases {
		name, next := Period(c.rec, c.at, berlin)
		if name != c.name || !next.Equal(c.next) {
			t.Errorf("Period(%s, %v) = %s, %v; want %s, %v", c.rec, c.at, name, next.UTC(), c.name, c.next)
		}
	}
}

func TestClaim_AutoIsPaidOnceAcrossRetriesAndACrash(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	who := e.member(t, "1")
	c, err := e.svc.Claim(ctx, who, "checkin", "")
	if err != nil {
		t.Fatal(err)
	}
	if c.Status != Approved || len(e.notes.Pays()) != 1 || e.notes.Pays()[0] != c.ID {
		t.Fatalf("claim %+v, pays %v", c, e.notes.Pays())
	}
	// The worker dies after the ledger commit, before the job completes.
	crashes := 1
	e.svc.afterPay = func(int64) error {
		if crashes > 0 {
			crashes--
			return errors.New("killed")
		}
		return nil
	}
	if err := e.svc.PayClaim(ctx, c.ID); err == nil {
		t.Fatal("the simulated crash returned no error")
	}
	if got := e.balance(t, who.Member); got != 10 {
		t.Fatalf("balance after the crash %d, want 10 (the ledger committed)", got)
	}
	for range 3 { // the retry, and duplicates of the job
		if err := e.svc.PayClaim(ctx, c.ID); err != nil {
			t.Fatal(err)
		}
	}
	if got := e.balance(t, who.Member); got != 10 {
		t.Fatalf("balance %d after retries, want 10", got)
	}
	paid, err := e.svc.Get(ctx, c.ID)
	if err != nil || paid.PaidTxn == 0 {
		t.Fatalf("claim not recorded as paid: %+v %v", paid, err)
	}
	if len(e.notes.Messages()) != 1 {
		t.Fatalf("%d approval messages handed on, want 1", len(e.notes.Messages()))
	}
	m, err := e.svc.Message(ctx, e.notes.Messages()[0])
	if err != nil || m.Kind != KindClaimApproved || m.UserID != "1" || m.Param("balance") != 10 || m.Param("claim") != c.ID {
		t.Fatalf("approval message %+v %v", m, err)
	}
	e.check(t)
}

func TestClaim_OncePerPeriodNamingTheNextOne(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	who := e.member(t, "1")
	if _, err := e.svc.Claim(ctx, who, "CheckIn", ""); err != nil {
		t.Fatal(err)
	}
	_, err := e.svc.Claim(ctx, who, "checkin", "")
	r, ok := AsRefused(err)
	if !ok || r.Why != RefusedAlready || !r.Next.Equal(time.Date(2026, 11, 23, 23, 0, 0, 0, time.UTC)) {
		t.Fatalf("second claim: %v (%+v)", err, r)
	}
	e.clock.Set(time.Date(2026, 11, 23, 23, 0, 0, 0, time.UTC)) // midnight in Berlin
	if _, err := e.svc.Claim(ctx, who, "checkin", ""); err != nil {
		t.Fatalf("claim on the next day: %v", err)
	}
	// A task claimed once is never open again for that member.
	if _, err := e.svc.Claim(ctx, who, "intro", "Hi, I am new here"); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(400 * 24 * time.Hour)
	_, err = e.svc.Claim(ctx, who, "intro", "again")
	if r, ok := AsRefused(err); !ok || r.Why != RefusedAlready || !r.Next.IsZero() {
		t.Fatalf("second intro: %v", err)
	}
}

func TestClaim_Refusals(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	who := e.member(t, "1")
	cases := []struct {
		task, evidence, why string
	}{
		{"nope", "", RefusedUnknown},
		{"winter", "", RefusedClosed},
		{"share", "", RefusedEvidence},
		{"share", "instagram.com/p/1", RefusedEvidence},
		{"share", "ftp://example.com/x", RefusedEvidence},
		{"share", "https://", RefusedEvidence},
		{"share", "javascript:alert(1)", RefusedEvidence},
		{"share", "https://user:pw@example.com/", RefusedEvidence},
		{"intro", "", RefusedEvidence},
		{"intro", string(make([]byte, MaxEvidence+1)), RefusedEvidence},
		{"intro", "bell\a", RefusedEvidence},
	}
	for _, c := range cases {
		_, err := e.svc.Claim(ctx, who, c.task, c.evidence)
		if r, ok := AsRefused(err); !ok || r.Why != c.why {
			t.Errorf("claim %s %q: %v, want %s", c.task, c.evidence, err, c.why)
		}
	}
	if b, _ := e.svc.Board(ctx, who.Member); len(b) != 5 {
		t.Fatalf("board has %d tasks, want the 5 open ones", len(b))
	}
	for _, s := range mustBoard(t, e, who.Member) {
		if s.Claim != nil {
			t.Fatalf("refused claims left a claim: %+v", s.Claim)
		}
	}
}

func mustBoard(t *testing.T, e *env, member int64) []TaskState {
	t.Helper()
	b, err := e.svc.Board(context.Background(), member)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestClaim_SameMemberAtOnceGetsOneClaim(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	who := e.member(t, "1")
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok, already := 0, 0
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := e.svc.Claim(context.Background(), who, "checkin", "")
			mu.Lock()
			defer mu.Unlock()
			if r, isRefused := AsRefused(err); isRefused && r.Why == RefusedAlready {
				already++
			} else if err == nil {
				ok++
			} else {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if ok != 1 || already != 15 {
		t.Fatalf("%d claims accepted, %d refused; want 1 and 15", ok, already)
	}
}

func TestClaim_LimitHoldsUnderConcurrentClaims(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok, full := 0, 0
	for i := range 8 {
		who := e.member(t, fmt.Sprint(i+1))
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := e.svc.Claim(context.Background(), who, "early", "")
			mu.Lock()
			defer mu.Unlock()
			if r, isRefused := AsRefused(err); isRefused && r.Why == RefusedFull {
				full++
			} else if err == nil {
				ok++
			} else {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if ok != 2 || full != 6 {
		t.Fatalf("%d approved, %d refused as full; want 2 and 6", ok, full)
	}
	b := mustBoard(t, e, e.member(t, "99").Member)
	for _, s := range b {
		if s.Task.Key == "early" && !s.Full {
			t.Fatal("board does not show the task as full")
		}
	}
}

func TestDecide_ThreeModeratorsAtOncePayOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	who := e.member(t, "1")
	c, err := e.svc.Claim(ctx, who, "share", " https://instagram.com/p/abc ")
	if err != nil {
		t.Fatal(err)
	}
	if c.Status != Pending || c.Evidence != "https://instagram.com/p/abc" || len(e.notes.Pays()) != 0 {
		t.Fatalf("manual claim %+v, pays %v", c, e.notes.Pays())
	}
	// Posted to both review chats.
	if len(e.notes.Messages()) != 2 {
		t.Fatalf("%d review posts, want 2", len(e.notes.Messages()))
	}
	for _, id := range e.notes.Messages() {
		m, err := e.svc.Message(ctx, id)
		if err != nil || m.Kind != KindReview || m.ChatID == "" || m.Param("claim") != c.ID {
			t.Fatalf("review post %+v %v", m, err)
		}
	}
	var wg sync.WaitGroup
	decided := make(chan Decision, 3)
	for i := range 3 {
		mod := e.member(t, fmt.Sprint(900+i))
		wg.Add(1)
		go func() {
			defer wg.Done()
			d, err := e.svc.Decide(ctx, c.ID, Actor{Member: mod.Member, Name: mod.Name, Platform: "telegram"}, true, "")
			if err != nil {
				t.Error(err)
			}
			decided <- d
		}()
	}
	wg.Wait()
	close(decided)
	first := 0
	for d := range decided {
		if d.Decided {
			first++
		}
		if d.Claim.Status != Approved || d.Claim.DecidedByName == "" {
			t.Errorf("decision shows %+v", d.Claim)
		}
	}
	if first != 1 || len(e.notes.Pays()) != 1 {
		t.Fatalf("%d first decisions, %d payments handed on; want 1 and 1", first, len(e.notes.Pays()))
	}
	// Every moderator's job runs (duplicates): one payment.
	for range 3 {
		if err := e.svc.PayClaim(ctx, c.ID); err != nil {
			t.Fatal(err)
		}
	}
	if got := e.balance(t, who.Member); got != 200 {
		t.Fatalf("balance %d, want 200", got)
	}
	// A late reject changes nothing.
	mod := e.member(t, "901")
	d, err := e.svc.Decide(ctx, c.ID, Actor{Member: mod.Member, Name: mod.Name}, false, "too late")
	if err != nil || d.Decided || d.Claim.Status != Approved {
		t.Fatalf("late reject: %+v %v", d, err)
	}
	entries, _, err := e.svc.Audit(ctx, 0, 10)
	if err != nil || len(entries) != 1 || entries[0].Action != "approve" || entries[0].Claim != c.ID {
		t.Fatalf("audit %+v %v", entries, err)
	}
	e.check(t)
}

func TestDecide_RejectOwnClaimAndLimit(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	mod := e.member(t, "900")
	actor := Actor{Member: mod.Member, Name: mod.Name, Platform: "telegram"}
	own, err := e.svc.Claim(ctx, mod, "share", "https://example.com/mine")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Decide(ctx, own.ID, actor, true, ""); !isRefused(err, RefusedOwn) {
		t.Fatalf("deciding one's own claim: %v", err)
	}
	who := e.member(t, "1")
	c, err := e.svc.Claim(ctx, who, "share", "https://example.com/1")
	if err != nil {
		t.Fatal(err)
	}
	d, err := e.svc.Decide(ctx, c.ID, actor, false, "the link is private")
	if err != nil || !d.Decided || d.Claim.Status != Rejected || d.Claim.Reason != "the link is private" {
		t.Fatalf("reject: %+v %v", d, err)
	}
	last := e.notes.Messages()[len(e.notes.Messages())-1]
	if m, err := e.svc.Message(ctx, last); err != nil || m.Kind != KindClaimRejected || m.UserID != "1" {
		t.Fatalf("rejection message %+v %v", m, err)
	}
	// A rejected claim may be made again in the same week.
	if _, err := e.svc.Claim(ctx, who, "share", "https://example.com/2"); err != nil {
		t.Fatalf("claim after a rejection: %v", err)
	}
	// helper has a limit of one: the second approval finds it full.
	h1, _ := e.svc.Claim(ctx, who, "helper", "")
	other := e.member(t, "2")
	h2, _ := e.svc.Claim(ctx, other, "helper", "")
	if d, err := e.svc.Decide(ctx, h1.ID, actor, true, ""); err != nil || d.Full {
		t.Fatalf("first helper approval: %+v %v", d, err)
	}
	d, err = e.svc.Decide(ctx, h2.ID, actor, true, "")
	if err != nil || !d.Full || d.Claim.Status != Rejected {
		t.Fatalf("approval over the limit: %+v %v", d, err)
	}
}

func isRefused(err error, why string) bool {
	r, ok := AsRefused(err)
	return ok && r.Why == why
}

func TestModerator_AwardDeductAndRefusals(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	mod := e.member(t, "900")
	actor := Actor{Member: mod.Member, Name: mod.Name, Platform: "telegram"}
	target := ledger.MemberRef{Platform: "telegram", UserID: "77"} // not a member yet
	res, err := e.svc.ModeratorAward(ctx, actor, target, 3000, "great answer")
	if err != nil || res.Balance != 3000 {
		t.Fatalf("award: %+v %v", res, err)
	}
	if _, err := e.svc.ModeratorAward(ctx, actor, ledger.MemberRef{Platform: "telegram", UserID: "900"}, 10, ""); !isRefused(err, RefusedSelf) {
		t.Fatalf("self award: %v", err)
	}
	for _, p := range []int64{0, -5, ledger.MaxPoints + 1} {
		if _, err := e.svc.ModeratorAward(ctx, actor, target, p, ""); tally.ErrorCode(err) != tally.EINVALID {
			t.Fatalf("award of %d: %v", p, err)
		}
	}
	_, err = e.svc.ModeratorAward(ctx, actor, target, 2001, "")
	var lim *LimitRefused
	if !errors.As(err, &lim) || lim.Used != 3000 || lim.Limit != 5000 || !lim.Reset.Equal(time.Date(2026, 11, 23, 23, 0, 0, 0, time.UTC)) {
		t.Fatalf("award over the limit: %v (%+v)", err, lim)
	}
	if _, err := e.svc.ModeratorAward(ctx, actor, target, 2000, ""); err != nil {
		t.Fatalf("award up to the limit: %v", err)
	}
	if _, err := e.svc.ModeratorDeduct(ctx, actor, target, 6000, "fraud"); tally.ErrorCode(err) != tally.EINSUFFICIENT {
		t.Fatalf("deduct more than held: %v", err)
	}
	if res, err := e.svc.ModeratorDeduct(ctx, actor, target, 1000, "fraud"); err != nil || res.Balance != 4000 {
		t.Fatalf("deduct: %+v %v", res, err)
	}
	if _, err := e.svc.ModeratorDeduct(ctx, actor, ledger.MemberRef{Platform: "telegram", UserID: "12345"}, 1, ""); tally.ErrorCode(err) != tally.ENOTFOUND {
		t.Fatalf("deduct from nobody: %v", err)
	}
	// The next day in Berlin, the limit starts over.
	e.clock.Set(time.Date(2026, 11, 23, 23, 0, 1, 0, time.UTC))
	if _, err := e.svc.ModeratorAward(ctx, actor, target, 5000, ""); err != nil {
		t.Fatalf("award the next day: %v", err)
	}
	entries, more, err := e.svc.Audit(ctx, 0, 3)
	if err != nil || !more || len(entries) != 3 {
		t.Fatalf("audit page: %d entries, more %v, %v", len(entries), more, err)
	}
	want := []string{"award ok", "deduct ok", "deduct insufficient_points"}
	for i, en := range entries {
		if got := en.Action + " " + en.Outcome; got != want[i] {
			t.Errorf("audit entry %d: %s, want %s", i, got, want[i])
		}
	}
	rest, more, err := e.svc.Audit(ctx, entries[2].ID, 100)
	if err != nil || more || len(rest) != 4 {
		t.Fatalf("second page: %d entries, more %v, %v", len(rest), more, err)
	}
	outcomes := ""
	for _, en := range rest {
		outcomes += en.Outcome + " "
	}
	// Newest first: 2000 ok, 2001 over the limit, self, 3000 ok; invalid
	// points and unknown members never reach the log.
	if outcomes != "ok limit self ok " {
		t.Fatalf("older outcomes %q", outcomes)
	}
	e.check(t)
}

func TestModerator_DailyLimitUnderConcurrentAwards(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	mod := e.member(t, "900")
	actor := Actor{Member: mod.Member, Name: mod.Name, Platform: "telegram"}
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok, limited := 0, 0
	for i := range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := e.svc.ModeratorAward(context.Background(), actor, ledger.MemberRef{Platform: "telegram", UserID: fmt.Sprint(100 + i)}, 1000, "")
			var lim *LimitRefused
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				ok++
			case errors.As(err, &lim):
				limited++
			default:
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if ok != 5 || limited != 7 {
		t.Fatalf("%d awards paid, %d refused; want 5 and 7 under a limit of 5000", ok, limited)
	}
	e.check(t)
}

func TestModerator_PendingActionIsSettledNeverPaid(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	mod := e.member(t, "900")
	pending := func(target string) int64 {
		var id int64
		err := e.svc.pool.QueryRow(ctx, `INSERT INTO audit_log (at, actor_kind, actor_member, action, target, points, reason, outcome, day)
			VALUES ($1, 'moderator', $2, 'award', $3, 700, 'crash', 'pending', $4) RETURNING id`,
			e.clock.Now(), mod.Member, target, e.svc.day(e.clock.Now())).Scan(&id)
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	// A crash after the action was recorded, before the ledger call: the
	// moderator saw an error and may award again, so it is never paid later.
	before := pending("telegram:55")
	// A crash after the ledger call, before the outcome was written.
	after := pending("telegram:56")
	if _, err := e.ledger.AwardInternal(ctx, ledger.KindAward, ledger.Award{Member: ledger.MemberRef{Platform: "telegram", UserID: "56"},
		Points: 700, Reason: "crash", Key: ActionKey(after)}); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(2 * time.Minute)
	due, err := e.svc.Overdue(ctx, time.Minute, 10)
	if err != nil || len(due.Actions) != 2 {
		t.Fatalf("overdue %+v %v", due, err)
	}
	for range 2 {
		for _, id := range due.Actions {
			if err := e.svc.FinishAction(ctx, id); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, _, err := e.ledger.Member(ctx, ledger.MemberRef{Platform: "telegram", UserID: "55"}); tally.ErrorCode(err) != tally.ENOTFOUND {
		t.Fatalf("the interrupted award was paid: %v", err)
	}
	entries, _, _ := e.svc.Audit(ctx, 0, 10)
	got := map[int64]string{}
	for _, en := range entries {
		got[en.ID] = en.Outcome
	}
	if got[before] != "interrupted" || got[after] != "ok" {
		t.Fatalf("outcomes %v", got)
	}
	if due, _ := e.svc.Overdue(ctx, time.Minute, 10); len(due.Actions) != 0 {
		t.Fatalf("still overdue: %+v", due)
	}
}
