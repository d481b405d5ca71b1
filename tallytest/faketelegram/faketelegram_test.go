package faketelegram_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-telegram/bot"
	"github.com/go-telegram/bot/models"

	"github.com/tally-loyalty/tally/tallytest"
	"github.com/tally-loyalty/tally/tallytest/faketelegram"
)

// TestMain fails the run when goroutines of the fake, the client or the HTTP
// machinery outlive the tests: every test stops what it started.
func TestMain(m *testing.M) {
	tallytest.RunCheckingLeaks(m, "go-telegram/bot", "tallytest/faketelegram.", "net/http.(*persistConn)",
		"net/http.(*conn).serve", "net/http/httptest")
}

const wait = 5 * time.Second

var (
	ana  = faketelegram.User{ID: 42, FirstName: "Ana", Username: "ana", LanguageCode: "de"}
	bob  = faketelegram.User{ID: 43, FirstName: "Bob", LanguageCode: "en"}
	carl = faketelegram.User{ID: 44, FirstName: "Carl", LanguageCode: "pt-br"}
)

// newBot builds the real client on the fake (bot.New calls getMe). What the
// client reports to its errors handler is logged if the test fails.
func newBot(t *testing.T, fake *faketelegram.Server, opts ...bot.Option) *bot.Bot {
	t.Helper()
	var mu sync.Mutex
	var errs []string
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		if t.Failed() && len(errs) > 0 {
			t.Logf("client errors:\n%s", strings.Join(errs, "\n"))
		}
	})
	all := append([]bot.Option{
		bot.WithServerURL(fake.URL()),
		bot.WithErrorsHandler(func(err error) {
			mu.Lock()
			defer mu.Unlock()
			errs = append(errs, err.Error())
		}),
	}, opts...)
	b, err := bot.New(fake.Token(), all...)
	if err != nil {
		t.Fatalf("bot.New: %v", err)
	}
	return b
}

