package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bwmarrin/discordgo"
	"github.com/go-telegram/bot/models"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tally-loyalty/tally/tallytest"
	"github.com/tally-loyalty/tally/tallytest/fakediscord"
	"github.com/tally-loyalty/tally/tallytest/faketelegram"
)

// End-to-end tests of community tasks, claims and moderation (issue 5): the
// real binary runs serve against both fake platforms, members claim tasks
// and moderators decide them in chat, and the queue pays the claims and
// tells the members.

// The programme these tests run: two Telegram moderators, a Discord
// moderator role and the programme's Discord server, review chats on both
// platforms, a daily award limit, one automatic and one reviewed task.
const (
	communityID  = int64(-1001000000100) // where members claim on Telegram
	reviewChatID = int64(-1001000000777) // moderation.telegram_review_chat
	dcGuild      = "444000000000000001"  // moderation.discord_guild_ids
	dcModRole    = "555000000000000001"  // moderation.discord_role_ids
	dcReviewChan = "666000000000000001"  // moderation.discord_review_channel
)

var tasksProgramme = fmt.Sprintf(`[program]
name = "E2E Rewards"
timezone = "Europe/Berlin"

[moderation]
telegram_admin_ids = [%d, %d]
telegram_review_chat = %d
discord_role_ids = [%q]
discord_guild_ids = [%q]
discord_review_channel = %q
daily_award_limit = 1000

[[tasks]]
key = "checkin"
points = 10
recurrence = "daily"
approval = "auto"
evidence = "none"
title = { en = "Daily check-in", de = "Täglich einchecken" }

[[tasks]]
key = "share"
points = 200
recurrence = "weekly"
approval = "manual"
evidence = "url"
title = { en = "Share a photo", de = "Teile ein Foto" }
`, alice.ID, bruno.ID, reviewChatID, dcModRole, dcGuild, dcReviewChan)

var (
	// Alice and Bruno moderate on Telegram by telegram_admin_ids.
	alice = faketelegram.User{ID: 1001, FirstName: "Alice", LastName: "Mod", LanguageCode: "en"}
	bruno = faketelegram.User{ID: 1002, FirstName: "Bruno", LanguageCode: "en"}
	// Mia moderates on Discord by her role in the programme's server.
	mia = fakediscord.Invoker{UserID: "330000000000000001", Username: "mia", GlobalName: "Mia", GuildID: dcGuild,
		Roles: []string{dcModRole}}

	community = faketelegram.Supergroup(communityID, "Community")
)

// patience bounds every wait for something serve does.
const patience = 10 * time.Second

// tasksEnv is a running serve with the programme above and what the test
// reads it through.
type tasksEnv struct {
	base    string // the HTTP server, http://host:port
	dbURL   string // the database serve uses
	redis   string // serve's own Redis database
	tg      *faketelegram.Server
	dc      *fakediscord.Server
	db      *pgxpool.Pool // on dbURL
	started time.Time     // just before serve started
}

// startTasks runs serve with the programme above and the admin token on a
// database and Redis of the test's own; with chats, also on both fake
// platforms (Telegram long polling, Discord gateway with the bot token, which
// the review posts and direct messages need).
func startTasks(t *testing.T, chats bool) *tasksEnv {
	t.Helper()
	return startServe(t, tasksProgramme, chats)
}

// startServe runs serve with the programme given, as startTasks does.
func startServe(t *testing.T, programme string, chats bool) *tasksEnv {
	t.Helper()
	prog := filepath.Join(t.TempDir(), "programme.toml")
	if err := os.WriteFile(prog, []byte(programme), 0o600); err != nil {
		t.Fatal(err)
	}
	e := &tasksEnv{}
	var env []string
	if chats {
		// The fakes come first, as in chatEnv: fakediscord.New stores its
		// server after the server started, and only the test's own network
		// writes that follow (the database and Redis set-up) show the race
		// detector that this happened before serve's connections reach it.
		e.tg, e.dc = faketelegram.New(t), fakediscord.New(t)
		env = append(env, "TELEGRAM_BOT_TOKEN="+e.tg.Token(), "TELEGRAM_API_URL="+e.tg.URL(),
			"DISCORD_BOT_TOKEN="+e.dc.BotToken(), "DISCORD_APP_ID="+e.dc.AppID(),
			"DISCORD_API_URL="+e.dc.URL(), "DISCORD_GATEWAY_URL="+e.dc.GatewayURL())
	}
	e.dbURL, e.redis = tallytest.DatabaseURL(t), tallytest.Redis(t)
	addr := freeAddr(t)
	e.base = "http://" + addr
	env = append(env, "DATABASE_URL="+e.dbURL, "REDIS_URL="+e.redis, "TALLY_HTTP_ADDR="+addr,
		"TALLY_ADMIN_TOKEN="+adminToken, "TALLY_PROGRAM="+prog)
	e.started = time.Now()
	p := start(t, env, "serve")
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("serve output:\n%s", p.out.String())
		}
	})
	waitHealthy(t, addr, p)
	if chats {
		e.dc.WaitReady(t, patience)
	}
	pool, err := pgxpool.New(context.Background(), e.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	e.db = pool
	return e
}

// waitUntil checks cond every 10 ms until it holds; the test fails after
// patience, saying what it waited for and, from state, what there was.
func waitUntil(t *testing.T, what string, cond func() bool, state func() string) {
	t.Helper()
	for deadline := time.Now().Add(patience); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			msg := fmt.Sprintf("no %s after %v", what, patience)
			if state != nil {
				msg += "; " + state()
			}
			t.Fatal(msg)
		}
	}
}

// ---- The admin API and the database ----

