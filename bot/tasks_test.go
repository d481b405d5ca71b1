package bot_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/tally-loyalty/tally/bot"
	"github.com/tally-loyalty/tally/ledger"
	"github.com/tally-loyalty/tally/locales"
	"github.com/tally-loyalty/tally/program"
	"github.com/tally-loyalty/tally/tallytest"
	"github.com/tally-loyalty/tally/tasks"
)

const tasksProgram = `
[program]
name = "Acme Rewards"
timezone = "Europe/Berlin"

[moderation]
telegram_admin_ids = [900, 901]
telegram_review_chat = -1001234
daily_award_limit = 1000

[[tasks]]
key = "checkin"
points = 10
recurrence = "daily"
title = { en = "Daily check-in", de = "Täglicher Check-in" }

[[tasks]]
key = "share"
points = 200
recurrence = "weekly"
approval = "manual"
evidence = "url"
title = { en = "Share a photo", de = "Teile ein Foto" }
`

type taskEnv struct {
	*env
	tasks *tasks.Service
	queue *tallytest.Notifier
}

func newTaskEnv(t *testing.T) *taskEnv {
	t.Helper()
	t.Parallel()
	clock := tallytest.NewClock(time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC))
	l := ledger.New(tallytest.DB(t), clock)
	cat, err := locales.Load()
	if err != nil {
		t.Fatal(err)
	}
	prog, err := program.Parse([]byte(tasksProgram), "test")
	if err != nil {
		t.Fatal(err)
	}
	pool := tallytest.DB(t)
	l = ledger.New(pool, clock)
	svc := tasks.New(pool, l, prog, clock, slog.Default())
	q := &tallytest.Notifier{}
	svc.SetNotifier(q)
	r := bot.NewRouter(l, cat, prog, slog.Default())
	r.UseTasks(svc)
	return &taskEnv{env: &env{t: t, router: r, ledger: l, clock: clock}, tasks: svc, queue: q}
}

var (
	member = bot.User{Platform: "telegram", ID: "1", Name: "Alice", Locale: "de"}
	mod    = bot.User{Platform: "telegram", ID: "900", Name: "Mo", Locale: "en"}
	mod2   = bot.User{Platform: "telegram", ID: "901", Name: "Max", Locale: "en"}
)

func (e *taskEnv) render(id int64) bot.Outgoing {
	e.t.Helper()
	m, err := e.tasks.Message(context.Background(), id)
	if err != nil {
		e.t.Fatal(err)
	}
	out, err := e.router.Render(context.Background(), m)
	if err != nil {
		e.t.Fatal(err)
	}
	return out
}

func TestTasks_ClaimsInTheMembersLanguage(t *testing.T) {
	e := newTaskEnv(t)
	e.expect(member, "/tasks", "Täglicher Check-in", "10", "/claim checkin", "Teile ein Foto", "/claim share")
	r := e.expect(member, "/claim checkin", "10", "Täglicher Check-in")
	if r.Private {
		t.Error("a claim's success is said in the chat, not privately")
	}
	// Midnight in Berlin, in German.
	r = e.expect(member, "/claim checkin", "24. November 2026")
	if !r.Private {
		t.Error("a refusal should be private")
	}
	e.expect(member, "/tasks", "24. November 2026")
	e.expect(member, "/claim share", "/claim share https://")
	e.expect(member, "/claim share not-a-link", "/claim share https://")
	e.expect(member, "/claim nope", "nope", "/tasks")
	e.expect(member, "/claim", "/tasks")
	e.expect(member, "/claim share https://instagram.com/p/1", "Teile ein Foto")
	if err := e.tasks.PayClaim(context.Background(), e.queue.Pays()[0]); err != nil {
		t.Fatal(err)
	}
	out := e.render(last(e.queue.Messages()))
	if out.UserID != "1" || !strings.Contains(out.Text, "+10") || !strings.Contains(out.Text, "Täglicher Check-in") {
		t.Fatalf("payment message %+v", out)
	}
	e.expect(member, "/history", e.router.Catalog().For("de").T("history_kind_task", nil))
}

