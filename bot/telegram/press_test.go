package telegram_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/tally-loyalty/tally"
	"github.com/tally-loyalty/tally/bot"
	"github.com/tally-loyalty/tally/ledger"
	"github.com/tally-loyalty/tally/locales"
	"github.com/tally-loyalty/tally/program"
	"github.com/tally-loyalty/tally/tallytest"
	"github.com/tally-loyalty/tally/tallytest/faketelegram"
)

// Ada (42) moderates by the programme file; Bo (77) does not.
var bo = faketelegram.User{ID: 77, FirstName: "Bo", LastName: "Baker", LanguageCode: "en"}

// newButtonEnv is newEnv with a programme naming Ada a moderator, a /post
// command that posts a claim with approve and reject buttons, a /whois
// command that tells whose message it replies to, and the buttons' handlers:
// approve edits the post, reject first asks why.
func newButtonEnv(t *testing.T) *env {
	t.Helper()
	prog, err := program.Parse([]byte("[moderation]\ntelegram_admin_ids = [42]\n"), "test")
	if err != nil {
		t.Fatal(err)
	}
	pool := tallytest.DB(t)
	l := ledger.New(pool, tally.SystemClock{})
	cat, err := locales.Load()
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	router := bot.NewRouter(l, cat, prog, slog.New(slog.NewTextHandler(logs, nil)))
	registerClaimButtons(router)
	return &env{fake: faketelegram.New(t), ledger: l, pool: pool, logs: logs, router: router}
}

func registerClaimButtons(r *bot.Router) {
	r.Register(bot.Command{Name: "post", Desc: "cmd_help", Usage: "/post", Hidden: true,
		Run: func(ctx context.Context, c *bot.Call) (bot.Reply, error) {
			return bot.Reply{Text: "Claim #12 by Bo", Buttons: []bot.Button{
				{Label: "Approve", Data: "approve:12", Style: bot.ButtonSuccess},
				{Label: "Reject", Data: "reject:12", Style: bot.ButtonDanger}}}, nil
		}})
	r.Register(bot.Command{Name: "whois", Desc: "cmd_help", Usage: "/whois", Hidden: true,
		Run: func(ctx context.Context, c *bot.Call) (bot.Reply, error) {
			if c.ReplyTo == nil {
				return bot.Reply{Text: "nobody"}, nil
			}
			return bot.Reply{Text: c.ReplyTo.Platform + ":" + c.ReplyTo.ID + " " + c.ReplyTo.Name}, nil
		}})
	r.RegisterButton(bot.ButtonHandler{Action: "approve", Moderator: true,
		Run: func(ctx context.Context, c *bot.Call, arg string, submit bool, text string) (bot.PressReply, error) {
			return bot.PressReply{Edit: "Claim #" + arg + ": approved by " + c.User.Name, Answer: "done"}, nil
		}})
	r.RegisterButton(bot.ButtonHandler{Action: "reject", Moderator: true,
		Run: func(ctx context.Context, c *bot.Call, arg string, submit bool, text string) (bot.PressReply, error) {
			if !submit {
				return bot.PressReply{Ask: &bot.Ask{Data: "reject:" + arg, Title: "Reject claim #" + arg,
					Prompt: "Why reject claim #" + arg + "? Reply with the reason, or - for none.", Optional: true, MaxLen: 200}}, nil
			}
			if text == "" {
				text = "(no reason)"
			}
			return bot.PressReply{Edit: "Claim #" + arg + " rejected: " + text, Answer: "rejected"}, nil
		}})
}

// post has Ada post a claim in group and returns the bot's message.
func (e *env) post(t *testing.T, group faketelegram.Chat, n int) faketelegram.SentMessage {
	t.Helper()
	e.fake.SendText(ada, group, "/post")
	sent := e.fake.WaitSent(t, n, 5*time.Second)
	return sent[n-1]
}

// waitPrompts waits until n prompts are remembered: the adapter stores a
// prompt right after Telegram accepted it, and a reply faster than that
// (no person is) would find none.
func (e *env) waitPrompts(t *testing.T, n int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		var got int
		e.pool.QueryRow(context.Background(), "SELECT count(*) FROM telegram_prompts").Scan(&got)
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d prompts remembered, want %d", got, n)
		}
	}
}

