// Package faketelegram is a fake Telegram Bot API for tests. It serves
// /bot<token>/<method> on 127.0.0.1 and speaks the same wire protocol as
// api.telegram.org (multipart, form or JSON requests; {"ok":...} envelopes),
// so the real go-telegram/bot client runs unchanged against it: point it there
// with bot.WithServerURL(fake.URL()).
//
// A test injects what users do (messages, replies, button presses, joins), and
// reads back what the bot did (messages, edits, callback answers, commands).
// The fake keeps Telegram's update queue semantics: updates stay queued until
// a getUpdates call confirms them with a higher offset, long polls wait for the
// next update, and a second poller or an active webhook gets 409 Conflict.
//
// It also enforces the rules bots get wrong in production: text that the
// chosen parse_mode cannot parse, empty or over-long messages, callback data
// over 64 bytes, edits that change nothing, answers to unknown callback
// queries, command names and language codes Telegram refuses. Errors carry
// Telegram's codes and descriptions, so the client's error types
// (*bot.TooManyRequestsError, bot.ErrorForbidden, ...) come out as in
// production.
//
// A test reads:
//
//	fake := faketelegram.New(t)
//	b, err := bot.New(fake.Token(), bot.WithServerURL(fake.URL()), bot.WithDefaultHandler(h))
//	go b.Start(ctx)
//	ana := faketelegram.User{ID: 42, FirstName: "Ana", LanguageCode: "de"}
//	fake.SendText(ana, faketelegram.PrivateChat(ana), "/balance")
//	sent := fake.WaitSent(t, 1, 5*time.Second)
//
// The fake is safe for concurrent use. New closes it when the test ends, which
// releases every waiting long poll first.
package faketelegram

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/go-telegram/bot/models"
)

// Defaults for the bot the fake plays.
const (
	// DefaultBotID is the bot's user id, also the part of the token before ':'.
	DefaultBotID int64 = 123456
	// DefaultBotUsername is the bot's @username without the '@'.
	DefaultBotUsername = "TallyTestBot"
)

// Telegram's limits.
const (
	maxTextLength       = 4096 // UTF-16 code units, after entity parsing
	maxCallbackData     = 64   // bytes
	maxCommands         = 100
	maxCommandLength    = 32
	maxDescriptionRunes = 256
	defaultUpdatesLimit = 100
)

// User is a Telegram user as updates carry it; LanguageCode is what the user's
// client is set to, which bots use to pick a language.
type User = models.User

// Chat is a Telegram chat as updates carry it.
type Chat = models.Chat

// Command is one entry of a bot's command menu (setMyCommands).
type Command = models.BotCommand

// PrivateChat is the chat between the bot and u: Telegram gives it u's id.
func PrivateChat(u User) Chat {
	return Chat{ID: u.ID, Type: models.ChatTypePrivate, FirstName: u.FirstName, LastName: u.LastName, Username: u.Username}
}

// GroupChat is a basic group. Telegram gives groups negative ids.
func GroupChat(id int64, title string) Chat {
	return Chat{ID: id, Type: models.ChatTypeGroup, Title: title}
}

// Supergroup is a supergroup; real ids look like -100xxxxxxxxxx.
func Supergroup(id int64, title string) Chat {
	return Chat{ID: id, Type: models.ChatTypeSupergroup, Title: title}
}

// Option changes how New sets up the fake.
type Option func(*config)

type config struct {
	botID    int64
	username string
	now      func() time.Time
}

// BotUsername sets the bot's @username (without '@'), as getMe reports it.
func BotUsername(name string) Option {
	return func(c *config) { c.username = name }
}

// BotID sets the bot's user id; the token starts with it, as real tokens do
// (go-telegram/bot's Bot.ID parses it from there).
func BotID(id int64) Option {
	return func(c *config) { c.botID = id }
}

// Clock sets where message dates come from, so they agree with a test clock.
func Clock(now func() time.Time) Option {
	return func(c *config) { c.now = now }
}

// SentMessage is one message the bot sent with sendMessage.
type SentMessage struct {
	ChatID    int64
	MessageID int
	Text      string // as the bot sent it, markup included
	ParseMode string
	// ReplyTo is the message id the bot replied to (reply_parameters or the
	// older reply_to_message_id); 0 when it is not a reply.
	ReplyTo int
	// Keyboard is the inline keyboard, nil without one.
	Keyboard [][]models.InlineKeyboardButton
	// ReplyMarkup is reply_markup exactly as sent, of any kind (reply
	// keyboards and force_reply too); nil without one.
	ReplyMarkup json.RawMessage
	// Params holds every parameter as sent; JSON values (reply_markup,
	// reply_parameters, ...) stay JSON text.
	Params map[string]string
	// Message is what the fake answered: the message as users see it, with
	// the text after entity parsing.
	Message models.Message
}

// Edit is one editMessageText call the fake accepted.
type Edit struct {
	ChatID          int64
	MessageID       int
	InlineMessageID string // set instead of ChatID and MessageID for inline messages
	Text            string // as the bot sent it
	ParseMode       string
	// Keyboard is the inline keyboard after the edit. Telegram removes the
	// keyboard when an edit carries none, so nil means the buttons are gone.
	Keyboard    [][]models.InlineKeyboardButton
	ReplyMarkup json.RawMessage
	Params      map[string]string
	// Message is the message after the edit; zero for inline messages.
	Message models.Message
}

// CallbackAnswer is one answerCallbackQuery call the fake accepted.
type CallbackAnswer struct {
	QueryID   string
	Text      string
	ShowAlert bool
	URL       string
	CacheTime int
}

// Webhook is the webhook setWebhook configured; zero when none is set.
type Webhook struct {
	URL            string
	SecretToken    string
	MaxConnections int
	AllowedUpdates []string
}

// Server is a fake Telegram Bot API server.
type Server struct {
	t      testing.TB
	srv    *httptest.Server
	token  string
	me     models.User
	now    func() time.Time
	client *http.Client // PostWebhook's, closed with the server
	done   chan struct{}

	mu            sync.Mutex
	changed       chan struct{} // closed and replaced on every change, to wake waiters
	closed        bool
	lastUpdateID  int64
	lastMessageID int
	lastQueryID   int64
	lastFileID    int
	history       map[int64]json.RawMessage // every update injected, by id
	queue         []queued                  // unconfirmed updates, by ascending id
	pollGen       uint64                    // bumped by every getUpdates; a stale poll is terminated
	chats         map[int64]Chat
	messages      map[msgKey]*storedMessage
	queries       map[string]bool // callback query id → answered
	sent          []SentMessage
	edits         []Edit
	answers       []CallbackAnswer
	commands      map[commandsKey][]Command
	webhook       Webhook
	calls         map[string]int // by lower-case method: Telegram's method names are case-insensitive
	failures      map[string][]apiError
	blocked       map[int64]bool
	held          bool // HoldUpdates: getUpdates hands out nothing until ReleaseUpdates
}

type queued struct {
	id  int64
	raw json.RawMessage
	// forced marks a redelivered update: it is handed out once even to a
	// poller whose offset has already confirmed it.
	forced bool
}

type msgKey struct {
	chat int64
	id   int
}

type storedMessage struct {
	msg   models.Message
	byBot bool
	// format and markup are what "message is not modified" compares.
	format string
	markup string
}

type commandsKey struct {
	scope string
	lang  string
}