// get calls the admin API with the token and decodes the JSON answer into v.
func (e *tasksEnv) get(t *testing.T, path string, v any) int {
	t.Helper()
	code, body := call(t, "GET", e.base+path, "")
	if code == http.StatusOK && v != nil {
		if err := json.Unmarshal([]byte(body), v); err != nil {
			t.Fatalf("GET %s: %v in %s", path, err, body)
		}
	}
	return code
}

// available is a member's available balance by the admin API; -1 when the
// member does not exist.
func (e *tasksEnv) available(t *testing.T, member string) int64 {
	t.Helper()
	var m struct {
		Balance struct {
			Available int64 `json:"available"`
		} `json:"balance"`
	}
	switch code := e.get(t, "/v1/members/"+member, &m); code {
	case http.StatusOK:
		return m.Balance.Available
	case http.StatusNotFound:
		return -1
	default:
		t.Fatalf("GET /v1/members/%s: %d", member, code)
		return 0
	}
}

// waitAvailable waits until a member's available balance is want.
func (e *tasksEnv) waitAvailable(t *testing.T, member string, want int64) {
	t.Helper()
	var got int64
	waitUntil(t, fmt.Sprintf("balance of %d for %s", want, member), func() bool {
		got = e.available(t, member)
		return got == want
	}, func() string { return fmt.Sprintf("it is %d", got) })
}

