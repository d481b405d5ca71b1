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
)

type env struct {
	t      *testing.T
	router *bot.Router
	ledger *ledger.Service
	clock  *tallytest.Clock
}

func newEnv(t *testing.T) *env {
	t.Helper()
	t.Parallel()
	clock := tallytest.NewClock(time.Date(2026, 3, 10, 9, 0, 0, 0, time.UTC))
	l := ledger.New(tallytest.DB(t), clock)
	cat, err := locales.Load()
	if err != nil {
		t.Fatal(err)
	}
	prog, err := program.Parse([]byte("[program]\nname = \"Acme Rewards\"\ntimezone = \"Europe/Berlin\"\n"), "test")
	if err != nil {
		t.Fatal(err)
	}
	return &env{t: t, router: bot.NewRouter(l, cat, prog, slog.Default()), ledger: l, clock: clock}
}

// say sends text as user and returns the reply.
func (e *env) say(u bot.User, text string) bot.Reply {
	e.t.Helper()
	cmd, args, ok := bot.ParseText(text, "TallyBot")
	if !ok {
		e.t.Fatalf("%q is no command", text)
	}
	return e.router.Handle(context.Background(), bot.Request{User: u, ChatID: "c", Command: cmd, Args: args})
}

func (e *env) expect(u bot.User, text string, want ...string) bot.Reply {
	e.t.Helper()
	r := e.say(u, text)
	for _, w := range want {
		if !strings.Contains(r.Text, w) {
			e.t.Fatalf("%s %q: reply %q lacks %q", u.Platform, text, r.Text, w)
		}
	}
	return r
}

func (e *env) award(member string, points int64, key string, expires *time.Time) {
	e.t.Helper()
	ref, _ := ledger.ParseMemberRef(member)
	if _, err := e.ledger.Award(context.Background(), ledger.Award{Member: ref, Points: points, Key: key, Reason: "Welcome", ExpiresAt: expires}); err != nil {
		e.t.Fatal(err)
	}
}

func TestParseText(t *testing.T) {
	t.Parallel()
	cases := []struct {
		text, cmd string
		args      []string
		ok        bool
	}{
		{"/balance", "balance", nil, true},
		{"/Balance@TallyBot", "balance", nil, true},
		{"/lang@tallybot de", "lang", []string{"de"}, true},
		{"/lang   pt-BR  ", "lang", []string{"pt-BR"}, true},
		{"/balance@OtherBot", "", nil, false},
		{"hello", "", nil, false},
		{"/", "", nil, false},
		{"/@TallyBot", "", nil, false},
		{"", "", nil, false},
	}
	for _, c := range cases {
		cmd, args, ok := bot.ParseText(c.text, "TallyBot")
		if cmd != c.cmd || ok != c.ok || strings.Join(args, " ") != strings.Join(c.args, " ") {
			t.Errorf("ParseText(%q) = %q %q %v", c.text, cmd, args, ok)
		}
	}
}

func TestBalanceAndHistory_InEnglishAndGerman(t *testing.T) {
	e := newEnv(t)
	ada := bot.User{Platform: "telegram", ID: "42", Name: "Ada", Locale: "en-US"}
	e.expect(ada, "/balance", "no points yet")
	e.expect(ada, "/history", "Nothing here yet")
	expiry := time.Date(2026, 4, 30, 21, 59, 0, 0, time.UTC) // 23:59 in Berlin
	e.award("telegram:42", 1234, "a1", nil)
	e.award("telegram:42", 300, "a2", &expiry)
	r := e.expect(ada, "/balance", "You have 1,534 points.", "300 points expire on Apr 30, 2026")
	if !r.Private {
		t.Fatal("a balance must be private")
	}
	e.expect(ada, "/history", "Your last 2 entries:", "+1,234", "+300", "Welcome")
	e.expect(ada, "/balance extra", "Usage: /balance")

	// The platform says German: the bot answers in German until /lang says otherwise.
	hans := bot.User{Platform: "discord", ID: "7", Name: "Hans", Locale: "de"}
	e.award("discord:7", 1234, "h1", nil)
	e.expect(hans, "/balance", "1.234")
	e.expect(ada, "/lang de")
	e.expect(ada, "/balance", "1.534", "30. Apr")
	e.expect(ada, "/lang en", "English")
	e.expect(ada, "/balance", "1,534")
}

func TestLang_ListsSetsAndRefuses(t *testing.T) {
	e := newEnv(t)
	u := bot.User{Platform: "telegram", ID: "1", Locale: "fr"}
	e.expect(u, "/lang", "pt-BR", "zh-TW", "Deutsch")
	e.expect(u, "/lang klingon", "klingon", "zh-CN")
	e.expect(u, "/lang pt-br")
	r := e.say(u, "/balance")
	if !strings.Contains(r.Text, "pontos") && !strings.Contains(r.Text, "ponto") {
		t.Fatalf("after /lang pt-br: %q", r.Text)
	}
	e.expect(u, "/lang a b", "/lang")
}