// startBot starts long polling and stops it when the test ends. Handlers run
// in the polling worker (WithNotAsyncHandlers) so that stopping waits for
// them: Start does not wait for handlers it runs in goroutines of their own.
func startBot(t *testing.T, fake *faketelegram.Server, opts ...bot.Option) *bot.Bot {
	t.Helper()
	b := newBot(t, fake, append([]bot.Option{bot.WithNotAsyncHandlers()}, opts...)...)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		b.Start(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return b
}

// collect is a handler that hands every update to the returned channel.
func collect() (bot.HandlerFunc, <-chan *models.Update) {
	ch := make(chan *models.Update, 64)
	return func(ctx context.Context, _ *bot.Bot, u *models.Update) {
		select {
		case ch <- u:
		case <-ctx.Done():
		}
	}, ch
}

// check reports a handler's error, except the cancellation of a request
// still in flight when the test ended and stopped the bot.
func check(t *testing.T, what string, err error) {
	if err != nil && !errors.Is(err, context.Canceled) {
		t.Errorf("%s: %v", what, err)
	}
}

func next(t *testing.T, ch <-chan *models.Update) *models.Update {
	t.Helper()
	select {
	case u := <-ch:
		return u
	case <-time.After(wait):
		t.Fatal("no update reached the handler")
		return nil
	}
}

func expectNone(t *testing.T, ch <-chan *models.Update, d time.Duration) {
	t.Helper()
	select {
	case u := <-ch:
		t.Fatalf("unexpected update %d reached the handler", u.ID)
	case <-time.After(d):
	}
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// envelope is the Bot API answer as it travels.
type envelope struct {
	OK          bool            `json:"ok"`
	Result      json.RawMessage `json:"result"`
	ErrorCode   int             `json:"error_code"`
	Description string          `json:"description"`
	Parameters  struct {
		RetryAfter int `json:"retry_after"`
	} `json:"parameters"`
}

// call makes a raw form request, as curl would, and returns the status, the
// body and its envelope.
func call(t *testing.T, base, path string, form url.Values) (int, string, envelope) {
	t.Helper()
	resp, err := http.PostForm(base+path, form)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var env envelope
	if err := json.Unmarshal(body, &env); err != nil {
		t.Fatalf("POST %s: body %q: %v", path, body, err)
	}
	return resp.StatusCode, strings.TrimSpace(string(body)), env
}

func method(fake *faketelegram.Server, name string) string {
	return "/bot" + fake.Token() + "/" + name
}

// getUpdates polls raw, to see the queue semantics without a client's own logic.
func getUpdates(t *testing.T, fake *faketelegram.Server, form url.Values) []int64 {
	t.Helper()
	status, body, env := call(t, fake.URL(), method(fake, "getUpdates"), form)
	if status != http.StatusOK || !env.OK {
		t.Fatalf("getUpdates: %d %s", status, body)
	}
	var ups []models.Update
	if err := json.Unmarshal(env.Result, &ups); err != nil {
		t.Fatal(err)
	}
	ids := []int64{}
	for _, u := range ups {
		ids = append(ids, u.ID)
	}
	return ids
}

func TestBot_HandlerReceivesTextAndTheFakeRecordsTheReply(t *testing.T) {
	fake := faketelegram.New(t)
	seen := make(chan *models.Update, 1)
	startBot(t, fake, bot.WithDefaultHandler(func(ctx context.Context, b *bot.Bot, u *models.Update) {
		seen <- u
		_, err := b.SendMessage(ctx, &bot.SendMessageParams{
			ChatID:          u.Message.Chat.ID,
			Text:            "<b>Balance:</b> 120 points",
			ParseMode:       models.ParseModeHTML,
			ReplyParameters: &models.ReplyParameters{MessageID: u.Message.ID},
			ReplyMarkup: &models.InlineKeyboardMarkup{InlineKeyboard: [][]models.InlineKeyboardButton{
				{{Text: "History", CallbackData: "history"}},
			}},
		})
		check(t, "SendMessage", err)
	}))

	id := fake.SendText(ana, faketelegram.PrivateChat(ana), "/balance")

	u := next(t, seen)
	if u.ID != id || u.Message.Text != "/balance" || u.Message.From.LanguageCode != "de" || u.Message.Chat.Type != models.ChatTypePrivate {
		t.Fatalf("handler got update %d %+v, want %d with /balance from a German user", u.ID, u.Message, id)
	}
	want := []models.MessageEntity{{Type: models.MessageEntityTypeBotCommand, Offset: 0, Length: 8}}
	if !slices.Equal(u.Message.Entities, want) {
		t.Errorf("entities = %+v, want %+v", u.Message.Entities, want)
	}

	sent := fake.WaitSent(t, 1, wait)[0]
	if sent.ChatID != ana.ID || sent.Text != "<b>Balance:</b> 120 points" || sent.ParseMode != "HTML" || sent.ReplyTo != u.Message.ID {
		t.Errorf("sent = %+v", sent)
	}
	if len(sent.Keyboard) != 1 || sent.Keyboard[0][0].CallbackData != "history" {
		t.Errorf("keyboard = %+v", sent.Keyboard)
	}
	m := sent.Message
	if m.Text != "Balance: 120 points" || m.From.Username != faketelegram.DefaultBotUsername || m.Chat.FirstName != "Ana" {
		t.Errorf("message as users see it = %+v", m)
	}
	if m.ReplyToMessage == nil || m.ReplyToMessage.From.ID != ana.ID || m.ReplyToMessage.Text != "/balance" {
		t.Errorf("reply_to_message = %+v, want Ana's /balance", m.ReplyToMessage)
	}
}

func TestNew_GetMeReportsTheConfiguredBot(t *testing.T) {
	fake := faketelegram.New(t, faketelegram.BotUsername("LoyaltyBot"))
	b := newBot(t, fake)
	me, err := b.GetMe(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if me.ID != faketelegram.DefaultBotID || me.Username != "LoyaltyBot" || !me.IsBot || b.ID() != faketelegram.DefaultBotID {
		t.Errorf("getMe = %+v, bot id %d", me, b.ID())
	}
	if got := fake.Calls("getMe"); got != 2 { // bot.New checks the token with getMe
		t.Errorf("getMe calls = %d, want 2", got)
	}
}

func TestRequest_WrongTokenIsUnauthorized(t *testing.T) {
	fake := faketelegram.New(t)
	_, err := bot.New("999:wrong", bot.WithServerURL(fake.URL()))
	if !errors.Is(err, bot.ErrorUnauthorized) {
		t.Errorf("bot.New with a wrong token: %v, want ErrorUnauthorized", err)
	}
	status, body, _ := call(t, fake.URL(), "/bot999:wrong/getMe", nil)
	if status != http.StatusUnauthorized || body != `{"ok":false,"error_code":401,"description":"Unauthorized"}` {
		t.Errorf("wrong token: %d %s", status, body)
	}
}

func TestRequest_UnknownMethodIsNotFound(t *testing.T) {
	fake := faketelegram.New(t)
	status, body, _ := call(t, fake.URL(), method(fake, "getChatHistory"), nil)
	if status != http.StatusNotFound || body != `{"ok":false,"error_code":404,"description":"Not Found"}` {
		t.Errorf("unknown method: %d %s", status, body)
	}
	b := newBot(t, fake)
	if _, err := b.GetChat(context.Background(), &bot.GetChatParams{ChatID: ana.ID}); !errors.Is(err, bot.ErrorNotFound) {
		t.Errorf("GetChat on the fake: %v, want ErrorNotFound", err)
	}
}

func TestRequest_AcceptsJSONFormAndQueryParametersCaseInsensitively(t *testing.T) {
	fake := faketelegram.New(t)
	fake.SendText(ana, faketelegram.PrivateChat(ana), "hi")

	body := `{"chat_id":42,"text":"from JSON","reply_markup":{"inline_keyboard":[[{"text":"OK","callback_data":"ok"}]]}}`
	resp, err := http.Post(fake.URL()+method(fake, "sendMessage"), "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("JSON sendMessage: %d", resp.StatusCode)
	}
	if status, body, _ := call(t, fake.URL(), method(fake, "SENDMESSAGE"), url.Values{"chat_id": {"42"}, "text": {"from a form"}}); status != http.StatusOK {
		t.Fatalf("form sendMessage: %d %s", status, body)
	}
	resp, err = http.Get(fake.URL() + method(fake, "sendmessage") + "?chat_id=42&text=from+the+query")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()

	sent := fake.Sent()
	if len(sent) != 3 || sent[0].Text != "from JSON" || sent[0].Keyboard[0][0].CallbackData != "ok" ||
		sent[1].Text != "from a form" || sent[2].Text != "from the query" {
		t.Fatalf("sent = %+v", sent)
	}
	if sent[0].Message.Chat.FirstName != "Ana" {
		t.Errorf("the bot's message should carry the chat Ana's message showed, got %+v", sent[0].Message.Chat)
	}
	if got := fake.Calls("sendMessage"); got != 3 {
		t.Errorf("sendMessage calls = %d, want 3", got)
	}
}

func TestSetMyCommands_RecordsCommandsPerLanguageAndScope(t *testing.T) {
	fake := faketelegram.New(t)
	b := newBot(t, fake)
	ctx := context.Background()
	set := func(lang string, scope models.BotCommandScope, cmds ...models.BotCommand) {
		t.Helper()
		if _, err := b.SetMyCommands(ctx, &bot.SetMyCommandsParams{Commands: cmds, LanguageCode: lang, Scope: scope}); err != nil {
			t.Fatalf("SetMyCommands(%q): %v", lang, err)
		}
	}
	set("", nil, models.BotCommand{Command: "balance", Description: "Your points"})
	set("de", nil, models.BotCommand{Command: "balance", Description: "Deine Punkte"}, models.BotCommand{Command: "redeem", Description: "Einlösen"})
	set("", &models.BotCommandScopeAllGroupChats{}, models.BotCommand{Command: "top", Description: "Leaderboard"})
	set("de", &models.BotCommandScopeChat{ChatID: -4001}, models.BotCommand{Command: "award", Description: "Punkte vergeben"})

	if got := fake.Commands(""); len(got) != 1 || got[0].Description != "Your points" {
		t.Errorf("default commands = %+v", got)
	}
	if got := fake.Commands("de"); len(got) != 2 || got[1].Command != "redeem" {
		t.Errorf("German commands = %+v", got)
	}
	if got := fake.ScopedCommands("all_group_chats", ""); len(got) != 1 || got[0].Command != "top" {
		t.Errorf("group commands = %+v", got)
	}
	if got := fake.ScopedCommands("chat:-4001", "de"); len(got) != 1 || got[0].Command != "award" {
		t.Errorf("chat commands = %+v", got)
	}
	if got := fake.Commands("fr"); got != nil {
		t.Errorf("French commands = %+v, want none", got)
	}

	got, err := b.GetMyCommands(ctx, &bot.GetMyCommandsParams{LanguageCode: "de"})
	if err != nil || len(got) != 2 {
		t.Errorf("GetMyCommands(de) = %+v, %v", got, err)
	}
	if _, err := b.DeleteMyCommands(ctx, &bot.DeleteMyCommandsParams{LanguageCode: "de"}); err != nil {
		t.Fatal(err)
	}
	if got := fake.Commands("de"); got != nil {
		t.Errorf("German commands after deleteMyCommands = %+v", got)
	}
}

func TestSetMyCommands_RefusesWhatTelegramRefuses(t *testing.T) {
	fake := faketelegram.New(t)
	b := newBot(t, fake)
	for _, tc := range []struct {
		name string
		lang string
		cmd  models.BotCommand
		want string
	}{
		{"upper case", "", models.BotCommand{Command: "myBalance", Description: "x"}, "BOT_COMMAND_INVALID"},
		{"leading slash", "", models.BotCommand{Command: "/balance", Description: "x"}, "BOT_COMMAND_INVALID"},
		{"too long", "", models.BotCommand{Command: strings.Repeat("a", 33), Description: "x"}, "BOT_COMMAND_INVALID"},
		{"empty description", "", models.BotCommand{Command: "balance", Description: " "}, "BOT_COMMAND_DESCRIPTION_INVALID"},
		{"region in language code", "pt-BR", models.BotCommand{Command: "balance", Description: "Saldo"}, "invalid language code"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := b.SetMyCommands(context.Background(), &bot.SetMyCommandsParams{Commands: []models.BotCommand{tc.cmd}, LanguageCode: tc.lang})
			if !errors.Is(err, bot.ErrorBadRequest) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want a bad request with %q", err, tc.want)
			}
		})
	}
	if got := fake.Commands(""); got != nil {
		t.Errorf("refused commands were recorded: %+v", got)
	}
}

func TestFailNext_TooManyRequestsComesBackWithRetryAfter(t *testing.T) {
	fake := faketelegram.New(t)
	b := newBot(t, fake)
	fake.FailNext("sendMessage", 1, http.StatusTooManyRequests, "", 7)

	_, err := b.SendMessage(context.Background(), &bot.SendMessageParams{ChatID: ana.ID, Text: "hi"})
	var tooMany *bot.TooManyRequestsError
	if !bot.IsTooManyRequestsError(err) || !errors.As(err, &tooMany) || tooMany.RetryAfter != 7 {
		t.Fatalf("err = %#v, want *bot.TooManyRequestsError with RetryAfter 7", err)
	}
	if _, err := b.SendMessage(context.Background(), &bot.SendMessageParams{ChatID: ana.ID, Text: "hi"}); err != nil {
		t.Fatalf("the call after the injected failure: %v", err)
	}
	if got, sent := fake.Calls("sendMessage"), len(fake.Sent()); got != 2 || sent != 1 {
		t.Errorf("calls = %d, sent = %d; want 2 and 1", got, sent)
	}

	fake.FailNext("getMe", 1, http.StatusTooManyRequests, "", 3)
	_, body, _ := call(t, fake.URL(), method(fake, "getMe"), nil)
	if want := `{"ok":false,"error_code":429,"description":"Too Many Requests: retry after 3","parameters":{"retry_after":3}}`; body != want {
		t.Errorf("429 on the wire = %s, want %s", body, want)
	}
}

func TestFailNext_ForbiddenWrapsErrorForbidden(t *testing.T) {
	fake := faketelegram.New(t)
	b := newBot(t, fake)
	fake.FailNext("sendMessage", 2, http.StatusForbidden, "", 0)
	for range 2 {
		_, err := b.SendMessage(context.Background(), &bot.SendMessageParams{ChatID: ana.ID, Text: "hi"})
		if !errors.Is(err, bot.ErrorForbidden) || !strings.Contains(err.Error(), "bot was blocked by the user") {
			t.Errorf("err = %v, want ErrorForbidden", err)
		}
	}
	if _, err := b.SendMessage(context.Background(), &bot.SendMessageParams{ChatID: ana.ID, Text: "hi"}); err != nil {
		t.Errorf("third call: %v", err)
	}
}

func TestBlock_MessagesToABlockedChatAreForbidden(t *testing.T) {
	fake := faketelegram.New(t)
	b := newBot(t, fake)
	ctx := context.Background()
	fake.Block(ana.ID)
	fake.Block(-4001)

	_, err := b.SendMessage(ctx, &bot.SendMessageParams{ChatID: ana.ID, Text: "Your points expire soon"})
	if !errors.Is(err, bot.ErrorForbidden) || !strings.Contains(err.Error(), "blocked by the user") {
		t.Errorf("to a user who blocked the bot: %v", err)
	}
	_, err = b.SendMessage(ctx, &bot.SendMessageParams{ChatID: -4001, Text: "Leaderboard"})
	if !errors.Is(err, bot.ErrorForbidden) || !strings.Contains(err.Error(), "kicked from the group") {
		t.Errorf("to a group that removed the bot: %v", err)
	}
	if _, err := b.SendMessage(ctx, &bot.SendMessageParams{ChatID: bob.ID, Text: "hi"}); err != nil {
		t.Errorf("to another user: %v", err)
	}
	fake.Unblock(ana.ID)
	if _, err := b.SendMessage(ctx, &bot.SendMessageParams{ChatID: ana.ID, Text: "Welcome back"}); err != nil {
		t.Errorf("after Unblock: %v", err)
	}
	if got := len(fake.Sent()); got != 2 {
		t.Errorf("sent %d messages, want 2", got)
	}
}

func TestGetUpdates_OffsetConfirmsAndLimitAndNegativeOffsetSelect(t *testing.T) {
	fake := faketelegram.New(t)
	chat := faketelegram.PrivateChat(ana)
	id1 := fake.SendText(ana, chat, "one")
	id2 := fake.SendText(ana, chat, "two")
	id3 := fake.SendText(ana, chat, "three")
	if id1 >= id2 || id2 >= id3 {
		t.Fatalf("update ids %d, %d, %d do not increase", id1, id2, id3)
	}

	all := []int64{id1, id2, id3}
	if got := getUpdates(t, fake, nil); !slices.Equal(got, all) {
		t.Fatalf("first poll = %v, want %v", got, all)
	}
	if got := getUpdates(t, fake, nil); !slices.Equal(got, all) {
		t.Fatalf("unconfirmed updates must come again: %v, want %v", got, all)
	}
	if got := getUpdates(t, fake, url.Values{"offset": {fmt.Sprint(id2)}}); !slices.Equal(got, []int64{id2, id3}) {
		t.Fatalf("offset %d = %v", id2, got)
	}
	if got := getUpdates(t, fake, url.Values{"offset": {fmt.Sprint(id1)}}); !slices.Equal(got, []int64{id2, id3}) {
		t.Fatalf("a confirmed update came back: %v", got)
	}
	if got := getUpdates(t, fake, url.Values{"offset": {fmt.Sprint(id3 + 1)}}); len(got) != 0 || len(fake.Pending()) != 0 {
		t.Fatalf("after confirming everything: %v, pending %v", got, fake.Pending())
	}

	id4 := fake.SendText(ana, chat, "four")
	id5 := fake.SendText(ana, chat, "five")
	id6 := fake.SendText(ana, chat, "six")
	if got := getUpdates(t, fake, url.Values{"limit": {"2"}}); !slices.Equal(got, []int64{id4, id5}) {
		t.Fatalf("limit 2 = %v", got)
	}
	if got := getUpdates(t, fake, url.Values{"offset": {"-1"}}); !slices.Equal(got, []int64{id6}) {
		t.Fatalf("offset -1 = %v, want only the last", got)
	}
	if got := fake.Pending(); !slices.Equal(got, []int64{id6}) {
		t.Fatalf("a negative offset forgets the rest: pending %v", got)
	}
}

func TestGetUpdates_LongPollReturnsAsSoonAsAnUpdateArrives(t *testing.T) {
	fake := faketelegram.New(t)
	got := make(chan []int64, 1)
	start := time.Now()
	go func() {
		got <- getUpdates(t, fake, url.Values{"timeout": {"10"}})
	}()
	fake.WaitCalls(t, "getUpdates", 1, wait)
	id := fake.SendText(ana, faketelegram.PrivateChat(ana), "hello")
	select {
	case ids := <-got:
		if !slices.Equal(ids, []int64{id}) {
			t.Errorf("long poll = %v, want [%d]", ids, id)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("long poll took %v", d)
		}
	case <-time.After(wait):
		t.Fatal("long poll did not return")
	}
}

func TestGetUpdates_LongPollAnswersEmptyAfterItsTimeout(t *testing.T) {
	fake := faketelegram.New(t)
	start := time.Now()
	if got := getUpdates(t, fake, url.Values{"timeout": {"1"}}); len(got) != 0 {
		t.Errorf("got %v, want none", got)
	}
	if d := time.Since(start); d < 900*time.Millisecond || d > 3*time.Second {
		t.Errorf("a 1s long poll took %v", d)
	}
}

func TestClose_ReleasesWaitingLongPolls(t *testing.T) {
	fake := faketelegram.New(t)
	done := make(chan struct{})
	go func() {
		defer close(done)
		resp, err := http.PostForm(fake.URL()+method(fake, "getUpdates"), url.Values{"timeout": {"50"}})
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}()
	fake.WaitCalls(t, "getUpdates", 1, wait)
	start := time.Now()
	fake.Close()
	select {
	case <-done:
		if d := time.Since(start); d > time.Second {
			t.Errorf("Close took %v to release the poll", d)
		}
	case <-time.After(wait):
		t.Fatal("Close left the long poll waiting")
	}
}

func TestGetUpdates_ASecondPollerTerminatesTheFirst(t *testing.T) {
	fake := faketelegram.New(t)
	first := make(chan string, 1)
	go func() {
		status, body, _ := call(t, fake.URL(), method(fake, "getUpdates"), url.Values{"timeout": {"10"}})
		first <- fmt.Sprint(status, " ", body)
	}()
	fake.WaitCalls(t, "getUpdates", 1, wait)
	getUpdates(t, fake, nil)
	select {
	case got := <-first:
		if !strings.HasPrefix(got, "409 ") || !strings.Contains(got, "terminated by other getUpdates request") {
			t.Errorf("first poller got %s", got)
		}
	case <-time.After(wait):
		t.Fatal("the first poll was not terminated")
	}
}

func TestBot_ConfirmedUpdatesAreNotDeliveredAgainUntilRedeliver(t *testing.T) {
	fake := faketelegram.New(t)
	handler, seen := collect()
	startBot(t, fake, bot.WithDefaultHandler(handler))
	chat := faketelegram.PrivateChat(ana)

	id1 := fake.SendText(ana, chat, "/earn 10")
	if u := next(t, seen); u.ID != id1 {
		t.Fatalf("got update %d, want %d", u.ID, id1)
	}
	id2 := fake.SendText(ana, chat, "/balance")
	if u := next(t, seen); u.ID != id2 {
		t.Fatalf("got update %d, want %d", u.ID, id2)
	}
	// The client confirms a batch with its next getUpdates.
	eventually(t, "the client to confirm its updates", func() bool { return len(fake.Pending()) == 0 })
	expectNone(t, seen, 200*time.Millisecond)

	fake.Redeliver(id1)
	u := next(t, seen)
	if u.ID != id1 || u.Message.Text != "/earn 10" {
		t.Fatalf("redelivered update = %d %q, want %d /earn 10", u.ID, u.Message.Text, id1)
	}
	eventually(t, "the client to confirm the redelivery", func() bool { return len(fake.Pending()) == 0 })
	expectNone(t, seen, 200*time.Millisecond)

	id3 := fake.SendText(ana, chat, "/balance")
	if u := next(t, seen); u.ID != id3 {
		t.Fatalf("after a redelivery got update %d, want %d", u.ID, id3)
	}
}

func TestBot_UpdatesAnEarlierProcessFetchedButNeverConfirmedComeBack(t *testing.T) {
	fake := faketelegram.New(t)
	id := fake.SendText(ana, faketelegram.PrivateChat(ana), "/earn 10")
	// A process fetched it, then crashed before its next getUpdates.
	if got := getUpdates(t, fake, nil); !slices.Equal(got, []int64{id}) {
		t.Fatalf("crashed process got %v", got)
	}

	t.Run("a restart without a stored offset gets it again", func(t *testing.T) {
		handler, seen := collect()
		startBot(t, fake, bot.WithDefaultHandler(handler))
		if u := next(t, seen); u.ID != id {
			t.Fatalf("got %d, want %d", u.ID, id)
		}
	})
	// The next process handled id2 and stored it, then crashed before confirming.
	id2 := fake.SendText(ana, faketelegram.PrivateChat(ana), "/earn 20")
	if got := getUpdates(t, fake, url.Values{"offset": {fmt.Sprint(id2)}}); !slices.Equal(got, []int64{id2}) {
		t.Fatalf("second crashed process got %v", got)
	}
	t.Run("a restart from the stored offset does not", func(t *testing.T) {
		// WithInitialOffset takes the last handled id: the client polls from the next.
		handler, seen := collect()
		startBot(t, fake, bot.WithDefaultHandler(handler), bot.WithInitialOffset(id2))
		eventually(t, "the restarted client to confirm", func() bool { return len(fake.Pending()) == 0 })
		expectNone(t, seen, 200*time.Millisecond)
	})
}

func TestBot_ButtonPressAnswerAndEdit(t *testing.T) {
	fake := faketelegram.New(t)
	b := startBot(t, fake, bot.WithDefaultHandler(func(ctx context.Context, b *bot.Bot, u *models.Update) {
		switch {
		case u.Message != nil:
			_, err := b.SendMessage(ctx, &bot.SendMessageParams{ChatID: u.Message.Chat.ID, Text: "Redeem 100 points for a coffee?",
				ReplyMarkup: &models.InlineKeyboardMarkup{InlineKeyboard: [][]models.InlineKeyboardButton{{
					{Text: "Yes", CallbackData: "redeem:coffee"}, {Text: "No", CallbackData: "cancel"},
				}}}})
			check(t, "SendMessage", err)
		case u.CallbackQuery != nil:
			q := u.CallbackQuery
			_, err := b.AnswerCallbackQuery(ctx, &bot.AnswerCallbackQueryParams{CallbackQueryID: q.ID, Text: "Redeemed"})
			check(t, "AnswerCallbackQuery", err)
			m := q.Message.Message
			_, err = b.EditMessageText(ctx, &bot.EditMessageTextParams{ChatID: m.Chat.ID, MessageID: m.ID, Text: "Coffee redeemed"})
			check(t, "EditMessageText", err)
		}
	}))
	userMsg := fake.SendText(ana, faketelegram.PrivateChat(ana), "/redeem")
	prompt := fake.WaitSent(t, 1, wait)[0]

	press := fake.PressButton(ana, prompt.Message, "redeem:coffee")
	answers := fake.WaitCallbackAnswers(t, 1, wait)
	edits := fake.WaitEdits(t, 1, wait)

	q := fake.Update(press).CallbackQuery
	if q == nil || q.Data != "redeem:coffee" || q.From.LanguageCode != "de" || q.Message.Message.Text != "Redeem 100 points for a coffee?" {
		t.Fatalf("callback query = %+v", q)
	}
	if answers[0].QueryID != q.ID || answers[0].Text != "Redeemed" {
		t.Errorf("answer = %+v, want one for query %s", answers[0], q.ID)
	}
	e := edits[0]
	if e.ChatID != ana.ID || e.MessageID != prompt.MessageID || e.Text != "Coffee redeemed" || e.Message.EditDate == 0 {
		t.Errorf("edit = %+v", e)
	}
	if e.Keyboard != nil || e.Message.ReplyMarkup != nil {
		t.Errorf("an edit without reply_markup removes the buttons, got %+v", e.Keyboard)
	}

	ctx := context.Background()
	_, err := b.EditMessageText(ctx, &bot.EditMessageTextParams{ChatID: ana.ID, MessageID: prompt.MessageID, Text: "Coffee redeemed"})
	if !errors.Is(err, bot.ErrorBadRequest) || !strings.Contains(err.Error(), "message is not modified") {
		t.Errorf("an edit that changes nothing: %v", err)
	}
	_, err = b.AnswerCallbackQuery(ctx, &bot.AnswerCallbackQueryParams{CallbackQueryID: q.ID})
	if !errors.Is(err, bot.ErrorBadRequest) || !strings.Contains(err.Error(), "query is too old") {
		t.Errorf("a second answer: %v", err)
	}
	_, err = b.EditMessageText(ctx, &bot.EditMessageTextParams{ChatID: ana.ID, MessageID: fake.Update(userMsg).Message.ID, Text: "x"})
	if !errors.Is(err, bot.ErrorBadRequest) || !strings.Contains(err.Error(), "message can't be edited") {
		t.Errorf("editing a user's message: %v", err)
	}
	_, err = b.EditMessageText(ctx, &bot.EditMessageTextParams{ChatID: ana.ID, MessageID: 9999, Text: "x"})
	if !errors.Is(err, bot.ErrorBadRequest) || !strings.Contains(err.Error(), "message to edit not found") {
		t.Errorf("editing a missing message: %v", err)
	}
}

// recordingTB keeps what the fake reports as misuse instead of failing the test.
type recordingTB struct {
	testing.TB
	mu   sync.Mutex
	errs []string
}

func (r *recordingTB) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

func TestPressButton_FailsForAButtonTheMessageDoesNotShow(t *testing.T) {
	rec := &recordingTB{TB: t}
	fake := faketelegram.New(rec)
	b := newBot(t, fake)
	m, err := b.SendMessage(context.Background(), &bot.SendMessageParams{ChatID: ana.ID, Text: "Pick",
		ReplyMarkup: &models.InlineKeyboardMarkup{InlineKeyboard: [][]models.InlineKeyboardButton{{{Text: "A", CallbackData: "a"}}}}})
	if err != nil {
		t.Fatal(err)
	}
	if id := fake.PressButton(ana, *m, "b"); id != 0 || len(rec.errs) != 1 || !strings.Contains(rec.errs[0], `no button with callback_data "b"`) {
		t.Errorf("pressing a missing button: id %d, reports %q", id, rec.errs)
	}
	if id := fake.PressButton(ana, *m, "a"); id == 0 || len(rec.errs) != 1 {
		t.Errorf("pressing a shown button: id %d, reports %q", id, rec.errs)
	}
}

func TestHoldUpdates_PressesOfOneButtonArriveTogetherOnRelease(t *testing.T) {
	fake := faketelegram.New(t)
	b := newBot(t, fake)
	m, err := b.SendMessage(context.Background(), &bot.SendMessageParams{ChatID: ana.ID, Text: "Approve?",
		ReplyMarkup: &models.InlineKeyboardMarkup{InlineKeyboard: [][]models.InlineKeyboardButton{{{Text: "Yes", CallbackData: "yes"}}}}})
	if err != nil {
		t.Fatal(err)
	}
	fake.HoldUpdates()
	id1 := fake.PressButton(ana, *m, "yes")
	id2 := fake.PressButton(bob, *m, "yes")
	if got := getUpdates(t, fake, nil); len(got) != 0 {
		t.Fatalf("held updates were handed out: %v", got)
	}
	if got := fake.Pending(); !slices.Equal(got, []int64{id1, id2}) {
		t.Fatalf("pending while held: %v, want [%d %d]", got, id1, id2)
	}
	got := make(chan []int64, 1)
	go func() {
		got <- getUpdates(t, fake, url.Values{"timeout": {"10"}})
	}()
	fake.WaitCalls(t, "getUpdates", 2, wait)
	fake.ReleaseUpdates()
	select {
	case ids := <-got:
		if !slices.Equal(ids, []int64{id1, id2}) {
			t.Errorf("after release: %v, want both presses [%d %d] in one batch", ids, id1, id2)
		}
	case <-time.After(wait):
		t.Fatal("the waiting long poll did not answer on release")
	}
}

func TestBot_ReceivesNonTextUpdates(t *testing.T) {
	fake := faketelegram.New(t)
	handler, seen := collect()
	startBot(t, fake, bot.WithDefaultHandler(handler))
	group := faketelegram.GroupChat(-4001, "Regulars")

	fake.SendSticker(ana, group, "👍")
	if u := next(t, seen); u.Message.Sticker == nil || u.Message.Sticker.Emoji != "👍" || u.Message.Text != "" {
		t.Errorf("sticker update = %+v", u.Message)
	}
	fake.SendPhoto(ana, group, "my receipt")
	if u := next(t, seen); len(u.Message.Photo) != 3 || u.Message.Caption != "my receipt" {
		t.Errorf("photo update = %+v", u.Message)
	}

	cmdID := fake.SendText(ana, group, "/balance@TallyTestBot")
	u := next(t, seen)
	want := []models.MessageEntity{{Type: models.MessageEntityTypeBotCommand, Offset: 0, Length: len("/balance@TallyTestBot")}}
	if u.Message.Chat.Type != models.ChatTypeGroup || !slices.Equal(u.Message.Entities, want) {
		t.Errorf("group command = %+v", u.Message)
	}
	original := *fake.Update(cmdID).Message

	fake.EditText(original, "/balance@TallyTestBot now")
	if u := next(t, seen); u.EditedMessage == nil || u.EditedMessage.ID != original.ID || u.EditedMessage.Text != "/balance@TallyTestBot now" || u.EditedMessage.EditDate == 0 {
		t.Errorf("edited message update = %+v", u.EditedMessage)
	}

	fake.MembersJoined(group, bob, carl)
	if u := next(t, seen); len(u.Message.NewChatMembers) != 2 || u.Message.NewChatMembers[1].LanguageCode != "pt-br" {
		t.Errorf("join update = %+v", u.Message)
	}

	fake.ReplyTo(bob, original, "me too")
	u = next(t, seen)
	if r := u.Message.ReplyToMessage; r == nil || r.From.ID != ana.ID || r.Text != "/balance@TallyTestBot now" || u.Message.From.ID != bob.ID {
		t.Errorf("reply = %+v, replying to %+v", u.Message, u.Message.ReplyToMessage)
	}

	rawID := fake.SendRawUpdate(map[string]any{"future_update": map[string]any{"x": 1}})
	if u := next(t, seen); u.ID != rawID || u.Message != nil {
		t.Errorf("raw update = %+v", u)
	}

	addedID := fake.BotAdded(ana, group)
	if u := next(t, seen); u.ID != addedID || u.MyChatMember == nil || u.MyChatMember.NewChatMember.Type != models.ChatMemberTypeMember ||
		u.MyChatMember.NewChatMember.Member.User.ID != faketelegram.DefaultBotID || u.MyChatMember.From.ID != ana.ID {
		t.Errorf("my_chat_member update = %+v", u.MyChatMember)
	}

	updID := fake.SendUpdate(models.Update{Message: &models.Message{From: &bob, Chat: group, Date: 1, Text: "via SendUpdate"}})
	if u := next(t, seen); u.ID != updID || u.Message.ID == 0 || u.Message.Text != "via SendUpdate" {
		t.Errorf("SendUpdate update = %+v", u.Message)
	}
}

func TestSendMessage_EnforcesTelegramsTextRules(t *testing.T) {
	fake := faketelegram.New(t)
	b := newBot(t, fake)
	kb := func(data string) *models.InlineKeyboardMarkup {
		return &models.InlineKeyboardMarkup{InlineKeyboard: [][]models.InlineKeyboardButton{{{Text: "Go", CallbackData: data}}}}
	}
	for _, tc := range []struct {
		name   string
		params bot.SendMessageParams
		plain  string // what users see, when accepted
		err    string // part of the description, when refused
	}{
		{"plain text keeps its dots", bot.SendMessageParams{Text: "Total: 5."}, "Total: 5.", ""},
		{"HTML", bot.SendMessageParams{Text: "<b>Ana</b> &amp; <a href=\"https://x.test/?a=1&b=2\">Bob</a>: 1 &lt; 2", ParseMode: models.ParseModeHTML}, "Ana & Bob: 1 < 2", ""},
		{"HTML with a bare <", bot.SendMessageParams{Text: "1 < 2", ParseMode: models.ParseModeHTML}, "", `Unsupported start tag ""`},
		{"HTML with an unknown tag", bot.SendMessageParams{Text: "a<br>b", ParseMode: models.ParseModeHTML}, "", `Unsupported start tag "br"`},
		{"HTML left open", bot.SendMessageParams{Text: "<b>bold", ParseMode: models.ParseModeHTML}, "", "Can't find end tag"},
		{"HTML badly nested", bot.SendMessageParams{Text: "<b><i>x</b></i>", ParseMode: models.ParseModeHTML}, "", "Unmatched end tag"},
		{"MarkdownV2 unescaped dot", bot.SendMessageParams{Text: "Total: 5.", ParseMode: models.ParseModeMarkdown}, "", "Character '.' is reserved"},
		{"MarkdownV2 unescaped dash", bot.SendMessageParams{Text: "*Points* - 5", ParseMode: models.ParseModeMarkdown}, "", "Character '-' is reserved"},
		{"MarkdownV2 escaped", bot.SendMessageParams{Text: bot.EscapeMarkdown("Total: 5.") + " *bold* [site](https://x.test/a_b)", ParseMode: models.ParseModeMarkdown}, "Total: 5. bold site", ""},
		{"MarkdownV2 left open", bot.SendMessageParams{Text: "*bold", ParseMode: models.ParseModeMarkdown}, "", "Can't find end of Bold entity"},
		{"legacy Markdown left open", bot.SendMessageParams{Text: "snake_case", ParseMode: models.ParseModeMarkdownV1}, "", "Can't find end of the entity"},
		{"unknown parse mode", bot.SendMessageParams{Text: "x", ParseMode: "XML"}, "", "unsupported parse_mode"},
		{"only spaces", bot.SendMessageParams{Text: "  \n"}, "", "message text is empty"},
		{"4096 characters", bot.SendMessageParams{Text: strings.Repeat("a", 4096)}, strings.Repeat("a", 4096), ""},
		{"4097 characters", bot.SendMessageParams{Text: strings.Repeat("a", 4097)}, "", "message is too long"},
		{"emoji count twice", bot.SendMessageParams{Text: strings.Repeat("😀", 2049)}, "", "message is too long"},
		{"callback data over 64 bytes", bot.SendMessageParams{Text: "x", ReplyMarkup: kb(strings.Repeat("d", 65))}, "", "BUTTON_DATA_INVALID"},
		{"button without action", bot.SendMessageParams{Text: "x", ReplyMarkup: kb("")}, "", "Text buttons are unallowed"},
		{"reply to a missing message", bot.SendMessageParams{Text: "x", ReplyParameters: &models.ReplyParameters{MessageID: 9999}}, "", "message to be replied not found"},
		{"reply to a missing message allowed", bot.SendMessageParams{Text: "x", ReplyParameters: &models.ReplyParameters{MessageID: 9999, AllowSendingWithoutReply: true}}, "x", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.params
			p.ChatID = ana.ID
			m, err := b.SendMessage(context.Background(), &p)
			if tc.err == "" {
				if err != nil || m.Text != tc.plain {
					t.Errorf("got %q, %v; want %q", m.Text, err, tc.plain)
				}
				return
			}
			if !errors.Is(err, bot.ErrorBadRequest) || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("err = %v, want a bad request with %q", err, tc.err)
			}
		})
	}
}