// New starts a fake on 127.0.0.1 and closes it when the test ends.
func New(t testing.TB, opts ...Option) *Server {
	t.Helper()
	cfg := config{botID: DefaultBotID, username: DefaultBotUsername, now: time.Now}
	for _, o := range opts {
		o(&cfg)
	}
	s := &Server{
		t:     t,
		token: fmt.Sprintf("%d:TEST-token", cfg.botID),
		me: models.User{ID: cfg.botID, IsBot: true, FirstName: "Tally Test", Username: cfg.username,
			// The fake delivers every group message, as a bot with privacy
			// mode off receives them.
			CanJoinGroups: true, CanReadAllGroupMessages: true},
		now:      cfg.now,
		client:   &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{}},
		done:     make(chan struct{}),
		changed:  make(chan struct{}),
		history:  map[int64]json.RawMessage{},
		chats:    map[int64]Chat{},
		messages: map[msgKey]*storedMessage{},
		queries:  map[string]bool{},
		commands: map[commandsKey][]Command{},
		calls:    map[string]int{},
		failures: map[string][]apiError{},
		blocked:  map[int64]bool{},
	}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serveHTTP))
	t.Cleanup(s.Close)
	return s
}

// Close releases waiting long polls (they answer with what they have) and
// stops the server. New calls it when the test ends; calling it earlier
// simulates Telegram going away.
func (s *Server) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	close(s.done)
	s.notify()
	s.mu.Unlock()
	// httptest.Server.Close waits for outstanding requests, which is why the
	// long polls were released first.
	s.srv.Close()
	s.client.CloseIdleConnections()
}

// URL is the server's base URL, for bot.WithServerURL.
func (s *Server) URL() string { return s.srv.URL }

// Token is the only token the fake accepts; others get 401 Unauthorized.
func (s *Server) Token() string { return s.token }

// Me is the bot's own user, as getMe returns it.
func (s *Server) Me() User { return s.me }

// notify wakes everything waiting for a change. Callers hold s.mu.
func (s *Server) notify() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// ---- Injecting what users do ----

// SendText injects a text message from a user in chat and returns the update
// id. Like Telegram, it marks /commands (also /command@bot) with bot_command
// entities, which go-telegram/bot's command handlers match on.
func (s *Server) SendText(from User, chat Chat, text string) (updateID int64) {
	return s.SendMessage(models.Message{From: &from, Chat: chat, Text: text})
}

// SendMessage injects any message a user sends to the bot (media, service
// messages, ...). The fake gives it a new message id, a date when it has
// none, and command entities when it has text but no entities.
func (s *Server) SendMessage(m models.Message) (updateID int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lastMessageID++
	m.ID = s.lastMessageID
	if m.Date == 0 {
		m.Date = int(s.now().Unix())
	}
	if m.Text != "" && m.Entities == nil {
		m.Entities = commandEntities(m.Text)
	}
	s.remember(m, false)
	return s.enqueue(&models.Update{Message: &m})
}

// ReplyTo injects a text message from a user that replies to another
// message, which may be the bot's (a SentMessage's Message) or a user's
// (from Update). The reply carries the replied-to message with its author,
// as Telegram sends it.
func (s *Server) ReplyTo(from User, to models.Message, text string) (updateID int64) {
	s.mu.Lock()
	// The current version of the message, edits included.
	if st, ok := s.messages[msgKey{to.Chat.ID, to.ID}]; ok {
		to = st.msg
	}
	s.mu.Unlock()
	// Telegram does not nest replies further.
	to.ReplyToMessage = nil
	return s.SendMessage(models.Message{From: &from, Chat: to.Chat, Text: text, ReplyToMessage: &to})
}

// SendSticker injects a sticker message (no text: handlers that only look at
// text must cope).
func (s *Server) SendSticker(from User, chat Chat, emoji string) (updateID int64) {
	id := s.nextFileID("sticker")
	return s.SendMessage(models.Message{From: &from, Chat: chat, Sticker: &models.Sticker{
		FileID: id, FileUniqueID: id + "-u", Type: "regular", Width: 512, Height: 512, Emoji: emoji,
	}})
}

// SendPhoto injects a photo in the usual three sizes, with an optional caption.
func (s *Server) SendPhoto(from User, chat Chat, caption string) (updateID int64) {
	id := s.nextFileID("photo")
	var photo []models.PhotoSize
	for i, w := range []int{90, 320, 1280} {
		photo = append(photo, models.PhotoSize{FileID: fmt.Sprintf("%s-%d", id, i), FileUniqueID: fmt.Sprintf("%s-u%d", id, i),
			Width: w, Height: w * 3 / 4, FileSize: w * 100})
	}
	m := models.Message{From: &from, Chat: chat, Photo: photo, Caption: caption}
	if caption != "" {
		m.CaptionEntities = commandEntities(caption)
	}
	return s.SendMessage(m)
}

// EditText injects an edited_message update: the author of m changed its
// text. m must be a message injected earlier.
func (s *Server) EditText(m models.Message, text string) (updateID int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.messages[msgKey{m.Chat.ID, m.ID}]
	if !ok || st.byBot {
		s.t.Errorf("faketelegram: EditText: message %d in chat %d is not a user's message the fake knows", m.ID, m.Chat.ID)
		return 0
	}
	edited := st.msg
	edited.Text = text
	edited.Entities = commandEntities(text)
	edited.EditDate = int(s.now().Unix())
	st.msg = edited
	return s.enqueue(&models.Update{EditedMessage: &edited})
}

// MembersJoined injects the service message Telegram sends when users join
// a group; it comes from the first of them.
func (s *Server) MembersJoined(chat Chat, members ...User) (updateID int64) {
	if len(members) == 0 {
		s.t.Errorf("faketelegram: MembersJoined without members")
		return 0
	}
	from := members[0]
	return s.SendMessage(models.Message{From: &from, Chat: chat, NewChatMembers: members})
}

// BotAdded injects the my_chat_member update Telegram sends when a user adds
// the bot to a group: its status goes from "left" to "member".
func (s *Server) BotAdded(by User, chat Chat) (updateID int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rememberChat(chat)
	me := s.me
	return s.enqueue(&models.Update{MyChatMember: &models.ChatMemberUpdated{
		Chat: chat, From: by, Date: int(s.now().Unix()),
		OldChatMember: models.ChatMember{Type: models.ChatMemberTypeLeft, Left: &models.ChatMemberLeft{User: &me}},
		NewChatMember: models.ChatMember{Type: models.ChatMemberTypeMember, Member: &models.ChatMemberMember{User: &me}},
	}})
}

// PressButton injects the callback query of a user pressing the inline
// button with callback data on message m (one the bot sent). Like in a real
// client, only a button the message currently shows can be pressed: the test
// fails otherwise. The query id is in Update(updateID).CallbackQuery.ID.
func (s *Server) PressButton(from User, m models.Message, data string) (updateID int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.messages[msgKey{m.Chat.ID, m.ID}]
	if !ok || !st.byBot {
		s.t.Errorf("faketelegram: PressButton: message %d in chat %d was not sent by the bot", m.ID, m.Chat.ID)
		return 0
	}
	if !hasButton(st.msg.ReplyMarkup, data) {
		s.t.Errorf("faketelegram: PressButton: message %d in chat %d has no button with callback_data %q (keyboard: %s)",
			m.ID, m.Chat.ID, data, keyboardString(st.msg.ReplyMarkup))
		return 0
	}
	s.lastQueryID++
	// Real ids are long decimal strings; a fixed prefix keeps them unique per fake.
	qid := strconv.FormatInt(4_000_000_000_000_000_000+s.lastQueryID, 10)
	s.queries[qid] = false
	cur := st.msg
	q := &models.CallbackQuery{
		ID:           qid,
		From:         from,
		Message:      models.MaybeInaccessibleMessage{Type: models.MaybeInaccessibleMessageTypeMessage, Message: &cur},
		ChatInstance: strconv.FormatInt(m.Chat.ID*7919, 10),
		Data:         data,
	}
	return s.enqueue(&models.Update{CallbackQuery: q})
}