func TestPress_ModeratorApprovesAndTheButtonsGo(t *testing.T) {
	t.Parallel()
	e := newButtonEnv(t)
	e.start(t, "")
	group := faketelegram.GroupChat(-3003, "Reviews")
	post := e.post(t, group, 1)
	if len(post.Keyboard) != 1 || len(post.Keyboard[0]) != 2 || post.Keyboard[0][0].CallbackData != "approve:12" ||
		post.Keyboard[0][1].CallbackData != "reject:12" || post.Keyboard[0][1].Text != "Reject" {
		t.Fatalf("post keyboard: %+v", post.Keyboard)
	}

	// Bo is no moderator: he is told so and the post stays as it is.
	e.fake.PressButton(bo, post.Message, "approve:12")
	answers := e.fake.WaitCallbackAnswers(t, 1, 5*time.Second)
	if answers[0].Text != "Only moderators can do that." || answers[0].ShowAlert {
		t.Fatalf("answer to a non-moderator: %+v", answers[0])
	}
	time.Sleep(200 * time.Millisecond)
	if n := len(e.fake.Edits()); n != 0 {
		t.Fatalf("a non-moderator's press edited the post: %+v", e.fake.Edits())
	}

	id := e.fake.PressButton(ada, post.Message, "approve:12")
	edits := e.fake.WaitEdits(t, 1, 5*time.Second)
	if edits[0].ChatID != -3003 || edits[0].MessageID != post.MessageID || edits[0].Text != "Claim #12: approved by Ada" || edits[0].Keyboard != nil {
		t.Fatalf("edit after approval: %+v", edits[0])
	}
	if answers = e.fake.WaitCallbackAnswers(t, 2, 5*time.Second); answers[1].Text != "done" {
		t.Fatalf("answer to the moderator: %+v", answers[1])
	}

	// The same callback delivered again is handled once.
	e.fake.Redeliver(id)
	time.Sleep(300 * time.Millisecond)
	if n, m := len(e.fake.Edits()), len(e.fake.CallbackAnswers()); n != 1 || m != 2 {
		t.Fatalf("after redelivery: %d edits, %d answers", n, m)
	}
	if !strings.Contains(e.logs.String(), "delivered again") {
		t.Fatal("the duplicate callback was not noticed")
	}
}

func TestPress_UnknownButtonStillStopsTheSpinner(t *testing.T) {
	t.Parallel()
	e := newButtonEnv(t)
	a := e.start(t, "")
	// A post with a button no handler knows (say, from an older version).
	if err := a.Send(context.Background(), bot.Outgoing{ChatID: "-3004", Text: "old post",
		Buttons: []bot.Button{{Label: "Old", Data: "gone:1"}}}); err != nil {
		t.Fatal(err)
	}
	post := e.fake.WaitSent(t, 1, 5*time.Second)[0]
	e.fake.PressButton(ada, post.Message, "gone:1")
	if a := e.fake.WaitCallbackAnswers(t, 1, 5*time.Second); len(a) != 1 {
		t.Fatalf("answers %+v", a)
	}
	time.Sleep(100 * time.Millisecond)
	if len(e.fake.Edits()) != 0 {
		t.Fatal("an unknown button edited its message")
	}
}