func TestNotify(t *testing.T) {
	e := newEnv(t)
	u := bot.User{Platform: "discord", ID: "9", Locale: "en-GB"}
	e.expect(u, "/notify off", "Reminders are off")
	p, _ := e.ledger.EnsureMember(context.Background(), "discord", "9", "")
	if p.Notify {
		t.Fatal("notify still on")
	}
	e.expect(u, "/notify on", "Reminders are on")
	e.expect(u, "/notify maybe", "/notify on")
	e.expect(u, "/notify", "/notify on")
}

func TestLink_AcrossPlatforms(t *testing.T) {
	e := newEnv(t)
	tg := bot.User{Platform: "telegram", ID: "100", Locale: "en"}
	dc := bot.User{Platform: "discord", ID: "200", Locale: "en"}
	e.award("telegram:100", 50, "t", nil)
	e.award("discord:200", 25, "d", nil)
	r := e.expect(tg, "/link", "/link ")
	code := ""
	for _, f := range strings.Fields(r.Text) {
		if len(f) == 8 && strings.ToUpper(f) == f {
			code = f
			break
		}
	}
	if code == "" {
		t.Fatalf("no code in %q", r.Text)
	}
	e.expect(tg, "/link "+code, "this account")
	e.expect(dc, "/link "+code, "75")
	e.expect(dc, "/link "+code, "already linked")
	e.expect(tg, "/balance", "75")
	e.expect(dc, "/link NOPE1234", "wrong or has expired")
}

func TestUnknownCommandsAndHelp(t *testing.T) {
	e := newEnv(t)
	u := bot.User{Platform: "telegram", ID: "5", Locale: "ru"}
	r := e.say(u, "/frobnicate")
	if !strings.Contains(r.Text, "/frobnicate") || !strings.Contains(r.Text, "/help") {
		t.Fatalf("unknown command: %q", r.Text)
	}
	r = e.say(bot.User{Platform: "telegram", ID: "5", Locale: "en"}, "/help")
	for _, cmd := range []string{"/balance", "/history", "/lang", "/notify", "/link", "Acme Rewards"} {
		if !strings.Contains(r.Text, cmd) {
			t.Errorf("help lacks %s: %q", cmd, r.Text)
		}
	}
}

func TestModeratorCommands_FromProgrammeAndPlatform(t *testing.T) {
	t.Parallel()
	l := ledger.New(tallytest.DB(t), tallytest.NewClock(time.Now()))
	cat, _ := locales.Load()
	prog, err := program.Parse([]byte("[moderation]\ntelegram_admin_ids = [111]\ndiscord_role_ids = [\"1400\"]\ndiscord_guild_ids = [\"900\"]\n"), "test")
	if err != nil {
		t.Fatal(err)
	}
	r := bot.NewRouter(l, cat, prog, slog.Default())
	r.Register(bot.Command{Name: "secret", Desc: "cmd_help", Usage: "/secret", Moderator: true,
		Run: func(ctx context.Context, c *bot.Call) (bot.Reply, error) {
			return bot.Reply{Text: "ok, moderator"}, nil
		}})
	ask := func(req bot.Request) string {
		req.Command = "secret"
		return r.Handle(context.Background(), req).Text
	}
	cases := []struct {
		req  bot.Request
		want bool
	}{
		{bot.Request{User: bot.User{Platform: "telegram", ID: "111"}}, true},
		{bot.Request{User: bot.User{Platform: "telegram", ID: "222"}}, false},
		{bot.Request{User: bot.User{Platform: "discord", ID: "111"}}, false},
		{bot.Request{User: bot.User{Platform: "discord", ID: "5"}, Roles: []string{"1400"}}, true},
		{bot.Request{User: bot.User{Platform: "discord", ID: "6"}, Roles: []string{"99"}}, false},
		{bot.Request{User: bot.User{Platform: "discord", ID: "7"}, Moderator: true, Guild: "900"}, true},  // Manage Server here
		{bot.Request{User: bot.User{Platform: "discord", ID: "7"}, Moderator: true, Guild: "666"}, false}, // in a server of their own
		{bot.Request{User: bot.User{Platform: "discord", ID: "7"}, Moderator: true}, false},
	}
	for _, c := range cases {
		got := ask(c.req)
		if (got == "ok, moderator") != c.want {
			t.Errorf("%+v: %q", c.req, got)
		}
		if !c.want && !strings.Contains(got, "moderators") {
			t.Errorf("%+v: refusal %q", c.req, got)
		}
	}
	help := r.Handle(context.Background(), bot.Request{User: bot.User{Platform: "telegram", ID: "222"}, Command: "help"}).Text
	if strings.Contains(help, "/secret") {
		t.Errorf("help shows a moderator command to a member: %q", help)
	}
	help = r.Handle(context.Background(), bot.Request{User: bot.User{Platform: "telegram", ID: "111"}, Command: "help"}).Text
	if !strings.Contains(help, "/secret") {
		t.Errorf("help hides a moderator command from a moderator: %q", help)
	}
}

func TestStartIsHelpAndHidden(t *testing.T) {
	e := newEnv(t)
	u := bot.User{Platform: "telegram", ID: "3", Locale: "en"}
	e.expect(u, "/start", "/balance", "Acme Rewards")
	if e.router.Has("start") == false {
		t.Fatal("start not registered")
	}
	for _, c := range e.router.Commands() {
		if c.Name == "start" {
			t.Fatal("start is listed in menus")
		}
	}
}