// SendUpdate injects any update. The fake assigns the update id (the one in u
// is replaced) and remembers the message it carries, if any, for replies and
// edits.
func (s *Server) SendUpdate(u models.Update) (updateID int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if u.Message != nil {
		m := *u.Message // the caller's message stays as it was
		if m.ID == 0 {
			s.lastMessageID++
			m.ID = s.lastMessageID
		}
		s.remember(m, false)
		u.Message = &m
	}
	return s.enqueue(&u)
}

// SendRawUpdate injects an update given as JSON fields, for payloads
// models.Update cannot express (fields newer than the client, odd shapes).
// The fake sets "update_id".
func (s *Server) SendRawUpdate(fields map[string]any) (updateID int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lastUpdateID++
	id := s.lastUpdateID
	cp := make(map[string]any, len(fields)+1)
	for k, v := range fields {
		cp[k] = v
	}
	cp["update_id"] = id
	raw, err := json.Marshal(cp)
	if err != nil {
		s.t.Errorf("faketelegram: SendRawUpdate: %v", err)
		return 0
	}
	s.push(id, raw)
	return id
}

// Redeliver queues an update again, as Telegram does when a bot's
// acknowledgement was lost (it crashed before its next getUpdates). The
// update keeps its id and payload and is handed out once even to a poller
// whose offset already confirmed it, so a running bot sees it a second time.
func (s *Server) Redeliver(updateID int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	raw, ok := s.history[updateID]
	if !ok {
		s.t.Errorf("faketelegram: Redeliver: no update %d", updateID)
		return
	}
	i, found := slices.BinarySearchFunc(s.queue, updateID, func(q queued, id int64) int { return cmp.Compare(q.id, id) })
	if found {
		s.queue[i].forced = true
	} else {
		s.queue = slices.Insert(s.queue, i, queued{id: updateID, raw: raw, forced: true})
	}
	s.notify()
}

// Update returns an update injected earlier, as the bot receives it.
func (s *Server) Update(updateID int64) models.Update {
	s.mu.Lock()
	raw, ok := s.history[updateID]
	s.mu.Unlock()
	var u models.Update
	if !ok {
		s.t.Errorf("faketelegram: no update %d", updateID)
		return u
	}
	if err := json.Unmarshal(raw, &u); err != nil {
		s.t.Errorf("faketelegram: update %d: %v", updateID, err)
	}
	return u
}

// Pending returns the ids of updates not yet confirmed by getUpdates, in order.
func (s *Server) Pending() []int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := make([]int64, len(s.queue))
	for i, q := range s.queue {
		ids[i] = q.id
	}
	return ids
}

// enqueue assigns u the next update id and queues it. Callers hold s.mu.
func (s *Server) enqueue(u *models.Update) int64 {
	s.lastUpdateID++
	u.ID = s.lastUpdateID
	raw, err := json.Marshal(u)
	if err != nil {
		s.t.Errorf("faketelegram: encode update: %v", err)
		return 0
	}
	s.push(u.ID, raw)
	return u.ID
}

// push queues an encoded update. Ids only grow, so the queue stays sorted.
// Callers hold s.mu.
func (s *Server) push(id int64, raw json.RawMessage) {
	s.history[id] = raw
	s.queue = append(s.queue, queued{id: id, raw: raw})
	s.notify()
}

// remember stores a message for replies, edits and button presses, and its
// chat so the bot's messages there carry the full chat. Callers hold s.mu.
func (s *Server) remember(m models.Message, byBot bool) {
	s.rememberChat(m.Chat)
	s.messages[msgKey{m.Chat.ID, m.ID}] = &storedMessage{msg: m, byBot: byBot}
}

// rememberChat keeps the fullest chat object seen for an id. Callers hold s.mu.
func (s *Server) rememberChat(c Chat) {
	if c.ID != 0 && (c.Type != "" || s.chats[c.ID].Type == "") {
		s.chats[c.ID] = c
	}
}

// nextFileID makes a file id unique within the fake, as Telegram's are.
func (s *Server) nextFileID(kind string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lastFileID++
	return fmt.Sprintf("%s-%d", kind, s.lastFileID)
}

// ---- Observing what the bot did ----

// Sent returns the messages the bot sent, in order.
func (s *Server) Sent() []SentMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.sent)
}

// Edits returns the editMessageText calls the fake accepted, in order.
func (s *Server) Edits() []Edit {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.edits)
}

// CallbackAnswers returns the answerCallbackQuery calls the fake accepted.
func (s *Server) CallbackAnswers() []CallbackAnswer {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.answers)
}

// Commands returns the commands set for the default scope and language code
// lang ("" is the fallback for all languages); nil when none were set.
func (s *Server) Commands(lang string) []Command {
	return s.ScopedCommands("default", lang)
}

// ScopedCommands returns the commands set for a scope, named by its type and
// ids: "default", "all_private_chats", "all_group_chats",
// "all_chat_administrators", "chat:<chat_id>", "chat_administrators:<chat_id>"
// or "chat_member:<chat_id>:<user_id>".
func (s *Server) ScopedCommands(scope, lang string) []Command {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.commands[commandsKey{scope, lang}])
}

// Webhook returns the webhook setWebhook configured.
func (s *Server) Webhook() Webhook {
	s.mu.Lock()
	defer s.mu.Unlock()
	w := s.webhook
	w.AllowedUpdates = slices.Clone(w.AllowedUpdates)
	return w
}

// Calls returns how many authorized requests for method arrived, failed ones
// included. Method names are case-insensitive, as in Telegram.
func (s *Server) Calls(method string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[strings.ToLower(method)]
}

// WaitSent waits until the bot sent at least n messages and returns them;
// the test fails after timeout. Call it from the test goroutine.
func (s *Server) WaitSent(t testing.TB, n int, timeout time.Duration) []SentMessage {
	t.Helper()
	var got []SentMessage
	s.waitFor(t, timeout, func() bool { got = slices.Clone(s.sent); return len(got) >= n }, func() string {
		return fmt.Sprintf("%d messages sent, want %d: %s", len(got), n, sentString(got))
	})
	return got
}

// WaitEdits waits until the bot made at least n edits and returns them.
func (s *Server) WaitEdits(t testing.TB, n int, timeout time.Duration) []Edit {
	t.Helper()
	var got []Edit
	s.waitFor(t, timeout, func() bool { got = slices.Clone(s.edits); return len(got) >= n }, func() string {
		return fmt.Sprintf("%d edits, want %d", len(got), n)
	})
	return got
}

// WaitCallbackAnswers waits until the bot answered at least n callback
// queries and returns the answers.
func (s *Server) WaitCallbackAnswers(t testing.TB, n int, timeout time.Duration) []CallbackAnswer {
	t.Helper()
	var got []CallbackAnswer
	s.waitFor(t, timeout, func() bool { got = slices.Clone(s.answers); return len(got) >= n }, func() string {
		return fmt.Sprintf("%d callback answers, want %d", len(got), n)
	})
	return got
}

// WaitCalls waits until at least n requests for method arrived, e.g. the
// retry after an injected 429, or the getUpdates that confirms a batch.
func (s *Server) WaitCalls(t testing.TB, method string, n int, timeout time.Duration) {
	t.Helper()
	m := strings.ToLower(method)
	var got int
	s.waitFor(t, timeout, func() bool { got = s.calls[m]; return got >= n }, func() string {
		return fmt.Sprintf("%d %s calls, want %d", got, method, n)
	})
}

// waitFor checks cond under s.mu after every change until it holds, failing
// the test with describe() after timeout.
func (s *Server) waitFor(t testing.TB, timeout time.Duration, cond func() bool, describe func() string) {
	t.Helper()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		s.mu.Lock()
		ok := cond()
		ch := s.changed
		s.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-ch:
		case <-timer.C:
			s.mu.Lock()
			msg := describe()
			s.mu.Unlock()
			t.Fatalf("faketelegram: after %v: %s", timeout, msg)
		}
	}
}

