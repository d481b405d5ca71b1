package telegram_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-telegram/bot/models"
	"github.com/jackc/pgx/v5/pgxpool"

	"net/http/httptest"

	"github.com/tally-loyalty/tally"
	"github.com/tally-loyalty/tally/bot"
	"github.com/tally-loyalty/tally/bot/telegram"
	"github.com/tally-loyalty/tally/ledger"
	"github.com/tally-loyalty/tally/locales"
	"github.com/tally-loyalty/tally/program"
	"github.com/tally-loyalty/tally/tallytest"
	"github.com/tally-loyalty/tally/tallytest/faketelegram"
)

// syncBuffer collects log output written from the adapter's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type env struct {
	fake   *faketelegram.Server
	ledger *ledger.Service
	pool   *pgxpool.Pool
	router *bot.Router
	logs   *syncBuffer
}

func newEnv(t testing.TB) *env {
	t.Helper()
	pool := tallytest.DB(t)
	l := ledger.New(pool, tally.SystemClock{})
	cat, err := locales.Load()
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	return &env{fake: faketelegram.New(t), ledger: l, pool: pool, logs: logs,
		router: bot.NewRouter(l, cat, program.Example(), log)}
}

// start runs an adapter until the test ends; webhookSecret "" means long polling.
func (e *env) start(t testing.TB, webhookSecret string) *telegram.Adapter {
	t.Helper()
	a, stop := e.startStoppable(t, webhookSecret)
	t.Cleanup(stop)
	return a
}

// startStoppable runs an adapter until stop is called.
func (e *env) startStoppable(t testing.TB, webhookSecret string) (*telegram.Adapter, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	a, err := telegram.New(ctx, telegram.Config{Token: e.fake.Token(), APIURL: e.fake.URL(), WebhookSecret: webhookSecret,
		Router: e.router, DB: e.pool, Log: slog.New(slog.NewTextHandler(e.logs, nil)),
		Unreachable: func(ctx context.Context, platform, userID string) {
			e.ledger.MarkUnreachable(ctx, platform, userID, true)
		}})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { a.Run(ctx); close(done) }()
	var once sync.Once
	return a, func() {
		once.Do(func() {
			cancel()
			<-done
			time.Sleep(50 * time.Millisecond) // handlers the library still runs finish their replies
		})
	}
}

func (e *env) award(t testing.TB, member string, points int64) {
	t.Helper()
	ref, _ := ledger.ParseMemberRef(member)
	if _, err := e.ledger.Award(context.Background(), ledger.Award{Member: ref, Points: points, Key: member}); err != nil {
		t.Fatal(err)
	}
}

var ada = faketelegram.User{ID: 42, FirstName: "Ada", LanguageCode: "de"}

func TestLongPolling_PrivateAndGroupCommands(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.award(t, "telegram:42", 1234)
	a := e.start(t, "")
	if a.Username() != faketelegram.DefaultBotUsername {
		t.Fatalf("username %q", a.Username())
	}
	asked := e.fake.SendText(ada, faketelegram.PrivateChat(ada), "/balance")
	sent := e.fake.WaitSent(t, 1, 5*time.Second)
	if !strings.Contains(sent[0].Text, "1.234") || sent[0].ChatID != 42 || sent[0].ReplyTo == 0 {
		t.Fatalf("private /balance in German: %+v", sent[0])
	}
	group := faketelegram.GroupChat(-1001, "Acme fans")
	e.fake.SendText(ada, group, "/history@OtherBot")                       // another bot's: ignored
	e.fake.SendText(ada, group, "hello everyone")                          // not a command
	e.fake.SendSticker(ada, group, "👍")                                    // no text
	e.fake.EditText(*e.fake.Update(asked).Message, "/balance edited")      // an edit
	e.fake.MembersJoined(group, faketelegram.User{ID: 7, FirstName: "Bo"}) // a join
	e.fake.SendText(ada, group, "/lang@"+faketelegram.DefaultBotUsername+" ja")
	// A private answer asked for in a group goes to the private chat; the
	// group is told where, in the member's language.
	sent = e.fake.WaitSent(t, 3, 5*time.Second)
	if sent[1].ChatID != 42 || !strings.Contains(sent[1].Text, "日本語") {
		t.Fatalf("group /lang ja, private answer: %+v", sent[1])
	}
	if sent[2].ChatID != -1001 || !strings.Contains(sent[2].Text, "プライベートメッセージ") {
		t.Fatalf("group /lang ja, note in the group: %+v", sent[2])
	}
	e.fake.SendText(ada, group, "/warn") // another bot's command, not addressed to us
	time.Sleep(300 * time.Millisecond)
	if n := len(e.fake.Sent()); n != 3 {
		t.Fatalf("%d messages sent; the ignored updates were answered: %+v", n, e.fake.Sent())
	}
	e.fake.SendText(ada, faketelegram.PrivateChat(ada), "/frobnicate")
	if s := e.fake.WaitSent(t, 4, 5*time.Second); !strings.Contains(s[3].Text, "/frobnicate") || !strings.Contains(s[3].Text, "/help") {
		t.Fatalf("unknown command: %+v", s[3])
	}
}