func TestTasks_ReviewButtons(t *testing.T) {
	e := newTaskEnv(t)
	ctx := context.Background()
	e.say(member, "/claim share https://instagram.com/p/1")
	post := e.render(last(e.queue.Messages()))
	if post.ChatID != "-1001234" || !strings.Contains(post.Text, "Alice") || !strings.Contains(post.Text, "https://instagram.com/p/1") ||
		len(post.Buttons) != 2 || post.Buttons[0].Data != "approve:1" || post.Buttons[1].Data != "reject:1" {
		t.Fatalf("review post %+v", post)
	}
	// Members cannot press.
	if r := e.router.Press(ctx, bot.Request{User: member, ChatID: "-1001234"}, "approve:1"); r.Edit != "" || !strings.Contains(r.Answer, "Moderator") {
		t.Fatalf("member press: %+v", r)
	}
	// A moderator cannot decide their own claim.
	e.say(mod, "/claim share https://example.com/mine")
	if r := e.router.Press(ctx, bot.Request{User: mod, ChatID: "-1001234"}, "approve:2"); r.Edit != "" || !strings.Contains(r.Answer, "own") {
		t.Fatalf("own claim: %+v", r)
	}
	// Review buttons work only in the review chat.
	if r := e.router.Press(ctx, bot.Request{User: mod, ChatID: "-100999"}, "approve:1"); r.Edit != "" {
		t.Fatalf("a press outside the review chat decided: %+v", r)
	}
	r := e.router.Press(ctx, bot.Request{User: mod, ChatID: "-1001234"}, "approve:1")
	if !strings.Contains(r.Edit, "Approved by Mo") || r.Answer == "" {
		t.Fatalf("approve: %+v", r)
	}
	r = e.router.Press(ctx, bot.Request{User: mod2, ChatID: "-1001234"}, "reject:1")
	if r.Ask != nil || !strings.Contains(r.Answer, "Mo") || !strings.Contains(r.Edit, "Approved by Mo") {
		t.Fatalf("late reject: %+v", r)
	}
	if len(e.queue.Pays()) != 1 {
		t.Fatalf("%d payments handed on", len(e.queue.Pays()))
	}
	// Reject asks for a reason first.
	r = e.router.Press(ctx, bot.Request{User: mod2, ChatID: "-1001234"}, "reject:2")
	if r.Ask == nil || r.Ask.Data != "reject:2" || !r.Ask.Optional || r.Edit != "" {
		t.Fatalf("reject press: %+v", r)
	}
	if c, _ := e.tasks.Get(ctx, 2); c.Status != tasks.Pending {
		t.Fatalf("the press alone decided: %s", c.Status)
	}
	r = e.router.Submit(ctx, bot.Request{User: mod2, ChatID: "-1001234"}, "reject:2", "private profile")
	if !strings.Contains(r.Edit, "Rejected by Max: private profile") {
		t.Fatalf("reject: %+v", r)
	}
	out := e.render(last(e.queue.Messages()))
	if out.UserID != "900" || !strings.Contains(out.Text, "private profile") {
		t.Fatalf("rejection message %+v", out)
	}
	if r := e.router.Press(ctx, bot.Request{User: mod, ChatID: "-1001234"}, "explode:1"); !strings.Contains(r.Answer, "button") {
		t.Fatalf("unknown button: %+v", r)
	}
}

func TestTasks_ModeratorCommands(t *testing.T) {
	e := newTaskEnv(t)
	ctx := context.Background()
	do := func(u bot.User, replyTo *bot.User, text string) bot.Reply {
		cmd, args, _ := bot.ParseText(text, "")
		return e.router.Handle(ctx, bot.Request{User: u, Command: cmd, Args: args, ReplyTo: replyTo, Group: true})
	}
	expect := func(r bot.Reply, want ...string) {
		t.Helper()
		for _, w := range want {
			if !strings.Contains(r.Text, w) {
				t.Fatalf("reply %q lacks %q", r.Text, w)
			}
		}
	}
	expect(do(member, nil, "/award 2 10"), "Moderator")
	alice := member
	expect(do(mod, &alice, "/award 300 great answer"), "Alice", "300", "300")
	expect(do(mod, nil, "/award 1 100"), "Alice", "400")
	expect(do(mod, nil, "/award telegram:1 1"), "Alice", "401")
	for _, bad := range []string{"/award 1 abc", "/award 1 0", "/award 1 -5", "/award 1 1.5", "/award 1 +5", "/award 1 99999999999999999999"} {
		expect(do(mod, nil, bad), "1")
		if r := do(mod, nil, bad); !r.Private || !strings.Contains(r.Text, "whole number") {
			t.Fatalf("%s: %q", bad, r.Text)
		}
	}
	expect(do(mod, nil, "/award"), "/award <member>")
	expect(do(mod, nil, "/award 1"), "/award <member>")
	expect(do(mod, nil, "/award 900 5"), "own")
	expect(do(mod, nil, "/award 2 600"), "1,000", "401") // 401 used today, limit 1000
	expect(do(mod, nil, "/deduct 1 1000"), "Alice", "401")
	expect(do(mod, nil, "/deduct 31337 5"), "31337")
	expect(do(mod, nil, "/deduct 1 1 sorry"), "Alice", "400")
	_, bal, err := e.ledger.Member(ctx, ledger.MemberRef{Platform: "telegram", UserID: "1"})
	if err != nil || bal.Available != 400 {
		t.Fatalf("balance %+v %v", bal, err)
	}
	// Discord's member option and mentions name Discord users.
	d := bot.User{Platform: "discord", ID: "555", Name: "Dee"}
	e.say(d, "/help")
	expect(do(mod, nil, "/award <@555> 5"), "Dee", "5")
}

func last(ids []int64) int64 { return ids[len(ids)-1] }