func TestPress_ReasonPromptRoundTrip(t *testing.T) {
	t.Parallel()
	e := newButtonEnv(t)
	e.start(t, "")
	group := faketelegram.Supergroup(-1003003, "Reviews")
	post := e.post(t, group, 1)

	e.fake.PressButton(ada, post.Message, "reject:12")
	if a := e.fake.WaitCallbackAnswers(t, 1, 5*time.Second); a[0].Text != "" {
		t.Fatalf("the press is answered without text: %+v", a[0])
	}
	prompt := e.fake.WaitSent(t, 2, 5*time.Second)[1]
	var markup struct {
		ForceReply  bool   `json:"force_reply"`
		Selective   bool   `json:"selective"`
		Placeholder string `json:"input_field_placeholder"`
	}
	if err := json.Unmarshal(prompt.ReplyMarkup, &markup); err != nil || !markup.ForceReply || !markup.Selective ||
		markup.Placeholder != "Reject claim #12" {
		t.Fatalf("prompt markup %s (%v)", prompt.ReplyMarkup, err)
	}
	if prompt.ChatID != group.ID || prompt.ReplyTo != post.MessageID || !strings.Contains(prompt.Text, "Why reject claim #12?") {
		t.Fatalf("prompt %+v", prompt)
	}
	// In a group, the prompt mentions Ada so the selective force reply reaches her.
	if !strings.HasPrefix(prompt.Text, "Ada: ") || !strings.Contains(prompt.Params["entities"], `"text_mention"`) ||
		!strings.Contains(prompt.Params["entities"], `"id":42`) {
		t.Fatalf("prompt does not mention the moderator: %q %s", prompt.Text, prompt.Params["entities"])
	}

	e.waitPrompts(t, 1)

	// Someone else's reply is no answer (and, not being a command, is ignored).
	e.fake.ReplyTo(bo, prompt.Message, "looks fine to me")
	time.Sleep(300 * time.Millisecond)
	if n, m := len(e.fake.Edits()), len(e.fake.Sent()); n != 0 || m != 2 {
		t.Fatalf("Bo's reply did something: %d edits, %d messages", n, m)
	}

	e.fake.ReplyTo(ada, prompt.Message, "duplicate of #11")
	edit := e.fake.WaitEdits(t, 1, 5*time.Second)[0]
	if edit.ChatID != group.ID || edit.MessageID != post.MessageID || edit.Text != "Claim #12 rejected: duplicate of #11" || edit.Keyboard != nil {
		t.Fatalf("post after the reason: %+v", edit)
	}
	sent := e.fake.WaitSent(t, 3, 5*time.Second)
	if sent[2].Text != "rejected" || sent[2].ChatID != group.ID || sent[2].ReplyTo == 0 || sent[2].ReplyTo == prompt.MessageID {
		t.Fatalf("answer to the moderator: %+v", sent[2])
	}

	// A second reply to the same prompt does nothing.
	e.fake.ReplyTo(ada, prompt.Message, "actually, spam")
	time.Sleep(300 * time.Millisecond)
	if n, m := len(e.fake.Edits()), len(e.fake.Sent()); n != 1 || m != 3 {
		t.Fatalf("a second reply did something: %d edits, %d messages", n, m)
	}
	e.waitPrompts(t, 0)
}

func TestPress_OptionalReasonDashMeansNone(t *testing.T) {
	t.Parallel()
	e := newButtonEnv(t)
	e.start(t, "")
	// In Ada's private chat: no mention needed.
	post := e.post(t, faketelegram.PrivateChat(ada), 1)
	e.fake.PressButton(ada, post.Message, "reject:12")
	prompt := e.fake.WaitSent(t, 2, 5*time.Second)[1]
	if !strings.HasPrefix(prompt.Text, "Why reject") || prompt.Params["entities"] != "" {
		t.Fatalf("private prompt %q %q", prompt.Text, prompt.Params["entities"])
	}
	e.waitPrompts(t, 1)
	e.fake.ReplyTo(ada, prompt.Message, "-")
	if edit := e.fake.WaitEdits(t, 1, 5*time.Second)[0]; edit.Text != "Claim #12 rejected: (no reason)" {
		t.Fatalf("post after '-': %+v", edit)
	}
}

func TestReplyTo_CommandKnowsWhoseMessageItAnswers(t *testing.T) {
	t.Parallel()
	e := newButtonEnv(t)
	e.start(t, "")
	group := faketelegram.GroupChat(-3005, "Fans")
	said := e.fake.SendText(bo, group, "I helped three newcomers today")
	e.fake.ReplyTo(ada, *e.fake.Update(said).Message, "/whois")
	if s := e.fake.WaitSent(t, 1, 5*time.Second)[0]; s.Text != "telegram:77 Bo Baker" {
		t.Fatalf("/whois as a reply: %q", s.Text)
	}
}