func TestRegisterCommands_DefaultAndEveryLanguage(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.start(t, "")
	if err := a.RegisterCommands(context.Background()); err != nil {
		t.Fatal(err)
	}
	for lang, want := range map[string]string{"": "Show what I can do", "de": "Zeigt", "ja": "", "pt": "", "zh": ""} {
		cmds := e.fake.Commands(lang)
		if len(cmds) != 6 {
			t.Fatalf("language %q: %d commands %+v", lang, len(cmds), cmds)
		}
		if want != "" && !strings.Contains(cmds[0].Description, want) {
			t.Errorf("language %q: help is %q", lang, cmds[0].Description)
		}
		if lang != "" && cmds[0].Description == e.fake.Commands("")[0].Description {
			t.Errorf("language %q: description not translated", lang)
		}
	}
}

// TestRedelivery_AnsweredOnceAlsoAfterRestart: an update Telegram delivers
// again is not answered again, by the same process or a restarted one.
func TestRedelivery_AnsweredOnceAlsoAfterRestart(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, stop := e.startStoppable(t, "")
	t.Cleanup(stop)
	id := e.fake.SendText(ada, faketelegram.PrivateChat(ada), "/balance")
	e.fake.WaitSent(t, 1, 5*time.Second)
	e.fake.Redeliver(id)
	time.Sleep(500 * time.Millisecond)
	// The process stops; a new one on the same database gets the update again.
	stop()
	e.start(t, "")
	e.fake.Redeliver(id)
	time.Sleep(500 * time.Millisecond)
	if n := len(e.fake.Sent()); n != 1 {
		t.Fatalf("update answered %d times", n)
	}
	if !strings.Contains(e.logs.String(), "delivered again") {
		t.Fatalf("the duplicate was not noticed:\n%s", e.logs.String())
	}
}