// ---- Failure injection ----

// FailNext makes the next n calls of method answer with Telegram's error
// envelope: error_code code, description (a standard one for the code when
// empty) and, when retryAfter > 0, parameters.retry_after. A 429 comes out of
// go-telegram/bot as *bot.TooManyRequestsError, a 403 wraps bot.ErrorForbidden.
// Calls queue up: FailNext twice fails 2n calls.
func (s *Server) FailNext(method string, n int, code int, description string, retryAfter int) {
	if n <= 0 || code < 400 {
		s.t.Errorf("faketelegram: FailNext(%q, %d, %d): want n > 0 and an error code", method, n, code)
		return
	}
	if description == "" {
		description = defaultDescription(code, retryAfter)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	m := strings.ToLower(method)
	for range n {
		s.failures[m] = append(s.failures[m], apiError{code: code, desc: description, retryAfter: retryAfter})
	}
}

// Block makes the user (or group) of chatID unreachable: sendMessage and
// editMessageText there answer 403, "bot was blocked by the user" for a
// private chat and "bot was kicked from the group chat" for a group.
func (s *Server) Block(chatID int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.blocked[chatID] = true
}

// Unblock undoes Block.
func (s *Server) Unblock(chatID int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.blocked, chatID)
}

// HoldUpdates makes getUpdates hand out nothing, as if no update had
// arrived (long polls keep waiting), until ReleaseUpdates. Updates injected
// meanwhile then reach the bot together in one batch, as when several users
// act at the same moment: since PressButton checks the message as it is when
// the press is injected, two users can press the same button before the bot
// has reacted to either.
func (s *Server) HoldUpdates() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.held = true
}

// ReleaseUpdates ends HoldUpdates: a waiting long poll answers at once with
// every queued update (up to its limit).
func (s *Server) ReleaseUpdates() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.held = false
	s.notify()
}

func defaultDescription(code, retryAfter int) string {
	switch code {
	case http.StatusTooManyRequests:
		return fmt.Sprintf("Too Many Requests: retry after %d", retryAfter)
	case http.StatusForbidden:
		return "Forbidden: bot was blocked by the user"
	case http.StatusBadRequest:
		return "Bad Request"
	}
	return http.StatusText(code)
}

// ---- Webhook driver ----

// PostWebhook delivers u to a bot's webhook endpoint the way Telegram does:
// a JSON POST with the X-Telegram-Bot-Api-Secret-Token header (left out when
// secret is empty). An update without id gets the next one, so ids keep
// growing across long polling and webhooks. The response body is already
// read: it can be read again and needs no Close.
func (s *Server) PostWebhook(t testing.TB, url, secret string, u models.Update) *http.Response {
	t.Helper()
	if u.ID == 0 {
		s.mu.Lock()
		s.lastUpdateID++
		u.ID = s.lastUpdateID
		s.mu.Unlock()
	}
	body, err := json.Marshal(&u)
	if err != nil {
		t.Fatalf("faketelegram: PostWebhook: encode update: %v", err)
	}
	s.mu.Lock()
	s.history[u.ID] = body
	s.mu.Unlock()
	return s.PostWebhookRaw(t, url, secret, body)
}

// PostWebhookRaw posts body as is, for malformed or hand-written updates.
func (s *Server) PostWebhookRaw(t testing.TB, url, secret string, body []byte) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatalf("faketelegram: PostWebhook: %v", err)
	}
	req.Header.Set("Content-Type", "application/json")
	if secret != "" {
		req.Header.Set("X-Telegram-Bot-Api-Secret-Token", secret)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		t.Fatalf("faketelegram: PostWebhook %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("faketelegram: PostWebhook %s: read response: %v", url, err)
	}
	resp.Body = io.NopCloser(bytes.NewReader(b))
	return resp
}

// ---- HTTP ----

// apiError is an error answer in Telegram's envelope.
type apiError struct {
	code       int
	desc       string
	retryAfter int
}

func badRequest(desc string) *apiError {
	return &apiError{code: http.StatusBadRequest, desc: "Bad Request: " + desc}
}

type envelope struct {
	OK          bool            `json:"ok"`
	Result      any             `json:"result,omitempty"`
	ErrorCode   int             `json:"error_code,omitempty"`
	Description string          `json:"description,omitempty"`
	Parameters  *envelopeParams `json:"parameters,omitempty"`
}

type envelopeParams struct {
	RetryAfter int `json:"retry_after,omitempty"`
}

type method func(s *Server, r *http.Request, p params) (any, *apiError)

// methods are keyed in lower case: Telegram matches method names
// case-insensitively.
var methods = map[string]method{
	"getme":               (*Server).getMe,
	"getupdates":          (*Server).getUpdates,
	"sendmessage":         (*Server).sendMessage,
	"editmessagetext":     (*Server).editMessageText,
	"answercallbackquery": (*Server).answerCallbackQuery,
	"setmycommands":       (*Server).setMyCommands,
	"getmycommands":       (*Server).getMyCommands,
	"deletemycommands":    (*Server).deleteMyCommands,
	"setwebhook":          (*Server).setWebhook,
	"deletewebhook":       (*Server).deleteWebhook,
	"getwebhookinfo":      (*Server).getWebhookInfo,
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	// The body is read before any answer, so a client still streaming its
	// multipart body (go-telegram/bot writes it through a pipe) never sees
	// the connection dropped under it.
	p, perr := parseParams(r)
	rest, ok := strings.CutPrefix(r.URL.Path, "/bot")
	if !ok {
		writeError(w, &apiError{code: http.StatusNotFound, desc: "Not Found"})
		return
	}
	token, name, _ := strings.Cut(rest, "/")
	if token != s.token {
		writeError(w, &apiError{code: http.StatusUnauthorized, desc: "Unauthorized"})
		return
	}
	name = strings.ToLower(name)
	s.mu.Lock()
	s.calls[name]++
	var injected *apiError
	if f := s.failures[name]; len(f) > 0 {
		injected = &f[0]
		s.failures[name] = f[1:]
	}
	s.notify()
	s.mu.Unlock()
	if injected != nil {
		writeError(w, injected)
		return
	}
	m, ok := methods[name]
	if !ok {
		writeError(w, &apiError{code: http.StatusNotFound, desc: "Not Found"})
		return
	}
	if perr != nil {
		writeError(w, perr)
		return
	}
	result, aerr := m(s, r, p)
	if aerr != nil {
		writeError(w, aerr)
		return
	}
	if result == nil {
		return // the client went away; nobody reads an answer
	}
	writeJSON(w, http.StatusOK, envelope{OK: true, Result: result})
}

func writeError(w http.ResponseWriter, e *apiError) {
	env := envelope{OK: false, ErrorCode: e.code, Description: e.desc}
	if e.retryAfter > 0 {
		env.Parameters = &envelopeParams{RetryAfter: e.retryAfter}
	}
	writeJSON(w, e.code, env)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v) // a client that left cannot be told
}

// params are a request's parameters, from wherever Telegram accepts them:
// the query string, a urlencoded or multipart form, or a JSON object. JSON
// values other than strings stay JSON text, as they arrive in forms.
type params map[string]string

const maxBody = 20 << 20