func TestSend_ButtonsRateLimitsAndUnreachableRecipients(t *testing.T) {
	t.Parallel()
	e := newButtonEnv(t)
	a := e.start(t, "")
	ctx := context.Background()
	out := bot.Outgoing{UserID: "42", Text: "Your claim was approved", Buttons: []bot.Button{{Label: "History", Data: "history:1"}}}
	if err := a.Send(ctx, out); err != nil {
		t.Fatal(err)
	}
	s := e.fake.WaitSent(t, 1, 5*time.Second)[0]
	if s.ChatID != 42 || s.Text != out.Text || len(s.Keyboard) != 1 || s.Keyboard[0][0].CallbackData != "history:1" {
		t.Fatalf("sent %+v", s)
	}
	if err := a.Send(ctx, bot.Outgoing{ChatID: "-3006", Text: "New claim to review"}); err != nil {
		t.Fatal(err)
	}
	if s := e.fake.WaitSent(t, 2, 5*time.Second)[1]; s.ChatID != -3006 || s.Keyboard != nil {
		t.Fatalf("sent to the group %+v", s)
	}

	e.fake.FailNext("sendMessage", 1, 429, "", 7)
	err := a.Send(ctx, out)
	var rl *bot.RateLimitedError
	if !errors.As(err, &rl) || rl.After != 7*time.Second {
		t.Fatalf("429: %v, want RateLimitedError of 7s", err)
	}
	if n := e.fake.Calls("sendMessage"); n != 3 {
		t.Fatalf("sendMessage called %d times: Send must not retry itself", n)
	}

	for _, c := range []struct {
		code int
		desc string
	}{
		{403, "Forbidden: bot was blocked by the user"},
		{403, "Forbidden: user is deactivated"},
		{400, "Bad Request: chat not found"},
	} {
		e.fake.FailNext("sendMessage", 1, c.code, c.desc, 0)
		err := a.Send(ctx, out)
		if !errors.Is(err, bot.ErrUnreachable) || !strings.Contains(err.Error(), c.desc) {
			t.Errorf("%d %s: %v, want ErrUnreachable naming it", c.code, c.desc, err)
		}
	}
	e.fake.Block(42)
	if err := a.Send(ctx, out); !errors.Is(err, bot.ErrUnreachable) {
		t.Errorf("blocked: %v", err)
	}
	e.fake.FailNext("sendMessage", 1, 400, "Bad Request: message is too long", 0)
	err = a.Send(ctx, out)
	if err == nil || errors.Is(err, bot.ErrUnreachable) || errors.As(err, &rl) || strings.Contains(err.Error(), e.fake.Token()) {
		t.Errorf("other error: %v", err)
	}
	if err := a.Send(ctx, bot.Outgoing{Text: "nowhere"}); err == nil {
		t.Error("a message without recipient was accepted")
	}
	// Send reports; marking the member is the caller's business.
	var unreachable bool
	e.pool.QueryRow(ctx, `SELECT m.unreachable FROM members m JOIN identities i ON i.member_id = m.id
		WHERE i.platform = 'telegram' AND i.user_id = '42'`).Scan(&unreachable)
	if unreachable {
		t.Error("Send marked the member unreachable")
	}
}

func TestPostAndEdit_ReviewPostShowsTheDecision(t *testing.T) {
	t.Parallel()
	e := newButtonEnv(t)
	a := e.start(t, "")
	ctx := context.Background()
	ref, err := a.Post(ctx, bot.Outgoing{ChatID: "-3006", Text: "Claim #1", Buttons: []bot.Button{{Label: "Approve", Data: "approve:1"}}})
	if err != nil {
		t.Fatal(err)
	}
	s := e.fake.WaitSent(t, 1, 5*time.Second)[0]
	if ref != fmt.Sprintf("-3006:%d", s.MessageID) {
		t.Fatalf("ref %q for message %d", ref, s.MessageID)
	}
	if err := a.Edit(ctx, ref, bot.Outgoing{Text: "Claim #1\n✅ Approved by Mo"}); err != nil {
		t.Fatal(err)
	}
	ed := e.fake.WaitEdits(t, 1, 5*time.Second)[0]
	if ed.ChatID != -3006 || ed.MessageID != s.MessageID || ed.Text != "Claim #1\n✅ Approved by Mo" || ed.Keyboard != nil {
		t.Fatalf("edit %+v", ed)
	}
	// The same text again changes nothing and is no error.
	if err := a.Edit(ctx, ref, bot.Outgoing{Text: "Claim #1\n✅ Approved by Mo"}); err != nil {
		t.Fatalf("an edit that changes nothing: %v", err)
	}
	if err := a.Edit(ctx, "nonsense", bot.Outgoing{Text: "x"}); err == nil {
		t.Fatal("a bad reference was accepted")
	}
}