func TestWebhook_SetInfoConflictAndDelivery(t *testing.T) {
	fake := faketelegram.New(t)
	handler, seen := collect()
	b := newBot(t, fake, bot.WithWebhookSecretToken("s3cret"), bot.WithDefaultHandler(handler), bot.WithNotAsyncHandlers())
	ctx := context.Background()

	_, err := b.SetWebhook(ctx, &bot.SetWebhookParams{URL: "http://tally.test/telegram/webhook"})
	if !errors.Is(err, bot.ErrorBadRequest) || !strings.Contains(err.Error(), "HTTPS URL") {
		t.Errorf("plain http webhook: %v", err)
	}
	if _, err := b.SetWebhook(ctx, &bot.SetWebhookParams{URL: "https://tally.test/telegram/webhook", SecretToken: "s3cret",
		AllowedUpdates: []string{"message", "callback_query"}}); err != nil {
		t.Fatal(err)
	}
	if wh := fake.Webhook(); wh.URL != "https://tally.test/telegram/webhook" || wh.SecretToken != "s3cret" || len(wh.AllowedUpdates) != 2 {
		t.Errorf("webhook = %+v", wh)
	}
	fake.SendText(ana, faketelegram.PrivateChat(ana), "queued")
	info, err := b.GetWebhookInfo(ctx)
	if err != nil || info.URL != "https://tally.test/telegram/webhook" || info.PendingUpdateCount != 1 {
		t.Errorf("webhook info = %+v, %v", info, err)
	}
	status, body, _ := call(t, fake.URL(), method(fake, "getUpdates"), nil)
	if status != http.StatusConflict || !strings.Contains(body, "while webhook is active") {
		t.Errorf("getUpdates with a webhook: %d %s", status, body)
	}

	hook := httptest.NewServer(b.WebhookHandler())
	t.Cleanup(hook.Close)
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		b.StartWebhook(wctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	msg := &models.Message{ID: 1, From: &ana, Chat: faketelegram.PrivateChat(ana), Date: 1, Text: "/balance"}
	resp := fake.PostWebhook(t, hook.URL, "s3cret", models.Update{Message: msg})
	if resp.StatusCode != http.StatusOK {
		t.Errorf("webhook answered %d", resp.StatusCode)
	}
	u := next(t, seen)
	if u.Message.Text != "/balance" || u.ID <= 1 {
		t.Errorf("webhook update = %d %+v; ids should continue after the queued one", u.ID, u.Message)
	}
	fake.PostWebhook(t, hook.URL, "wrong", models.Update{Message: msg})
	expectNone(t, seen, 200*time.Millisecond)

	if _, err := b.DeleteWebhook(ctx, &bot.DeleteWebhookParams{DropPendingUpdates: true}); err != nil {
		t.Fatal(err)
	}
	if wh, pending := fake.Webhook(), fake.Pending(); wh.URL != "" || len(pending) != 0 {
		t.Errorf("after deleteWebhook: %+v, pending %v", wh, pending)
	}
	if got := getUpdates(t, fake, nil); len(got) != 0 {
		t.Errorf("long polling after deleteWebhook: %v", got)
	}
}

func TestBot_ConcurrentUsersAreEachHandledOnce(t *testing.T) {
	fake := faketelegram.New(t)
	var mu sync.Mutex
	seen := map[int64]int{}
	startBot(t, fake, bot.WithWorkers(4), bot.WithDefaultHandler(func(ctx context.Context, b *bot.Bot, u *models.Update) {
		mu.Lock()
		seen[u.ID]++
		mu.Unlock()
		_, err := b.SendMessage(ctx, &bot.SendMessageParams{ChatID: u.Message.Chat.ID, Text: "ok " + u.Message.Text})
		check(t, "SendMessage", err)
	}))
	const users, each = 8, 15
	var wg sync.WaitGroup
	for i := range users {
		wg.Go(func() {
			u := faketelegram.User{ID: int64(1000 + i), FirstName: fmt.Sprint("user", i)}
			for j := range each {
				fake.SendText(u, faketelegram.PrivateChat(u), fmt.Sprint(j))
			}
		})
	}
	wg.Wait()
	sent := fake.WaitSent(t, users*each, wait)
	eventually(t, "every update confirmed", func() bool { return len(fake.Pending()) == 0 })
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != users*each || len(sent) != users*each {
		t.Errorf("handled %d updates, sent %d, want %d", len(seen), len(sent), users*each)
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("update %d handled %d times", id, n)
		}
	}
}