func parseParams(r *http.Request) (params, *apiError) {
	p := params{}
	for k, v := range r.URL.Query() {
		p[k] = v[0]
	}
	body := http.MaxBytesReader(nil, r.Body, maxBody)
	defer io.Copy(io.Discard, body)
	ct, mp, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch ct {
	case "multipart/form-data":
		mr := multipart.NewReader(body, mp["boundary"])
		for {
			part, err := mr.NextPart()
			if errors.Is(err, io.EOF) {
				break // also an empty body: go-telegram/bot sends one for methods without parameters
			}
			if err != nil {
				return p, badRequest("can't parse multipart body: " + err.Error())
			}
			v, err := io.ReadAll(part)
			if err != nil {
				return p, badRequest("can't read multipart body: " + err.Error())
			}
			p[part.FormName()] = string(v)
		}
	case "application/x-www-form-urlencoded":
		b, err := io.ReadAll(body)
		if err != nil {
			return p, badRequest("can't read body")
		}
		vals, err := url.ParseQuery(string(b))
		if err != nil {
			return p, badRequest("can't parse form body")
		}
		for k, v := range vals {
			p[k] = v[0]
		}
	case "application/json":
		b, err := io.ReadAll(body)
		if err != nil {
			return p, badRequest("can't read body")
		}
		if len(bytes.TrimSpace(b)) == 0 {
			break
		}
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(b, &obj); err != nil {
			return p, badRequest("can't parse JSON object")
		}
		for k, raw := range obj {
			raw = bytes.TrimSpace(raw)
			switch {
			case string(raw) == "null":
			case len(raw) > 0 && raw[0] == '"':
				var str string
				if err := json.Unmarshal(raw, &str); err != nil {
					return p, badRequest("can't parse JSON object")
				}
				p[k] = str
			default:
				p[k] = string(raw)
			}
		}
	}
	return p, nil
}

func (p params) int(name string) (int64, bool, *apiError) {
	v, ok := p[name]
	if !ok || v == "" {
		return 0, false, nil
	}
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err != nil {
		return 0, false, badRequest(fmt.Sprintf("invalid %s specified", name))
	}
	return n, true, nil
}

func (p params) bool(name string) bool {
	v := strings.ToLower(strings.TrimSpace(p[name]))
	return v == "true" || v == "1"
}

// chatID reads chat_id. The fake knows chats by number only; "@channel"
// usernames are answered like a chat that does not exist.
func (p params) chatID() (int64, *apiError) {
	v := strings.TrimSpace(p["chat_id"])
	if v == "" {
		return 0, badRequest("chat_id is empty")
	}
	id, err := strconv.ParseInt(v, 10, 64)
	if err != nil || id == 0 {
		return 0, badRequest("chat not found")
	}
	return id, nil
}

// replyMarkup reads reply_markup; kb is the inline keyboard if it is one.
func (p params) replyMarkup() (kb [][]models.InlineKeyboardButton, raw json.RawMessage, _ *apiError) {
	v, ok := p["reply_markup"]
	if !ok || strings.TrimSpace(v) == "" {
		return nil, nil, nil
	}
	var m struct {
		InlineKeyboard *[][]models.InlineKeyboardButton `json:"inline_keyboard"`
	}
	if err := json.Unmarshal([]byte(v), &m); err != nil {
		return nil, nil, badRequest("can't parse reply keyboard markup JSON object")
	}
	if m.InlineKeyboard == nil {
		return nil, json.RawMessage(v), nil
	}
	for _, row := range *m.InlineKeyboard {
		for _, b := range row {
			if len(b.CallbackData) > maxCallbackData {
				return nil, nil, badRequest("BUTTON_DATA_INVALID")
			}
			if !buttonHasAction(b) {
				return nil, nil, badRequest("can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard")
			}
		}
	}
	return *m.InlineKeyboard, json.RawMessage(v), nil
}

// buttonHasAction tells whether pressing b does something; Telegram refuses
// inline buttons that only have a text. go-telegram/bot always sends
// copy_text, with an empty text when unused.
func buttonHasAction(b models.InlineKeyboardButton) bool {
	return b.CallbackData != "" || b.URL != "" || b.WebApp != nil || b.LoginURL != nil ||
		b.SwitchInlineQuery != "" || b.SwitchInlineQueryCurrentChat != "" || b.SwitchInlineQueryChosenChat != nil ||
		b.CopyText.Text != "" || b.CallbackGame != nil || b.Pay
}

// replyTo reads reply_parameters, or the reply_to_message_id older clients send.
func (p params) replyTo() (id int, allowWithout bool, _ *apiError) {
	if v := strings.TrimSpace(p["reply_parameters"]); v != "" {
		var rp struct {
			MessageID                int  `json:"message_id"`
			AllowSendingWithoutReply bool `json:"allow_sending_without_reply"`
		}
		if err := json.Unmarshal([]byte(v), &rp); err != nil {
			return 0, false, badRequest("can't parse reply parameters JSON object")
		}
		return rp.MessageID, rp.AllowSendingWithoutReply, nil
	}
	n, _, err := p.int("reply_to_message_id")
	return int(n), p.bool("allow_sending_without_reply"), err
}

// ---- Methods ----

func (s *Server) getMe(_ *http.Request, _ params) (any, *apiError) {
	return s.me, nil
}

// getUpdates follows Telegram: an offset confirms (forgets) every update
// below it, a negative offset keeps only the last -offset updates, limit is
// 1..100, and timeout > 0 holds the request until an update arrives.
func (s *Server) getUpdates(r *http.Request, p params) (any, *apiError) {
	offset, _, err := p.int("offset")
	if err != nil {
		return nil, err
	}
	limit, ok, err := p.int("limit")
	if err != nil {
		return nil, err
	}
	if !ok || limit <= 0 || limit > defaultUpdatesLimit {
		limit = defaultUpdatesLimit
	}
	timeout, _, err := p.int("timeout")
	if err != nil {
		return nil, err
	}
	timer := time.NewTimer(time.Duration(max(timeout, 0)) * time.Second)
	defer timer.Stop()
	expired := timeout <= 0

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.webhook.URL != "" {
		return nil, &apiError{code: http.StatusConflict, desc: "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first"}
	}
	s.pollGen++
	gen := s.pollGen
	s.confirm(offset)
	s.notify() // wakes an older poll so it sees it was replaced
	for {
		switch {
		case gen != s.pollGen:
			return nil, &apiError{code: http.StatusConflict, desc: "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running"}
		case s.webhook.URL != "":
			return nil, &apiError{code: http.StatusConflict, desc: "Conflict: terminated by setWebhook request"}
		}
		n := min(int(limit), len(s.queue))
		if s.held {
			n = 0
		}
		if n > 0 || expired || s.closed {
			batch := make([]json.RawMessage, n)
			for i := range n {
				batch[i] = s.queue[i].raw
				s.queue[i].forced = false
			}
			return batch, nil
		}
		ch := s.changed
		s.mu.Unlock()
		select {
		case <-ch:
		case <-timer.C:
			expired = true
		case <-s.done:
		case <-r.Context().Done():
			s.mu.Lock()
			return nil, nil
		}
		s.mu.Lock()
	}
}

// confirm drops what offset acknowledges. Callers hold s.mu.
func (s *Server) confirm(offset int64) {
	switch {
	case offset > 0:
		s.queue = slices.DeleteFunc(s.queue, func(q queued) bool { return q.id < offset && !q.forced })
	case offset < 0:
		if keep := int(-offset); keep < len(s.queue) {
			s.queue = slices.Delete(s.queue, 0, len(s.queue)-keep)
		}
	}
}