func TestSending_RetryAfter429AndBlockedUser(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.start(t, "")
	e.fake.FailNext("sendMessage", 1, 429, "Too Many Requests: retry after 1", 1)
	start := time.Now()
	e.fake.SendText(ada, faketelegram.PrivateChat(ada), "/help")
	e.fake.WaitSent(t, 1, 10*time.Second)
	if waited := time.Since(start); waited < 900*time.Millisecond {
		t.Fatalf("reply sent %v after a 429 with retry_after 1", waited)
	}
	bo := faketelegram.User{ID: 77, FirstName: "Bo", LanguageCode: "en"}
	e.fake.Block(77)
	e.fake.SendText(bo, faketelegram.PrivateChat(bo), "/balance")
	deadline := time.Now().Add(5 * time.Second)
	for {
		var unreachable bool
		e.pool.QueryRow(context.Background(), `SELECT m.unreachable FROM members m JOIN identities i ON i.member_id = m.id
			WHERE i.platform = 'telegram' AND i.user_id = '77'`).Scan(&unreachable)
		if unreachable {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a user who blocked the bot was not marked unreachable")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if strings.Contains(e.logs.String(), e.fake.Token()) {
		t.Fatalf("the token appears in the log:\n%s", e.logs.String())
	}
}

func TestWebhook_SecretAndMalformedBodies(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.start(t, "s3cret-webhook-token")
	srv := httptest.NewServer(a.WebhookHandler())
	t.Cleanup(srv.Close)
	msg := models.Message{ID: 5, Date: int(time.Now().Unix()), From: &ada, Chat: faketelegram.PrivateChat(ada), Text: "/balance",
		Entities: []models.MessageEntity{{Type: models.MessageEntityTypeBotCommand, Offset: 0, Length: 8}}}
	if r := e.fake.PostWebhook(t, srv.URL, "wrong", models.Update{Message: &msg}); r.StatusCode != 401 {
		t.Fatalf("wrong secret: %d", r.StatusCode)
	}
	if r := e.fake.PostWebhook(t, srv.URL, "", models.Update{Message: &msg}); r.StatusCode != 401 {
		t.Fatalf("no secret: %d", r.StatusCode)
	}
	for _, body := range []string{`{not json`, `[]`, `{}`} {
		if r := e.fake.PostWebhookRaw(t, srv.URL, "s3cret-webhook-token", []byte(body)); r.StatusCode != 400 {
			t.Fatalf("body %q: %d", body, r.StatusCode)
		}
	}
	if len(e.fake.Sent()) != 0 {
		t.Fatal("a refused request was answered")
	}
	if r := e.fake.PostWebhook(t, srv.URL, "s3cret-webhook-token", models.Update{Message: &msg}); r.StatusCode != 200 {
		t.Fatalf("good update: %d", r.StatusCode)
	}
	if s := e.fake.WaitSent(t, 1, 5*time.Second); !strings.Contains(s[0].Text, "Punkte") {
		t.Fatalf("webhook /balance: %+v", s[0])
	}
}

// TestEveryCommand_InItalian runs each command through long polling.
func TestEveryCommand_InItalian(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.award(t, "telegram:55", 4321)
	e.start(t, "")
	u := faketelegram.User{ID: 55, FirstName: "Gio", LanguageCode: "it"}
	cases := []struct{ text, want string }{
		{"/help", "/balance"},
		{"/balance", "4.321"},
		{"/history", "+4.321"},
		{"/notify off", "disattivat"},
		{"/notify on", "Promemoria attivi"},
		{"/link", "/link "},
		{"/link AAAA2222", "/link"},
		{"/lang", "pt-BR"},
		{"/balance extra", "/balance"},
	}
	for i, c := range cases {
		e.fake.SendText(u, faketelegram.PrivateChat(u), c.text)
		sent := e.fake.WaitSent(t, i+1, 5*time.Second)
		if got := sent[i].Text; !strings.Contains(got, c.want) || strings.Contains(got, "error_") {
			t.Errorf("%s: %q (want %q)", c.text, got, c.want)
		}
	}
}

// TestGroup_LinkCodeNeverReachesTheGroup: a /link code asked for in a group is
// sent privately; when the member has no private chat with the bot, the
// group only gets a hint and the code goes nowhere.
func TestGroup_LinkCodeNeverReachesTheGroup(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.start(t, "")
	group := faketelegram.GroupChat(-2002, "Fans")
	bo := faketelegram.User{ID: 88, FirstName: "Bo", LanguageCode: "en"}
	e.fake.SendText(bo, group, "/link")
	sent := e.fake.WaitSent(t, 2, 5*time.Second)
	if sent[0].ChatID != 88 || !strings.Contains(sent[0].Text, "/link ") {
		t.Fatalf("the code did not go privately: %+v", sent[0])
	}
	if sent[1].ChatID != -2002 || strings.Contains(sent[1].Text, "/link ") {
		t.Fatalf("group note: %+v", sent[1])
	}
	cy := faketelegram.User{ID: 99, FirstName: "Cy", LanguageCode: "de"}
	e.fake.Block(99) // Cy never opened a private chat with the bot
	e.fake.SendText(cy, group, "/balance")
	sent = e.fake.WaitSent(t, 3, 5*time.Second)
	if sent[2].ChatID != -2002 || !strings.Contains(sent[2].Text, "privat") {
		t.Fatalf("hint in the group: %+v", sent[2])
	}
	time.Sleep(200 * time.Millisecond)
	for _, m := range e.fake.Sent() {
		if m.ChatID == -2002 && strings.Contains(m.Text, "Punkte") {
			t.Fatalf("a balance was posted in the group: %+v", m)
		}
	}
	e.fake.SendText(cy, faketelegram.PrivateChat(cy), "/start")
	// The private chat is blocked in the fake, so nothing arrives; /start
	// itself is covered in the router tests. The token must not be logged.
	if strings.Contains(e.logs.String(), e.fake.Token()) {
		t.Fatal("token in the log")
	}
}

func TestNew_UnreachableAPIKeepsTheTokenOutOfErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, err := telegram.New(context.Background(), telegram.Config{Token: e.fake.Token(), APIURL: "http://127.0.0.1:1",
		Router: e.router, DB: e.pool, Log: slog.Default()})
	if err == nil || strings.Contains(err.Error(), e.fake.Token()) || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Fatalf("error %v: want one naming the server without the token", err)
	}
}