// count runs a query that returns one number.
func (e *tasksEnv) count(t *testing.T, sql string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := e.db.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

// text runs a query that returns one text.
func (e *tasksEnv) text(t *testing.T, sql string, args ...any) string {
	t.Helper()
	var s string
	if err := e.db.QueryRow(context.Background(), sql, args...).Scan(&s); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return s
}

// settle waits until the queue has done all work recorded so far: every
// approved claim paid and every message sent or given up.
func (e *tasksEnv) settle(t *testing.T) {
	t.Helper()
	waitUntil(t, "settled queue", func() bool {
		return e.count(t, "SELECT count(*) FROM claims WHERE status = 'approved' AND paid_txn IS NULL") == 0 &&
			e.count(t, "SELECT count(*) FROM outbound WHERE status = 'pending'") == 0
	}, nil)
}

func (e *tasksEnv) claimStatus(t *testing.T, id int64) string {
	t.Helper()
	return e.text(t, "SELECT status FROM claims WHERE id = $1", id)
}

// ---- Telegram ----

// tgSay injects a message from a user and returns it as the bot receives it.
func (e *tasksEnv) tgSay(from faketelegram.User, chat faketelegram.Chat, text string) models.Message {
	return *e.tg.Update(e.tg.SendText(from, chat, text)).Message
}

// tgWait waits for a message the bot sent that match accepts.
func (e *tasksEnv) tgWait(t *testing.T, what string, match func(faketelegram.SentMessage) bool) faketelegram.SentMessage {
	t.Helper()
	var got faketelegram.SentMessage
	waitUntil(t, what, func() bool {
		for _, m := range e.tg.Sent() {
			if match(m) {
				got = m
				return true
			}
		}
		return false
	}, func() string { return "the bot sent:\n" + tgSent(e.tg.Sent()) })
	return got
}

func tgSent(sent []faketelegram.SentMessage) string {
	var b strings.Builder
	for _, m := range sent {
		fmt.Fprintf(&b, "  chat %d, message %d, reply to %d: %q\n", m.ChatID, m.MessageID, m.ReplyTo, m.Text)
	}
	return b.String()
}

// tgCount counts the messages the bot sent that match accepts.
func (e *tasksEnv) tgCount(match func(faketelegram.SentMessage) bool) int {
	n := 0
	for _, m := range e.tg.Sent() {
		if match(m) {
			n++
		}
	}
	return n
}

// tgReplyTo waits for the bot's reply to message m.
func (e *tasksEnv) tgReplyTo(t *testing.T, m models.Message) faketelegram.SentMessage {
	t.Helper()
	return e.tgWait(t, fmt.Sprintf("reply to %q", m.Text), func(s faketelegram.SentMessage) bool {
		return s.ChatID == m.Chat.ID && s.ReplyTo == m.ID
	})
}

// tgDM waits for a private message to user that contains want.
func (e *tasksEnv) tgDM(t *testing.T, user faketelegram.User, want string) faketelegram.SentMessage {
	t.Helper()
	return e.tgWait(t, fmt.Sprintf("private message to %s with %q", user.FirstName, want), func(s faketelegram.SentMessage) bool {
		return s.ChatID == user.ID && strings.Contains(s.Text, want)
	})
}

// tgDMs counts the private messages to user that contain want.
func (e *tasksEnv) tgDMs(user faketelegram.User, want string) int {
	return e.tgCount(func(s faketelegram.SentMessage) bool { return s.ChatID == user.ID && strings.Contains(s.Text, want) })
}

// tgAnswer waits for the bot's answer to the callback query of a press.
func (e *tasksEnv) tgAnswer(t *testing.T, press int64) faketelegram.CallbackAnswer {
	t.Helper()
	q := e.tg.Update(press).CallbackQuery
	if q == nil {
		t.Fatalf("update %d is no button press", press)
	}
	var got faketelegram.CallbackAnswer
	waitUntil(t, "answer to callback query "+q.ID, func() bool {
		for _, a := range e.tg.CallbackAnswers() {
			if a.QueryID == q.ID {
				got = a
				return true
			}
		}
		return false
	}, nil)
	return got
}

// tgEdits returns the edits of a message the bot sent.
func (e *tasksEnv) tgEdits(post faketelegram.SentMessage) []faketelegram.Edit {
	var out []faketelegram.Edit
	for _, ed := range e.tg.Edits() {
		if ed.ChatID == post.ChatID && ed.MessageID == post.MessageID {
			out = append(out, ed)
		}
	}
	return out
}

// tgWaitEdit waits for the first edit of post.
func (e *tasksEnv) tgWaitEdit(t *testing.T, post faketelegram.SentMessage) faketelegram.Edit {
	t.Helper()
	waitUntil(t, fmt.Sprintf("edit of message %d", post.MessageID), func() bool { return len(e.tgEdits(post)) > 0 }, nil)
	return e.tgEdits(post)[0]
}

// claimOf reads the claim id from a review post's buttons, which must be
// Approve and Reject of that claim.
func claimOf(t *testing.T, labels, data []string) int64 {
	t.Helper()
	if len(data) != 2 || !strings.HasPrefix(data[0], "approve:") {
		t.Fatalf("review post buttons %q %q, want approve:<claim> and reject:<claim>", labels, data)
	}
	id, err := strconv.ParseInt(strings.TrimPrefix(data[0], "approve:"), 10, 64)
	if err != nil || data[1] != "reject:"+strconv.FormatInt(id, 10) || !slices.Equal(labels, []string{"Approve", "Reject"}) {
		t.Fatalf("review post buttons %q %q, want Approve approve:<claim> and Reject reject:<claim>", labels, data)
	}
	return id
}

// tgClaimShare has member claim the reviewed task with evidence in the
// community group and returns the claim's id and its review post in the
// Telegram review chat.
func (e *tasksEnv) tgClaimShare(t *testing.T, member faketelegram.User, evidence string) (int64, faketelegram.SentMessage) {
	t.Helper()
	cmd := e.tgSay(member, community, "/claim share "+evidence)
	if r := e.tgReplyTo(t, cmd); r.Text != "Thanks! Your claim for “Share a photo” is waiting for a moderator. I'll tell you the outcome." {
		t.Fatalf("reply to a claim of a reviewed task: %q", r.Text)
	}
	post := e.tgWait(t, "review post of "+evidence, func(m faketelegram.SentMessage) bool {
		return m.ChatID == reviewChatID && strings.Contains(m.Text, evidence)
	})
	var labels, data []string
	for _, row := range post.Keyboard {
		for _, b := range row {
			labels, data = append(labels, b.Text), append(data, b.CallbackData)
		}
	}
	id := claimOf(t, labels, data)
	name := strings.TrimSpace(member.FirstName + " " + member.LastName)
	want := fmt.Sprintf("Claim #%d: %s claims “Share a photo” (200 points).\nEvidence: %s", id, name, evidence)
	if post.Text != want {
		t.Fatalf("review post %q, want %q", post.Text, want)
	}
	if s := e.claimStatus(t, id); s != "pending" {
		t.Fatalf("claim %d is %s before review", id, s)
	}
	return id, post
}

// tgRejectWithReason has mod press Reject on a review post, reply to the
// prompt with reason, and returns the post's edit.
func (e *tasksEnv) tgRejectWithReason(t *testing.T, mod faketelegram.User, post faketelegram.SentMessage, claim int64, reason string) faketelegram.Edit {
	t.Helper()
	press := e.tg.PressButton(mod, post.Message, fmt.Sprintf("reject:%d", claim))
	if a := e.tgAnswer(t, press); a.Text != "" {
		t.Fatalf("a reject press first asks for the reason, yet answered %q", a.Text)
	}
	prompt := e.tgWait(t, "reason prompt", func(m faketelegram.SentMessage) bool {
		return m.ChatID == reviewChatID && m.ReplyTo == post.MessageID
	})
	var fr struct {
		ForceReply  bool   `json:"force_reply"`
		Selective   bool   `json:"selective"`
		Placeholder string `json:"input_field_placeholder"`
	}
	if err := json.Unmarshal(prompt.ReplyMarkup, &fr); err != nil || !fr.ForceReply || !fr.Selective ||
		fr.Placeholder != fmt.Sprintf("Reject claim #%d", claim) {
		t.Fatalf("prompt markup %s (%v)", prompt.ReplyMarkup, err)
	}
	name := strings.TrimSpace(mod.FirstName + " " + mod.LastName)
	if prompt.Text != name+": Reason for the member (- for none)" {
		t.Fatalf("prompt %q", prompt.Text)
	}
	if s := e.claimStatus(t, claim); s != "pending" {
		t.Fatalf("claim %d is %s before the reason came", claim, s)
	}
	// The adapter remembers the prompt once Telegram accepted it; nobody
	// answers faster than that.
	waitUntil(t, "remembered prompt", func() bool {
		return e.count(t, "SELECT count(*) FROM telegram_prompts WHERE chat_id = $1 AND message_id = $2",
			reviewChatID, prompt.MessageID) == 1
	}, nil)
	answer := *e.tg.Update(e.tg.ReplyTo(mod, prompt.Message, reason)).Message
	if r := e.tgReplyTo(t, answer); r.Text != "Rejected. I've told the member." {
		t.Fatalf("answer to the reason: %q", r.Text)
	}
	return e.tgWaitEdit(t, post)
}

// ---- Discord ----

// dcRun dispatches an interaction through the gateway and returns the bot's
// response.
func (e *tasksEnv) dcRun(t *testing.T, i discordgo.Interaction) fakediscord.InteractionResponse {
	t.Helper()
	e.dc.DispatchInteraction(i)
	return e.dc.WaitInteractionResponse(t, i.ID, patience)
}

// dcFollowup waits for the followup to an interaction.
func (e *tasksEnv) dcFollowup(t *testing.T, i discordgo.Interaction) fakediscord.Message {
	t.Helper()
	return e.dc.WaitMessage(t, patience, func(m fakediscord.Message) bool {
		return m.InteractionID == i.ID && m.Kind == fakediscord.KindFollowup
	})
}

// dcMessage returns a message the bot created, as it is now.
func (e *tasksEnv) dcMessage(t *testing.T, id string) fakediscord.Message {
	t.Helper()
	for _, m := range e.dc.Messages() {
		if m.ID == id {
			return m
		}
	}
	t.Fatalf("no Discord message %s", id)
	return fakediscord.Message{}
}

// dcDMs returns the direct messages to a Discord user.
func (e *tasksEnv) dcDMs(userID string) []fakediscord.Message {
	var out []fakediscord.Message
	for _, m := range e.dc.Messages() {
		if m.Recipient == userID {
			out = append(out, m)
		}
	}
	return out
}

// buttons lists the labels and custom ids of a message's buttons.
func buttons(cs []discordgo.MessageComponent) (labels, ids []string) {
	for _, c := range cs {
		var inner []discordgo.MessageComponent
		switch c := c.(type) {
		case *discordgo.ActionsRow:
			inner = c.Components
		case discordgo.ActionsRow:
			inner = c.Components
		case *discordgo.Button:
			labels, ids = append(labels, c.Label), append(ids, c.CustomID)
		case discordgo.Button:
			labels, ids = append(labels, c.Label), append(ids, c.CustomID)
		}
		l, i := buttons(inner)
		labels, ids = append(labels, l...), append(ids, i...)
	}
	return labels, ids
}

// dcClaimShare has member claim the reviewed task with evidence by slash
// command and returns the claim's id and its review post in the Discord
// review channel.
func (e *tasksEnv) dcClaimShare(t *testing.T, member fakediscord.Invoker, evidence string) (int64, fakediscord.Message) {
	t.Helper()
	i := e.dc.SlashCommand(member, "claim", fakediscord.StringOption("task", "share"), fakediscord.StringOption("evidence", evidence))
	r := e.dcRun(t, i)
	if r.Type != discordgo.InteractionResponseChannelMessageWithSource || r.Ephemeral() ||
		r.Content != "Thanks! Your claim for “Share a photo” is waiting for a moderator. I'll tell you the outcome." {
		t.Fatalf("response to /claim: type %d, ephemeral %v, %q", r.Type, r.Ephemeral(), r.Content)
	}
	post := e.dc.WaitMessage(t, patience, func(m fakediscord.Message) bool {
		return m.ChannelID == dcReviewChan && m.Kind == fakediscord.KindChannel && strings.Contains(m.Content, evidence)
	})
	labels, ids := buttons(post.Components)
	id := claimOf(t, labels, ids)
	want := fmt.Sprintf("Claim #%d: %s claims “Share a photo” (200 points).\nEvidence: %s", id, member.GlobalName, evidence)
	if post.Content != want {
		t.Fatalf("review post %q, want %q", post.Content, want)
	}
	return id, post
}

// ---- The tests ----

// A member claims the automatic task in a group in German: the group gets
// the answer, the queue pays the claim and tells the member privately in
// German; a second claim the same day pays nothing.
func TestTasksE2E_TelegramAutoClaimPaysAndTellsTheMemberInGerman(t *testing.T) {
	t.Parallel()
	e := startTasks(t, true)
	greta := faketelegram.User{ID: 2001, FirstName: "Greta", LanguageCode: "de"}

	cmd := e.tgSay(greta, community, "/claim checkin")
	if r := e.tgReplyTo(t, cmd); r.Text != "Erledigt! 10 Punkte für „Täglich einchecken“ sind unterwegs." {
		t.Fatalf("reply in the group: %q", r.Text)
	}
	e.waitAvailable(t, "telegram:2001", 10)
	dm := e.tgDM(t, greta, "angenommen")
	if want := "Deine Einreichung für „Täglich einchecken“ wurde angenommen: +10 Punkte. Dein Guthaben: 10."; dm.Text != want || dm.ReplyTo != 0 {
		t.Fatalf("private message %q (reply to %d), want %q", dm.Text, dm.ReplyTo, want)
	}
	// The queue's outbound job sent it, from its row in Postgres.
	e.settle(t)
	if n := e.count(t, `SELECT count(*) FROM outbound WHERE kind = 'claim_approved' AND platform = 'telegram'
		AND user_id = '2001' AND locale = 'de' AND status = 'sent'`); n != 1 {
		t.Fatalf("%d sent claim_approved rows for Greta, want 1", n)
	}

	// Once a day: the second claim is refused (privately) and pays nothing.
	again := e.tgSay(greta, community, "/claim checkin")
	if r := e.tgReplyTo(t, again); r.Text != "Ich habe dir die Antwort privat geschickt." {
		t.Fatalf("group note for a refused claim: %q", r.Text)
	}
	e.tgDM(t, greta, "„Täglich einchecken“ schon eingereicht")
	e.settle(t)
	if got := e.available(t, "telegram:2001"); got != 10 {
		t.Fatalf("balance %d after a second claim the same day, want 10", got)
	}
	if n := e.tgDMs(greta, "angenommen"); n != 1 {
		t.Fatalf("%d approval messages, want 1", n)
	}
	if n := e.count(t, "SELECT count(*) FROM claims"); n != 1 {
		t.Fatalf("%d claims recorded, want 1", n)
	}
}

// A reviewed claim on Telegram: the review post, a non-moderator's press
// refused, two moderators pressing Approve at once (the first decision
// wins, the claim is paid once), then another claim rejected with a reason
// given through the prompt.
func TestTasksE2E_TelegramReviewedClaim_ApprovedOnceAndRejectedWithReason(t *testing.T) {
	t.Parallel()
	e := startTasks(t, true)
	rita := faketelegram.User{ID: 2101, FirstName: "Rita", LanguageCode: "en"}
	nina := faketelegram.User{ID: 2102, FirstName: "Nina", LanguageCode: "en"} // no moderator

	id, post := e.tgClaimShare(t, rita, "https://instagram.com/p/x")
	approve := fmt.Sprintf("approve:%d", id)

	// Nina is told she may not, and nothing changes.
	if a := e.tgAnswer(t, e.tg.PressButton(nina, post.Message, approve)); a.Text != "Only moderators can do that." {
		t.Fatalf("answer to a non-moderator: %q", a.Text)
	}
	if s := e.claimStatus(t, id); s != "pending" || len(e.tgEdits(post)) != 0 {
		t.Fatalf("after a non-moderator's press: claim %s, edits %+v", s, e.tgEdits(post))
	}

	// Alice and Bruno press Approve at the same moment: both presses reach
	// serve in one batch.
	e.tg.HoldUpdates()
	pa := e.tg.PressButton(alice, post.Message, approve)
	pb := e.tg.PressButton(bruno, post.Message, approve)
	e.tg.ReleaseUpdates()
	aa, ab := e.tgAnswer(t, pa), e.tgAnswer(t, pb)
	const done = "Approved. The points are on their way."
	winner, late := "Alice Mod", ab.Text
	if aa.Text != done {
		winner, late = "Bruno", aa.Text
		if ab.Text != done {
			t.Fatalf("neither press approved: %q, %q", aa.Text, ab.Text)
		}
	}
	if late != winner+" has already decided this claim." {
		t.Fatalf("answer to the later press: %q", late)
	}
	edit := e.tgWaitEdit(t, post)
	if want := post.Text + "\n✅ Approved by " + winner; edit.Text != want || edit.Keyboard != nil {
		t.Fatalf("post after approval: %q with keyboard %v, want %q without buttons", edit.Text, edit.Keyboard, want)
	}
	dm := e.tgDM(t, rita, "approved")
	if want := "Your claim for “Share a photo” was approved: +200 points. You now have 200."; dm.Text != want {
		t.Fatalf("approval message %q, want %q", dm.Text, want)
	}
	e.waitAvailable(t, "telegram:2101", 200)
	e.settle(t)
	if n, bal := e.tgDMs(rita, "approved"), e.available(t, "telegram:2101"); n != 1 || bal != 200 {
		t.Fatalf("after two approvals: %d approval messages and balance %d, want 1 and 200", n, bal)
	}
	if n := len(e.tgEdits(post)); n != 1 {
		t.Fatalf("post edited %d times, want once", n)
	}
	if n := e.count(t, "SELECT count(*) FROM audit_log WHERE claim_id = $1", id); n != 1 {
		t.Fatalf("%d decisions recorded for claim %d, want 1", n, id)
	}

	// Nina's claim is rejected with a reason.
	id2, post2 := e.tgClaimShare(t, nina, "https://example.com/nina")
	edit2 := e.tgRejectWithReason(t, alice, post2, id2, "the photo is not of our product")
	if want := post2.Text + "\n❌ Rejected by Alice Mod: the photo is not of our product"; edit2.Text != want || edit2.Keyboard != nil {
		t.Fatalf("post after rejection: %q with keyboard %v, want %q without buttons", edit2.Text, edit2.Keyboard, want)
	}
	dm2 := e.tgDM(t, nina, "not approved")
	if want := "Your claim for “Share a photo” was not approved: the photo is not of our product"; dm2.Text != want {
		t.Fatalf("rejection message %q, want %q", dm2.Text, want)
	}
	e.settle(t)
	if s, bal := e.claimStatus(t, id2), e.available(t, "telegram:2102"); s != "rejected" || bal != 0 {
		t.Fatalf("rejected claim: status %s, balance %d", s, bal)
	}
}

// A reviewed claim on Discord: the review post with buttons in the review
// channel, approval by a moderator role (an UPDATE_MESSAGE), a stale click
// answered "already decided", and a rejection whose reason comes from a
// modal; the members get direct messages.
func TestTasksE2E_DiscordReviewedClaim_ButtonsAndReasonModal(t *testing.T) {
	t.Parallel()
	e := startTasks(t, true)
	dan := fakediscord.Invoker{UserID: "310000000000000001", Username: "dan", GlobalName: "Dan", GuildID: dcGuild}
	eve := fakediscord.Invoker{UserID: "310000000000000002", Username: "eve", GlobalName: "Eve", GuildID: dcGuild}

	id, post := e.dcClaimShare(t, dan, "https://instagram.com/p/dan")
	approve := fmt.Sprintf("approve:%d", id)
	// The review post went out over REST with the bot token; the Telegram
	// review chat has the claim too.
	// (The fake logs a call once it has answered it.)
	var calls []fakediscord.Call
	waitUntil(t, "logged review post call", func() bool {
		calls = e.dc.Calls("POST /channels/" + dcReviewChan + "/messages")
		return len(calls) > 0
	}, nil)
	if calls[0].Status != http.StatusOK || calls[0].Header.Get("Authorization") != "Bot "+e.dc.BotToken() {
		t.Fatalf("review post call: status %d, authorization %q", calls[0].Status, calls[0].Header.Get("Authorization"))
	}
	e.tgWait(t, "Telegram review post of Dan's claim", func(m faketelegram.SentMessage) bool {
		return m.ChatID == reviewChatID && strings.Contains(m.Text, "https://instagram.com/p/dan")
	})

	// Manage Server makes a moderator only in the programme's own server.
	olga := fakediscord.Invoker{UserID: "320000000000000001", Username: "olga", GuildID: "999000000000000009",
		Permissions: discordgo.PermissionManageGuild}
	if r := e.dcRun(t, e.dc.ButtonClick(olga, approve)); r.Type != discordgo.InteractionResponseChannelMessageWithSource ||
		!r.Ephemeral() || r.Content != "Only moderators can do that." {
		t.Fatalf("response to an outsider: type %d, ephemeral %v, %q", r.Type, r.Ephemeral(), r.Content)
	}
	if m := e.dcMessage(t, post.ID); m.Edits != 0 || e.claimStatus(t, id) != "pending" {
		t.Fatalf("an outsider's click changed something: %d edits, claim %s", m.Edits, e.claimStatus(t, id))
	}

	click := e.dc.ButtonClick(mia, approve)
	r := e.dcRun(t, click)
	want := post.Content + "\n✅ Approved by Mia"
	if _, ids := buttons(r.Components); r.Type != discordgo.InteractionResponseUpdateMessage || r.Content != want || len(ids) != 0 {
		t.Fatalf("response to the moderator: type %d, %q, buttons %v; want UPDATE_MESSAGE %q without buttons", r.Type, r.Content, ids, want)
	}
	if m := e.dcMessage(t, post.ID); m.Content != want || len(m.Components) != 0 || m.Edits != 1 {
		t.Fatalf("review post now %q with %d components, %d edits", m.Content, len(m.Components), m.Edits)
	}
	if f := e.dcFollowup(t, click); f.Content != "Approved. The points are on their way." || f.Flags&discordgo.MessageFlagsEphemeral == 0 {
		t.Fatalf("followup to the moderator: %q (flags %d)", f.Content, f.Flags)
	}
	dm := e.dc.WaitMessage(t, patience, func(m fakediscord.Message) bool { return m.Recipient == dan.UserID })
	if want := "Your claim for “Share a photo” was approved: +200 points. You now have 200."; dm.Content != want || dm.Kind != fakediscord.KindChannel {
		t.Fatalf("direct message to Dan: %q (%s), want %q", dm.Content, dm.Kind, want)
	}
	e.waitAvailable(t, "discord:"+dan.UserID, 200)

	// Ken (Manage Server in the programme's server) clicks Approve in the
	// review channel on a client that still shows the buttons: Mia decided
	// already.
	ken := fakediscord.Invoker{UserID: "340000000000000001", Username: "ken", GlobalName: "Ken", GuildID: dcGuild,
		ChannelID: dcReviewChan, Permissions: discordgo.PermissionManageGuild}
	stale := e.dc.ButtonClick(ken, approve)
	e.dcRun(t, stale)
	if f := e.dcFollowup(t, stale); f.Content != "Mia has already decided this claim." {
		t.Fatalf("followup to a late click: %q", f.Content)
	}
	e.settle(t)
	if n, bal := len(e.dcDMs(dan.UserID)), e.available(t, "discord:"+dan.UserID); n != 1 || bal != 200 {
		t.Fatalf("after two approvals: %d messages to Dan, balance %d; want 1 and 200", n, bal)
	}

	// Eve's claim: Reject opens a modal for the reason.
	id2, post2 := e.dcClaimShare(t, eve, "https://instagram.com/p/eve")
	reject := fmt.Sprintf("reject:%d", id2)
	r = e.dcRun(t, e.dc.ButtonClick(mia, reject))
	if r.Type != discordgo.InteractionResponseModal || r.CustomID != reject || r.Title != fmt.Sprintf("Reject claim #%d", id2) {
		t.Fatalf("response to Reject: type %d, custom_id %q, title %q; want a modal", r.Type, r.CustomID, r.Title)
	}
	if s := e.claimStatus(t, id2); s != "pending" {
		t.Fatalf("claim %s before the modal was submitted", s)
	}
	submit := e.dc.ModalSubmit(mia, reject, map[string]string{"text": "the link shows someone else's photo"})
	r = e.dcRun(t, submit)
	want2 := post2.Content + "\n❌ Rejected by Mia: the link shows someone else's photo"
	if r.Type != discordgo.InteractionResponseUpdateMessage || r.Content != want2 {
		t.Fatalf("response to the modal: type %d, %q; want UPDATE_MESSAGE %q", r.Type, r.Content, want2)
	}
	if m := e.dcMessage(t, post2.ID); m.Content != want2 || len(m.Components) != 0 {
		t.Fatalf("review post now %q with %d components", m.Content, len(m.Components))
	}
	if f := e.dcFollowup(t, submit); f.Content != "Rejected. I've told the member." {
		t.Fatalf("followup to the modal: %q", f.Content)
	}
	dm2 := e.dc.WaitMessage(t, patience, func(m fakediscord.Message) bool { return m.Recipient == eve.UserID })
	if want := "Your claim for “Share a photo” was not approved: the link shows someone else's photo"; dm2.Content != want {
		t.Fatalf("direct message to Eve: %q, want %q", dm2.Content, want)
	}
	e.settle(t)
	if s, bal := e.claimStatus(t, id2), e.available(t, "discord:"+eve.UserID); s != "rejected" || bal != 0 {
		t.Fatalf("rejected claim: status %s, balance %d", s, bal)
	}
}

// Moderators award points from chat within their daily limit: on Telegram
// by replying to the member's message, on Discord with the member and
// points options. Refusals change nothing.
func TestTasksE2E_ModeratorAwardsWithinTheDailyLimit(t *testing.T) {
	t.Parallel()
	e := startTasks(t, true)
	mo := faketelegram.User{ID: 4001, FirstName: "Mo", LanguageCode: "en"}
	nina := faketelegram.User{ID: 4002, FirstName: "Nina", LanguageCode: "en"} // no moderator
	said := e.tgSay(mo, community, "Shipping to Austria takes two days, I checked")

	award := func(from faketelegram.User, text string) faketelegram.SentMessage {
		t.Helper()
		return e.tgReplyTo(t, *e.tg.Update(e.tg.ReplyTo(from, said, text)).Message)
	}
	if r := award(alice, "/award 300 great answer"); r.Text != "Mo got 300 points and now has 300." {
		t.Fatalf("reply to /award: %q", r.Text)
	}
	if got := e.available(t, "telegram:4001"); got != 300 {
		t.Fatalf("balance %d after the award, want 300", got)
	}

	// Refusals come privately, and the balance stays.
	refusals := []struct {
		from faketelegram.User
		cmd  string
		want string
	}{
		{alice, "/award 701 even greater", "That would go over your daily limit of 1,000 points: you have handed out 300 today."},
		{nina, "/award 50", "Only moderators can do that."},
		{alice, "/award abc", "Points must be a whole number from 1 to 9,007,199,254,740,991."},
	}
	for _, c := range refusals {
		if r := award(c.from, c.cmd); r.Text != "I've sent you the answer in a private message." {
			t.Fatalf("%s: group note %q", c.cmd, r.Text)
		}
		e.tgDM(t, c.from, c.want)
		if got := e.available(t, "telegram:4001"); got != 300 {
			t.Fatalf("%s: balance %d, want 300", c.cmd, got)
		}
	}
	// Up to the limit exactly is fine.
	if r := award(alice, "/award 700"); r.Text != "Mo got 700 points and now has 1,000." {
		t.Fatalf("reply to /award up to the limit: %q", r.Text)
	}
	if got := e.available(t, "telegram:4001"); got != 1000 {
		t.Fatalf("balance %d, want 1000", got)
	}

	// Discord: the member option and the integer option.
	dan := fakediscord.Invoker{UserID: "310000000000000001", Username: "dan", GlobalName: "Dan", GuildID: dcGuild}
	e.dcRun(t, e.dc.SlashCommand(dan, "balance"))
	r := e.dcRun(t, e.dc.SlashCommand(mia, "award", fakediscord.UserOption("member", dan.UserID),
		fakediscord.IntegerOption("points", 250), fakediscord.StringOption("reason", "helpful answer")))
	if r.Content != "Dan got 250 points and now has 250." || r.Ephemeral() {
		t.Fatalf("response to /award: %q (ephemeral %v)", r.Content, r.Ephemeral())
	}
	e.waitAvailable(t, "discord:"+dan.UserID, 250)
	r = e.dcRun(t, e.dc.SlashCommand(mia, "award", fakediscord.UserOption("member", dan.UserID), fakediscord.IntegerOption("points", 751)))
	if !strings.HasPrefix(r.Content, "That would go over your daily limit of 1,000 points: you have handed out 250 today.") || !r.Ephemeral() {
		t.Fatalf("response to /award over the limit: %q (ephemeral %v)", r.Content, r.Ephemeral())
	}
	if got := e.available(t, "discord:"+dan.UserID); got != 250 {
		t.Fatalf("balance %d after a refused award, want 250", got)
	}
}

// Telegram answers the approval message with 429 retry_after=1: the queue
// waits it out (not counted as a failed attempt) and the message arrives
// once.
func TestTasksE2E_RateLimitedMessageArrivesOnceAfterRetryAfter(t *testing.T) {
	t.Parallel()
	e := startTasks(t, true)
	rita := faketelegram.User{ID: 5001, FirstName: "Rita", LanguageCode: "en"}
	id, post := e.tgClaimShare(t, rita, "https://instagram.com/p/rita")

	before := e.tg.Calls("sendMessage")
	e.tg.FailNext("sendMessage", 1, http.StatusTooManyRequests, "", 1)
	e.tg.PressButton(alice, post.Message, fmt.Sprintf("approve:%d", id))
	e.tg.WaitCalls(t, "sendMessage", before+1, patience) // the refused attempt
	refused := time.Now()
	e.tgDM(t, rita, "was approved")
	if waited := time.Since(refused); waited < time.Second {
		t.Fatalf("the message came %v after a 429 with retry_after=1", waited)
	}
	e.settle(t)
	if n := e.tgDMs(rita, "was approved"); n != 1 {
		t.Fatalf("%d approval messages, want 1", n)
	}
	if n := e.tg.Calls("sendMessage"); n != before+2 {
		t.Fatalf("%d sendMessage calls after the approval, want 2 (refused, then delivered)", n-before)
	}
	if n := e.count(t, "SELECT attempts FROM outbound WHERE kind = 'claim_approved'"); n != 0 {
		t.Fatalf("a rate limit counted as %d failed attempts", n)
	}
	if got := e.available(t, "telegram:5001"); got != 200 {
		t.Fatalf("balance %d, want 200", got)
	}
}

// A member who blocked the bot: the approval message is tried once, the
// member is marked unreachable, and the points are paid all the same; once
// they write again they are reachable.
func TestTasksE2E_MessageToABlockedMemberIsNotRetried(t *testing.T) {
	t.Parallel()
	e := startTasks(t, true)
	vic := faketelegram.User{ID: 5002, FirstName: "Vic", LanguageCode: "en"}
	id, post := e.tgClaimShare(t, vic, "https://instagram.com/p/vic")

	e.tg.Block(vic.ID)
	before := e.tg.Calls("sendMessage")
	e.tg.PressButton(alice, post.Message, fmt.Sprintf("approve:%d", id))
	waitUntil(t, "skipped approval message", func() bool {
		return e.count(t, "SELECT count(*) FROM outbound WHERE kind = 'claim_approved' AND status = 'skipped'") == 1
	}, nil)
	if n := e.tg.Calls("sendMessage"); n != before+1 {
		t.Fatalf("%d sendMessage calls for a blocked member, want 1", n-before)
	}
	if why, n := e.text(t, "SELECT last_error FROM outbound WHERE kind = 'claim_approved'"),
		e.count(t, "SELECT attempts FROM outbound WHERE kind = 'claim_approved'"); !strings.Contains(why, "blocked by the user") || n != 0 {
		t.Fatalf("the skipped message: last_error %q after %d failed attempts, want Telegram's 403 and none", why, n)
	}
	unreachable := func() bool {
		return e.count(t, `SELECT count(*) FROM members m JOIN identities i ON i.member_id = m.id
			WHERE i.platform = 'telegram' AND i.user_id = '5002' AND m.unreachable`) == 1
	}
	if !unreachable() {
		t.Fatal("the member who blocked the bot is not marked unreachable")
	}
	if got := e.available(t, "telegram:5002"); got != 200 {
		t.Fatalf("balance %d, want the 200 points paid", got)
	}
	if n := e.tgCount(func(m faketelegram.SentMessage) bool { return m.ChatID == vic.ID }); n != 0 {
		t.Fatalf("%d messages reached a member who blocked the bot", n)
	}

	e.tg.Unblock(vic.ID)
	e.tgReplyTo(t, e.tgSay(vic, faketelegram.PrivateChat(vic), "/balance"))
	if unreachable() {
		t.Fatal("still unreachable after writing to the bot")
	}
}

// The audit log names who did what: a moderator's award and one refused
// over the limit, an approval on Discord and a rejection on Telegram.
func TestTasksE2E_AuditLogNamesTheModerators(t *testing.T) {
	t.Parallel()
	e := startTasks(t, true)
	mo := faketelegram.User{ID: 6001, FirstName: "Mo", LanguageCode: "en"}
	yara := faketelegram.User{ID: 6002, FirstName: "Yara", LanguageCode: "en"}
	dan := fakediscord.Invoker{UserID: "310000000000000001", Username: "dan", GlobalName: "Dan", GuildID: dcGuild}

	e.tgReplyTo(t, e.tgSay(mo, faketelegram.PrivateChat(mo), "/balance")) // Mo has a name
	said := e.tgSay(mo, community, "welcome, everyone")
	e.tgReplyTo(t, *e.tg.Update(e.tg.ReplyTo(alice, said, "/award 120 welcome gift")).Message)
	e.tgReplyTo(t, *e.tg.Update(e.tg.ReplyTo(alice, said, "/award 999 too generous")).Message)
	dcClaim, _ := e.dcClaimShare(t, dan, "https://instagram.com/p/dan")
	e.dcRun(t, e.dc.ButtonClick(mia, fmt.Sprintf("approve:%d", dcClaim)))
	tgClaim, post := e.tgClaimShare(t, yara, "https://instagram.com/p/yara")
	e.tgRejectWithReason(t, bruno, post, tgClaim, "posted last week already")

	type member struct {
		ID         int64    `json:"id"`
		Identities []string `json:"identities"`
		Name       string   `json:"name"`
	}
	var log struct {
		Entries []struct {
			Actor struct {
				Kind string `json:"kind"`
				member
			} `json:"actor"`
			Action        string  `json:"action"`
			Target        *member `json:"target"`
			TargetRef     string  `json:"target_ref"`
			Points        int64   `json:"points"`
			Reason        string  `json:"reason"`
			Outcome       string  `json:"outcome"`
			ClaimID       int64   `json:"claim_id"`
			TransactionID int64   `json:"transaction_id"`
			Platform      string  `json:"platform"`
		} `json:"entries"`
	}
	if code := e.get(t, "/v1/audit", &log); code != http.StatusOK {
		t.Fatalf("GET /v1/audit: %d", code)
	}
	type row struct {
		kind, actor, actorID, action, target, targetID string
		points                                         int64
		reason, outcome                                string
		claim                                          int64
		paid                                           bool
		platform                                       string
	}
	var got []row
	for _, x := range log.Entries {
		r := row{kind: x.Actor.Kind, actor: x.Actor.Name, actorID: strings.Join(x.Actor.Identities, ","), action: x.Action,
			targetID: x.TargetRef, points: x.Points, reason: x.Reason, outcome: x.Outcome, claim: x.ClaimID,
			paid: x.TransactionID != 0, platform: x.Platform}
		if x.Target != nil {
			r.target, r.targetID = x.Target.Name, strings.Join(x.Target.Identities, ",")
		}
		got = append(got, r)
	}
	want := []row{ // newest first
		{"moderator", "Bruno", "telegram:1002", "reject", "Yara", "telegram:6002", 200, "posted last week already", "ok", tgClaim, false, "telegram"},
		{"moderator", "Mia", "discord:" + mia.UserID, "approve", "Dan", "discord:" + dan.UserID, 200, "", "ok", dcClaim, false, "discord"},
		{"moderator", "Alice Mod", "telegram:1001", "award", "Mo", "telegram:6001", 999, "too generous", "limit", 0, false, "telegram"},
		{"moderator", "Alice Mod", "telegram:1001", "award", "Mo", "telegram:6001", 120, "welcome gift", "ok", 0, true, "telegram"},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("audit log:\n got %+v\nwant %+v", got, want)
	}
}

// The queue's web UI answers only with the admin token: as a bearer token,
// or as the Basic password a browser sends.
func TestTasksE2E_QueueUIBehindTheAdminToken(t *testing.T) {
	t.Parallel()
	e := startTasks(t, false)
	get := func(auth func(*http.Request)) (int, http.Header, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", e.base+"/queues/", nil)
		auth(req)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header, string(body)
	}
	code, h, _ := get(func(*http.Request) {})
	if code != http.StatusUnauthorized || !slices.Contains(h.Values("WWW-Authenticate"), `Basic realm="tally"`) {
		t.Fatalf("without the token: %d, WWW-Authenticate %q", code, h.Values("WWW-Authenticate"))
	}
	if code, _, _ := get(func(r *http.Request) { r.SetBasicAuth("admin", "wrong-token-0123456789") }); code != http.StatusUnauthorized {
		t.Fatalf("with a wrong Basic password: %d", code)
	}
	if code, _, _ := get(func(r *http.Request) { r.Header.Set("Authorization", "Bearer wrong-token-0123456789") }); code != http.StatusUnauthorized {
		t.Fatalf("with a wrong bearer token: %d", code)
	}
	for name, auth := range map[string]func(*http.Request){
		"bearer": func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+adminToken) },
		"basic":  func(r *http.Request) { r.SetBasicAuth("anyone", adminToken) },
	} {
		if code, _, body := get(auth); code != http.StatusOK || !strings.Contains(body, "<html") {
			t.Fatalf("%s: %d %.200s", name, code, body)
		}
	}
}