func (s *Server) sendMessage(_ *http.Request, p params) (any, *apiError) {
	chatID, err := p.chatID()
	if err != nil {
		return nil, err
	}
	text, parseMode := p["text"], p["parse_mode"]
	plain, err := formatted(text, parseMode)
	if err != nil {
		return nil, err
	}
	kb, markup, err := p.replyMarkup()
	if err != nil {
		return nil, err
	}
	replyTo, allowWithout, err := p.replyTo()
	if err != nil {
		return nil, err
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.blocked[chatID] {
		return nil, forbidden(chatID)
	}
	var replied *models.Message
	if replyTo != 0 {
		if st, ok := s.messages[msgKey{chatID, replyTo}]; ok {
			cp := st.msg
			cp.ReplyToMessage = nil
			replied = &cp
		} else if !allowWithout {
			return nil, badRequest("message to be replied not found")
		}
	}
	s.lastMessageID++
	me := s.me
	m := models.Message{ID: s.lastMessageID, From: &me, Chat: s.chatFor(chatID), Date: int(s.now().Unix()),
		Text: plain, ReplyToMessage: replied}
	if kb != nil {
		m.ReplyMarkup = &models.InlineKeyboardMarkup{InlineKeyboard: kb}
	}
	s.messages[msgKey{chatID, m.ID}] = &storedMessage{msg: m, byBot: true,
		format: formatKey(text, parseMode), markup: markupKey(kb)}
	s.sent = append(s.sent, SentMessage{ChatID: chatID, MessageID: m.ID, Text: text, ParseMode: parseMode,
		ReplyTo: replyTo, Keyboard: kb, ReplyMarkup: markup, Params: p, Message: m})
	s.notify()
	return m, nil
}

func (s *Server) editMessageText(_ *http.Request, p params) (any, *apiError) {
	text, parseMode := p["text"], p["parse_mode"]
	plain, err := formatted(text, parseMode)
	if err != nil {
		return nil, err
	}
	kb, markup, err := p.replyMarkup()
	if err != nil {
		return nil, err
	}
	if kb == nil && markup != nil {
		return nil, badRequest("inline keyboard expected")
	}
	if id := p["inline_message_id"]; id != "" {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.edits = append(s.edits, Edit{InlineMessageID: id, Text: text, ParseMode: parseMode, Keyboard: kb, ReplyMarkup: markup, Params: p})
		s.notify()
		return true, nil
	}
	chatID, err := p.chatID()
	if err != nil {
		return nil, err
	}
	msgID, ok, err := p.int("message_id")
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, badRequest("message identifier is not specified")
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.blocked[chatID] {
		return nil, forbidden(chatID)
	}
	st, ok := s.messages[msgKey{chatID, int(msgID)}]
	switch {
	case !ok:
		return nil, badRequest("message to edit not found")
	case !st.byBot:
		return nil, badRequest("message can't be edited")
	case st.format == formatKey(text, parseMode) && st.markup == markupKey(kb):
		return nil, badRequest("message is not modified: specified new message content and reply markup are exactly the same as a current content and reply markup of the message")
	}
	// A new value, never a change in place: earlier copies handed out
	// (Sent, replies) share its pointers.
	m := st.msg
	m.Text = plain
	m.EditDate = int(s.now().Unix())
	m.ReplyMarkup = nil
	if kb != nil {
		m.ReplyMarkup = &models.InlineKeyboardMarkup{InlineKeyboard: kb}
	}
	*st = storedMessage{msg: m, byBot: true, format: formatKey(text, parseMode), markup: markupKey(kb)}
	s.edits = append(s.edits, Edit{ChatID: chatID, MessageID: m.ID, Text: text, ParseMode: parseMode,
		Keyboard: kb, ReplyMarkup: markup, Params: p, Message: m})
	s.notify()
	return m, nil
}

func (s *Server) answerCallbackQuery(_ *http.Request, p params) (any, *apiError) {
	cacheTime, _, err := p.int("cache_time")
	if err != nil {
		return nil, err
	}
	id := p["callback_query_id"]
	s.mu.Lock()
	defer s.mu.Unlock()
	// Telegram takes one answer per query; a second one, like an unknown id,
	// is "too old".
	if answered, ok := s.queries[id]; !ok || answered {
		return nil, badRequest("query is too old and response timeout expired or query ID is invalid")
	}
	s.queries[id] = true
	s.answers = append(s.answers, CallbackAnswer{QueryID: id, Text: p["text"], ShowAlert: p.bool("show_alert"),
		URL: p["url"], CacheTime: int(cacheTime)})
	s.notify()
	return true, nil
}

var commandName = regexp.MustCompile(`^[a-z0-9_]+$`)

func (s *Server) setMyCommands(_ *http.Request, p params) (any, *apiError) {
	raw, ok := p["commands"]
	if !ok {
		return nil, badRequest(`parameter "commands" is required`)
	}
	var cmds []Command
	if err := json.Unmarshal([]byte(raw), &cmds); err != nil {
		return nil, badRequest("can't parse commands JSON object")
	}
	if len(cmds) > maxCommands {
		return nil, badRequest("too many commands specified")
	}
	for _, c := range cmds {
		// Telegram wants the bare name: lower-case Latin letters, digits and
		// underscores, no leading slash.
		if len(c.Command) > maxCommandLength || !commandName.MatchString(c.Command) {
			return nil, badRequest("BOT_COMMAND_INVALID")
		}
		if d := strings.TrimSpace(c.Description); d == "" || utf8.RuneCountInString(d) > maxDescriptionRunes {
			return nil, badRequest("BOT_COMMAND_DESCRIPTION_INVALID")
		}
	}
	key, err := commandsKeyOf(p)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.commands[key] = cmds
	s.notify()
	return true, nil
}

func (s *Server) getMyCommands(_ *http.Request, p params) (any, *apiError) {
	key, err := commandsKeyOf(p)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cmds := s.commands[key]
	if cmds == nil {
		cmds = []Command{}
	}
	return cmds, nil
}

func (s *Server) deleteMyCommands(_ *http.Request, p params) (any, *apiError) {
	key, err := commandsKeyOf(p)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.commands, key)
	s.notify()
	return true, nil
}

// commandsKeyOf reads scope and language_code. Telegram takes only two-letter
// ISO 639-1 codes: "pt-BR" or "en_US" are refused.
func commandsKeyOf(p params) (commandsKey, *apiError) {
	lang := p["language_code"]
	if lang != "" && (len(lang) != 2 || lang[0] < 'a' || lang[0] > 'z' || lang[1] < 'a' || lang[1] > 'z') {
		return commandsKey{}, badRequest("invalid language code specified")
	}
	scope := "default"
	if v := strings.TrimSpace(p["scope"]); v != "" {
		var sc struct {
			Type   string          `json:"type"`
			ChatID json.RawMessage `json:"chat_id"`
			UserID int64           `json:"user_id"`
		}
		if err := json.Unmarshal([]byte(v), &sc); err != nil {
			return commandsKey{}, badRequest("can't parse BotCommandScope JSON object")
		}
		chat := strings.Trim(string(sc.ChatID), `"`)
		switch sc.Type {
		case "default", "all_private_chats", "all_group_chats", "all_chat_administrators":
			scope = sc.Type
		case "chat", "chat_administrators":
			scope = sc.Type + ":" + chat
		case "chat_member":
			scope = fmt.Sprintf("chat_member:%s:%d", chat, sc.UserID)
		default:
			return commandsKey{}, badRequest("unsupported bot command scope type")
		}
	}
	return commandsKey{scope: scope, lang: lang}, nil
}

var secretToken = regexp.MustCompile(`^[A-Za-z0-9_-]{1,256}$`)

