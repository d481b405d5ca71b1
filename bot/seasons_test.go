package bot_test

import (
	"context"
	"fmt"
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

const seasonsProgram = `
[program]
name = "Acme Rewards"
timezone = "Europe/Berlin"

[seasons]
cadence = "monthly"
prizes = [500, 300, 100]
name = { en = "Acme League {n}", de = "Acme-Liga {n}" }
telegram_announce_chat = -100777
`

func newSeasonEnv(t *testing.T) *taskEnv {
	t.Helper()
	t.Parallel()
	clock := tallytest.NewClock(time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC))
	cat, err := locales.Load()
	if err != nil {
		t.Fatal(err)
	}
	prog, err := program.Parse([]byte(seasonsProgram), "test")
	if err != nil {
		t.Fatal(err)
	}
	pool := tallytest.DB(t)
	l := ledger.New(pool, clock)
	svc := tasks.New(pool, l, prog, clock, slog.Default())
	q := &tallytest.Notifier{}
	svc.SetNotifier(q)
	r := bot.NewRouter(l, cat, prog, slog.Default())
	r.UseTasks(svc)
	return &taskEnv{env: &env{t: t, router: r, ledger: l, clock: clock}, tasks: svc, queue: q}
}

func TestSeason_JoinScoreAndLeaderboard(t *testing.T) {
	e := newSeasonEnv(t)
	alice := bot.User{Platform: "telegram", ID: "1", Name: "Alice", Locale: "en"}
	bob := bot.User{Platform: "discord", ID: "2", Name: "*bob*_the_@everyone", Locale: "de"}
	e.expect(alice, "/season", "Acme League 1", "Nov 23, 2026", "Dec 1, 2026", "7 days left", "/season join")
	e.expect(alice, "/leaderboard", "Acme League 1", "Nobody")
	e.expect(alice, "/season join", "You're in")
	e.expect(alice, "/season join", "already")
	e.expect(alice, "/season", "You are in, but")
	e.say(bob, "/season join")
	e.award("telegram:1", 120, "a1", nil)
	e.award("discord:2", 300, "b1", nil)
	for i := range 12 {
		u := fmt.Sprintf("telegram:%d", 100+i)
		e.say(bot.User{Platform: "telegram", ID: fmt.Sprint(100 + i), Name: fmt.Sprintf("Member %d", i)}, "/season join")
		e.award(u, int64(200+i), "m"+u, nil)
	}
	e.expect(alice, "/season", "120 points", "rank 14")
	r := e.expect(alice, "/leaderboard", "🥇 *bob*_the_@everyone: 300 points", "🥈 Member 11: 211", "🥉 Member 10: 210", "4. Member 9",
		"You: rank 14 with 120 points")
	if r.Private || r.Embed == nil || !strings.Contains(r.Embed.Footer, "rank 14") {
		t.Fatalf("leaderboard reply %+v", r)
	}
	// On Discord, Markdown in names is escaped.
	r = e.expect(bob, "/leaderboard", "Acme-Liga 1", `🥇 \*bob\*\_the\_\@everyone`)
	if strings.Contains(r.Text, "Du:") || strings.Contains(r.Text, "You:") {
		t.Fatalf("bob is in the top 10, yet gets his own line: %q", r.Text)
	}
	e.expect(alice, "/season leave", "left the season")
	e.expect(alice, "/season leave", "not in")
	e.expect(alice, "/season", "/season join")
	e.expect(alice, "/season dance", "/season join or /season leave")

	// Closing the season: the winners are told, the podium posted.
	ctx := context.Background()
	cur, err := e.tasks.CurrentSeason(ctx)
	if err != nil {
		t.Fatal(err)
	}
	e.clock.Set(*cur.EndsAt)
	res, err := e.tasks.Close(ctx, cur.ID, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(e.queue.Messages()) != 4 {
		t.Fatalf("%d messages, want 3 prizes and 1 announcement", len(e.queue.Messages()))
	}
	prize := e.render(e.queue.Messages()[0])
	if prize.UserID != "2" || !strings.Contains(prize.Text, "Acme-Liga 1") || !strings.Contains(prize.Text, "500") {
		t.Fatalf("prize message %+v", prize)
	}
	post := e.render(e.queue.Messages()[3])
	if post.ChatID != "-100777" || !strings.Contains(post.Text, "Acme League 1") || !strings.Contains(post.Text, "🥇 *bob*") ||
		!strings.Contains(post.Text, "Acme League 2") {
		t.Fatalf("announcement %+v", post)
	}
	if res.Next.Number != 2 {
		t.Fatalf("next %+v", res.Next)
	}
	e.expect(bob, "/history", e.router.Catalog().For("de").T("history_kind_prize", nil))
}