func (s *Server) setWebhook(_ *http.Request, p params) (any, *apiError) {
	raw := strings.TrimSpace(p["url"])
	wh := Webhook{URL: raw, SecretToken: p["secret_token"], MaxConnections: 40}
	if raw != "" {
		u, err := url.Parse(raw)
		if err != nil || u.Scheme != "https" || u.Host == "" {
			return nil, badRequest("bad webhook: An HTTPS URL must be provided for webhook")
		}
		if port := u.Port(); port != "" && port != "443" && port != "80" && port != "88" && port != "8443" {
			return nil, badRequest("bad webhook: Webhook can be set up only on ports 80, 88, 443 or 8443")
		}
		if wh.SecretToken != "" && !secretToken.MatchString(wh.SecretToken) {
			return nil, badRequest("secret token contains unallowed characters")
		}
		if n, ok, err := p.int("max_connections"); err != nil {
			return nil, err
		} else if ok {
			wh.MaxConnections = int(n)
		}
		if v := p["allowed_updates"]; v != "" {
			if err := json.Unmarshal([]byte(v), &wh.AllowedUpdates); err != nil {
				return nil, badRequest("can't parse allowed updates JSON object")
			}
		}
	} else {
		wh = Webhook{} // an empty url removes the webhook
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.webhook = wh
	if p.bool("drop_pending_updates") {
		s.queue = nil
	}
	s.notify() // a waiting long poll is terminated by the webhook
	return true, nil
}

func (s *Server) deleteWebhook(_ *http.Request, p params) (any, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.webhook = Webhook{}
	if p.bool("drop_pending_updates") {
		s.queue = nil
	}
	s.notify()
	return true, nil
}

func (s *Server) getWebhookInfo(_ *http.Request, _ params) (any, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	info := models.WebhookInfo{URL: s.webhook.URL, PendingUpdateCount: len(s.queue), AllowedUpdates: s.webhook.AllowedUpdates}
	if s.webhook.URL != "" {
		info.MaxConnections = s.webhook.MaxConnections
	}
	return info, nil
}

// chatFor is the chat object for a chat the bot writes to: the one users'
// messages showed, or one guessed from the id. Callers hold s.mu.
func (s *Server) chatFor(id int64) Chat {
	if c, ok := s.chats[id]; ok {
		return c
	}
	switch {
	case id > 0:
		return Chat{ID: id, Type: models.ChatTypePrivate}
	case id < -1_000_000_000_000:
		return Chat{ID: id, Type: models.ChatTypeSupergroup}
	default:
		return Chat{ID: id, Type: models.ChatTypeGroup}
	}
}

func forbidden(chatID int64) *apiError {
	if chatID < 0 {
		return &apiError{code: http.StatusForbidden, desc: "Forbidden: bot was kicked from the group chat"}
	}
	return &apiError{code: http.StatusForbidden, desc: "Forbidden: bot was blocked by the user"}
}

// ---- Text rules ----

// formatted checks text the way Telegram does for parse_mode and returns
// what users see: markup removed, surrounding whitespace trimmed.
func formatted(text, parseMode string) (string, *apiError) {
	if strings.TrimSpace(text) == "" {
		return "", badRequest("message text is empty")
	}
	var plain string
	var err error
	switch strings.ToLower(parseMode) {
	case "":
		plain = text
	case "html":
		plain, err = parseHTML(text)
	case "markdownv2":
		plain, err = parseMarkdownV2(text)
	case "markdown":
		plain, err = parseMarkdown(text)
	default:
		return "", badRequest("unsupported parse_mode")
	}
	if err != nil {
		return "", badRequest("can't parse entities: " + err.Error())
	}
	plain = strings.TrimSpace(plain)
	if plain == "" {
		return "", badRequest("message text is empty")
	}
	if utf16Len(plain) > maxTextLength {
		return "", badRequest("message is too long")
	}
	return plain, nil
}

// formatKey identifies text with its formatting, for "message is not
// modified". It compares the source, so the same result written in another
// parse mode counts as a change (Telegram would refuse it).
func formatKey(text, parseMode string) string {
	return strings.ToLower(parseMode) + "\x00" + text
}

func markupKey(kb [][]models.InlineKeyboardButton) string {
	if kb == nil {
		return ""
	}
	b, _ := json.Marshal(kb)
	return string(b)
}

func utf16Len(s string) int {
	n := 0
	for _, r := range s {
		if r >= 0x10000 {
			n += 2
		} else {
			n++
		}
	}
	return n
}

// htmlTags are the tags Telegram's HTML parse mode supports.
var htmlTags = map[string]bool{
	"b": true, "strong": true, "i": true, "em": true, "u": true, "ins": true, "s": true, "strike": true, "del": true,
	"a": true, "code": true, "pre": true, "span": true, "tg-spoiler": true, "tg-emoji": true, "blockquote": true,
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// parseHTML follows Telegram's HTML parse mode: only the supported tags,
// properly nested; '<' must be written &lt; (a bare '&' that starts no
// entity is kept as text). Errors read like Telegram's.
func parseHTML(s string) (string, error) {
	var out strings.Builder
	var open []string
	for i := 0; i < len(s); {
		switch s[i] {
		case '&':
			if r, n := htmlEntity(s[i:]); n > 0 {
				out.WriteRune(r)
				i += n
				continue
			}
			out.WriteByte('&')
			i++
		case '<':
			start := i
			i++
			if i < len(s) && s[i] == '/' {
				j := i + 1
				for j < len(s) && s[j] != '>' && !isSpace(s[j]) {
					j++
				}
				name := strings.ToLower(s[i+1 : j])
				for j < len(s) && isSpace(s[j]) {
					j++
				}
				if j >= len(s) || s[j] != '>' {
					return "", fmt.Errorf("Unclosed end tag at byte offset %d", start)
				}
				if len(open) == 0 {
					return "", fmt.Errorf("Unexpected end tag at byte offset %d", start)
				}
				if top := open[len(open)-1]; top != name {
					return "", fmt.Errorf("Unmatched end tag at byte offset %d, expected \"</%s>\", found \"</%s>\"", start, top, name)
				}
				open = open[:len(open)-1]
				i = j + 1
				continue
			}
			j := i
			for j < len(s) && s[j] != '>' && !isSpace(s[j]) {
				j++
			}
			name := strings.ToLower(s[i:j])
			if !htmlTags[name] {
				return "", fmt.Errorf("Unsupported start tag \"%s\" at byte offset %d", name, start)
			}
			for { // attributes
				for j < len(s) && isSpace(s[j]) {
					j++
				}
				if j >= len(s) {
					return "", fmt.Errorf("Unclosed start tag at byte offset %d", start)
				}
				if s[j] == '>' {
					break
				}
				for j < len(s) && s[j] != '=' && s[j] != '>' && !isSpace(s[j]) {
					j++
				}
				for j < len(s) && isSpace(s[j]) {
					j++
				}
				if j < len(s) && s[j] == '=' {
					j++
					for j < len(s) && isSpace(s[j]) {
						j++
					}
					if j < len(s) && (s[j] == '"' || s[j] == '\'') {
						k := strings.IndexByte(s[j+1:], s[j])
						if k < 0 {
							return "", fmt.Errorf("Unclosed start tag at byte offset %d", start)
						}
						j += k + 2
					} else {
						for j < len(s) && s[j] != '>' && !isSpace(s[j]) {
							j++
						}
					}
				}
			}
			open = append(open, name)
			i = j + 1
		default:
			out.WriteByte(s[i])
			i++
		}
	}
	if len(open) > 0 {
		return "", fmt.Errorf("Can't find end tag corresponding to start tag \"%s\"", open[len(open)-1])
	}
	return out.String(), nil
}

// htmlEntity decodes the entity s starts with: the four named ones Telegram
// knows, or a numeric one. n is 0 when s starts none.
func htmlEntity(s string) (r rune, n int) {
	end := strings.IndexByte(s, ';')
	if end < 2 || end > 10 {
		return 0, 0
	}
	name := s[1:end]
	switch name {
	case "lt":
		return '<', end + 1
	case "gt":
		return '>', end + 1
	case "amp":
		return '&', end + 1
	case "quot":
		return '"', end + 1
	}
	if num, ok := strings.CutPrefix(name, "#"); ok {
		base := 10
		if h, ok := strings.CutPrefix(strings.ToLower(num), "x"); ok {
			num, base = h, 16
		}
		v, err := strconv.ParseUint(num, base, 32)
		if err == nil && v > 0 && v <= utf8.MaxRune {
			return rune(v), end + 1
		}
	}
	return 0, 0
}

// parseMarkdownV2 follows Telegram's MarkdownV2: every one of
// _*[]()~`>#+-=|{}.! outside code must be escaped with '\' unless it opens or
// closes an entity, and every entity must be closed. "Total: 5." fails, as it
// does in production.
func parseMarkdownV2(s string) (string, error) {
	type entity struct {
		kind string
		at   int
	}
	var open []entity
	var out strings.Builder
	n := len(s)
	at := func(i int) byte {
		if i < n {
			return s[i]
		}
		return 0
	}
	reserved := func(c byte) error {
		return fmt.Errorf("Character '%c' is reserved and must be escaped with the preceding '\\'", c)
	}
	for i := 0; i < n; {
		c := s[i]
		if c == '\\' && at(i+1) > 0 && at(i+1) <= 126 {
			out.WriteByte(s[i+1])
			i += 2
			continue
		}
		top := ""
		if len(open) > 0 {
			top = open[len(open)-1].kind
		}
		if top == "Code" || top == "Pre" { // only the closing backticks count inside code
			switch {
			case top == "Code" && c == '`':
				open = open[:len(open)-1]
				i++
			case top == "Pre" && strings.HasPrefix(s[i:], "```"):
				open = open[:len(open)-1]
				i += 3
			default:
				out.WriteByte(c)
				i++
			}
			continue
		}
		if !strings.ContainsRune("_*[]()~`>#+-=|{}.!", rune(c)) {
			out.WriteByte(c)
			i++
			continue
		}
		var ends bool
		switch top {
		case "Bold":
			ends = c == '*'
		case "Italic":
			ends = c == '_' && at(i+1) != '_'
		case "Underline":
			ends = c == '_' && at(i+1) == '_'
		case "Strikethrough":
			ends = c == '~'
		case "Spoiler":
			ends = c == '|' && at(i+1) == '|'
		case "TextUrl", "CustomEmoji":
			ends = c == ']'
		}
		if ends {
			open = open[:len(open)-1]
			switch top {
			case "Underline", "Spoiler":
				i += 2
			case "TextUrl", "CustomEmoji":
				i++
				if at(i) == '(' {
					j := i + 1
					for j < n && s[j] != ')' {
						if s[j] == '\\' && at(j+1) > 0 && at(j+1) <= 126 {
							j++
						}
						j++
					}
					if j >= n {
						return "", fmt.Errorf("Can't find end of a URL at byte offset %d", i+1)
					}
					i = j + 1
				} else if top == "CustomEmoji" {
					return "", fmt.Errorf("Custom emoji entity must contain a tg://emoji URL")
				}
			default:
				i++
			}
			continue
		}
		lineStart := i == 0 || s[i-1] == '\n'
		switch {
		case lineStart && c == '>': // block quotation
			i++
			continue
		case lineStart && strings.HasPrefix(s[i:], "**>"): // expandable block quotation
			i += 3
			continue
		case c == '|' && at(i+1) == '|' && (i+2 == n || s[i+2] == '\n'): // end of an expandable quotation
			i += 2
			continue
		}
		begin := i
		switch c {
		case '_':
			if at(i+1) == '_' {
				open = append(open, entity{"Underline", begin})
				i += 2
			} else {
				open = append(open, entity{"Italic", begin})
				i++
			}
		case '*':
			open = append(open, entity{"Bold", begin})
			i++
		case '~':
			open = append(open, entity{"Strikethrough", begin})
			i++
		case '|':
			if at(i+1) != '|' {
				return "", reserved(c)
			}
			open = append(open, entity{"Spoiler", begin})
			i += 2
		case '[':
			open = append(open, entity{"TextUrl", begin})
			i++
		case '!':
			if at(i+1) != '[' {
				return "", reserved(c)
			}
			open = append(open, entity{"CustomEmoji", begin})
			i += 2
		case '`':
			if strings.HasPrefix(s[i:], "```") {
				open = append(open, entity{"Pre", begin})
				i += 3
				j := i
				for j < n && !isSpace(s[j]) && s[j] != '`' {
					j++
				}
				if j != i && j < n && s[j] != '`' {
					i = j // a language name
				}
				if at(i) == '\n' {
					i++
				}
			} else {
				open = append(open, entity{"Code", begin})
				i++
			}
		default:
			return "", reserved(c)
		}
	}
	if len(open) > 0 {
		e := open[len(open)-1]
		return "", fmt.Errorf("Can't find end of %s entity at byte offset %d", e.kind, e.at)
	}
	return out.String(), nil
}

// parseMarkdown follows Telegram's legacy Markdown: *bold*, _italic_, `code`,
// ```pre``` and [text](url), not nested; an entity left open fails.
func parseMarkdown(s string) (string, error) {
	var out strings.Builder
	n := len(s)
	for i := 0; i < n; {
		c := s[i]
		if c == '\\' && i+1 < n && strings.IndexByte("_*`[", s[i+1]) >= 0 {
			out.WriteByte(s[i+1])
			i += 2
			continue
		}
		if strings.IndexByte("_*`[", c) < 0 {
			out.WriteByte(c)
			i++
			continue
		}
		begin := i
		end := string(c)
		switch {
		case c == '[':
			end = "]"
			i++
		case strings.HasPrefix(s[i:], "```"):
			end = "```"
			i += 3
		default:
			i++
		}
		j := strings.Index(s[i:], end)
		if j < 0 {
			return "", fmt.Errorf("Can't find end of the entity starting at byte offset %d", begin)
		}
		out.WriteString(s[i : i+j])
		i += j + len(end)
		if c == '[' && i < n && s[i] == '(' {
			if k := strings.IndexByte(s[i:], ')'); k >= 0 {
				i += k + 1
			}
		}
	}
	return out.String(), nil
}

// commandEntities marks /commands (and /command@bot) that start the text or
// follow whitespace, with offsets and lengths in UTF-16 code units as
// Telegram counts them.
func commandEntities(text string) []models.MessageEntity {
	var ents []models.MessageEntity
	isCmd := func(c byte) bool {
		return c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
	}
	u16 := 0
	prevSpace := true
	for i := 0; i < len(text); {
		if text[i] == '/' && prevSpace {
			j := i + 1
			for j < len(text) && isCmd(text[j]) {
				j++
			}
			if j > i+1 && j-i-1 <= 64 {
				if j < len(text) && text[j] == '@' {
					k := j + 1
					for k < len(text) && isCmd(text[k]) {
						k++
					}
					if k-j-1 >= 3 {
						j = k
					}
				}
				// ASCII only, so bytes and UTF-16 units agree.
				ents = append(ents, models.MessageEntity{Type: models.MessageEntityTypeBotCommand, Offset: u16, Length: j - i})
				u16 += j - i
				i = j
				prevSpace = false
				continue
			}
		}
		r, size := utf8.DecodeRuneInString(text[i:])
		u16 += utf16Len(string(r))
		prevSpace = r == ' ' || r == '\n' || r == '\t'
		i += size
	}
	return ents
}

func hasButton(kb *models.InlineKeyboardMarkup, data string) bool {
	if kb == nil {
		return false
	}
	for _, row := range kb.InlineKeyboard {
		for _, b := range row {
			if b.CallbackData == data {
				return true
			}
		}
	}
	return false
}

func keyboardString(kb *models.InlineKeyboardMarkup) string {
	if kb == nil {
		return "none"
	}
	var bs []string
	for _, row := range kb.InlineKeyboard {
		for _, b := range row {
			bs = append(bs, fmt.Sprintf("%q→%q", b.Text, b.CallbackData))
		}
	}
	return strings.Join(bs, ", ")
}

func sentString(sent []SentMessage) string {
	var parts []string
	for _, m := range sent {
		parts = append(parts, fmt.Sprintf("[chat %d] %q", m.ChatID, m.Text))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, "; ")
}
