// Package telegram is the Telegram adapter: it turns updates (long polling by
// default, a webhook when a secret is configured) into bot.Requests and sends
// the replies back, handling each update id at most once. Button presses
// (callback queries) go to Router.Press; when a button asks for text, the
// adapter sends a force-reply prompt and hands the reply to Router.Submit.
// Send delivers messages Tally sends on its own (bot.Sender).
package telegram

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	tgbot "github.com/go-telegram/bot"
	"github.com/go-telegram/bot/models"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tally-loyalty/tally/bot"
	"github.com/tally-loyalty/tally/locales"
)

// Config is what the adapter needs.
type Config struct {
	Token         string
	APIURL        string // default https://api.telegram.org
	WebhookSecret string // webhook mode when set
	Router        *bot.Router
	DB            *pgxpool.Pool // remembers handled update ids and open prompts
	Log           *slog.Logger
	// Unreachable is told when a user blocked the bot (403), so reminders skip them.
	Unreachable func(ctx context.Context, platform, userID string)
}

// Adapter connects the router to one Telegram bot.
type Adapter struct {
	cfg      Config
	b        *tgbot.Bot
	username string
	botID    int64
	log      *slog.Logger
}

// maxSendAttempts bounds retries of one reply after 429s.
const maxSendAttempts = 3

// New checks the token with getMe and returns the adapter. The token never
// appears in what it logs or returns.
func New(ctx context.Context, cfg Config) (*Adapter, error) {
	if cfg.APIURL == "" {
		cfg.APIURL = "https://api.telegram.org"
	}
	a := &Adapter{cfg: cfg, log: cfg.Log.With("platform", "telegram")}
	opts := []tgbot.Option{
		tgbot.WithServerURL(strings.TrimRight(cfg.APIURL, "/")),
		tgbot.WithSkipGetMe(),
		tgbot.WithDefaultHandler(a.handle),
		tgbot.WithErrorsHandler(func(err error) { a.log.Warn("telegram client error", "err", a.redact(err)) }),
		tgbot.WithWorkers(4),
	}
	if cfg.WebhookSecret != "" {
		opts = append(opts, tgbot.WithWebhookSecretToken(cfg.WebhookSecret))
	}
	b, err := tgbot.New(cfg.Token, opts...)
	if err != nil {
		return nil, fmt.Errorf("telegram: %s", a.redact(err))
	}
	a.b = b
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	me, err := b.GetMe(cctx)
	if err != nil {
		return nil, fmt.Errorf("telegram: getMe at %s: %s (check TELEGRAM_BOT_TOKEN and TELEGRAM_API_URL)", cfg.APIURL, a.redact(err))
	}
	a.username, a.botID = me.Username, me.ID
	return a, nil
}

// redact removes the token from error texts (the client puts URLs with the
// token in them).
func (a *Adapter) redact(err error) string {
	if err == nil {
		return ""
	}
	s := err.Error()
	if a.cfg.Token != "" {
		s = strings.ReplaceAll(s, a.cfg.Token, "<TELEGRAM_BOT_TOKEN>")
	}
	return s
}

// Username is the bot's @username from getMe.
func (a *Adapter) Username() string { return a.username }

// Run receives updates until ctx ends: long polling, or in webhook mode the
// workers that take updates from WebhookHandler.
func (a *Adapter) Run(ctx context.Context) {
	if a.cfg.WebhookSecret != "" {
		a.b.StartWebhook(ctx)
		return
	}
	a.b.Start(ctx)
}

// WebhookHandler serves POST /telegram/webhook: the secret header is compared
// in constant time (401 otherwise) and a body that is no update gets 400, both
// before the library sees the request (it answers 200 to anything).
func (a *Adapter) WebhookHandler() http.Handler {
	inner := a.b.WebhookHandler()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := r.Header.Get("X-Telegram-Bot-Api-Secret-Token")
		if subtle.ConstantTimeCompare([]byte(got), []byte(a.cfg.WebhookSecret)) != 1 {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
		if err != nil {
			http.Error(w, "body too large", http.StatusBadRequest)
			return
		}
		var upd models.Update
		if err := json.Unmarshal(body, &upd); err != nil || upd.ID == 0 {
			http.Error(w, "not a Telegram update", http.StatusBadRequest)
			return
		}
		r.Body = io.NopCloser(strings.NewReader(string(body)))
		inner(w, r)
	})
}

// RegisterCommands sets the command menu for the default language and for
// every supported language Telegram can address (two-letter codes: pt for
// pt-BR, zh for zh-CN).
func (a *Adapter) RegisterCommands(ctx context.Context) error {
	cat := a.cfg.Router.Catalog()
	set := func(code, langCode string) error {
		l := cat.For(code)
		var cmds []models.BotCommand
		for _, c := range a.cfg.Router.Commands() {
			if c.Moderator {
				continue
			}
			cmds = append(cmds, models.BotCommand{Command: c.Name, Description: l.T(c.Desc, nil)})
		}
		_, err := a.b.SetMyCommands(ctx, &tgbot.SetMyCommandsParams{Commands: cmds, LanguageCode: langCode})
		if err != nil {
			return fmt.Errorf("telegram: setMyCommands %s: %s", langCode, a.redact(err))
		}
		return nil
	}
	if err := set("en", ""); err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, code := range locales.Supported {
		two, _, _ := strings.Cut(code, "-")
		if seen[two] {
			continue // zh-TW shares Telegram's "zh" with zh-CN, which comes first
		}
		seen[two] = true
		if err := set(code, two); err != nil {
			return err
		}
	}
	return nil
}

// handle answers one update. It runs on the library's workers.
func (a *Adapter) handle(ctx context.Context, b *tgbot.Bot, upd *models.Update) {
	if upd.CallbackQuery != nil {
		a.handlePress(ctx, upd)
		return
	}
	msg := upd.Message
	if msg == nil || msg.From == nil || msg.Text == "" || msg.From.IsBot {
		return // stickers, photos, edits, joins: nothing to answer
	}
	// A reply to one of the bot's prompts is no command but an answer; only
	// replies to the bot's own messages cost a lookup.
	if rt := msg.ReplyToMessage; rt != nil && rt.From != nil && rt.From.ID == a.botID && a.answerPrompt(ctx, msg) {
		return
	}
	cmd, args, ok := bot.ParseText(msg.Text, a.username)
	if !ok {
		return
	}
	group := msg.Chat.Type != models.ChatTypePrivate
	addressed := strings.Contains(strings.Fields(msg.Text)[0], "@")
	if group && !addressed && !a.cfg.Router.Has(cmd) {
		return // a group's other bots get commands like /warn too: not ours to answer
	}
	if !a.once(ctx, upd) {
		return
	}
	req := bot.Request{
		User:    userOf(msg.From),
		ChatID:  strconv.FormatInt(msg.Chat.ID, 10),
		Group:   group,
		Command: cmd,
		Args:    args,
	}
	// In a forum topic, Telegram puts the topic's opening message in
	// reply_to_message when nobody was replied to: that is no reply.
	if rt := msg.ReplyToMessage; rt != nil && rt.From != nil && !rt.From.IsBot && rt.ForumTopicCreated == nil &&
		!(msg.IsTopicMessage && rt.ID == msg.MessageThreadID) {
		u := userOf(rt.From)
		req.ReplyTo = &u
	}
	reply := a.cfg.Router.Handle(ctx, req)
	if reply.Text == "" {
		return
	}
	if !group || !reply.Private {
		a.deliver(ctx, outgoing{chatID: msg.Chat.ID, replyTo: msg.ID, text: reply.Text, markup: keyboard(reply.Buttons)}, req.User.ID)
		return
	}
	// A private answer asked for in a group (a balance, a link code) goes to
	// the member's private chat; the group only learns where it went.
	l := a.cfg.Router.Catalog().For(reply.Locale)
	switch _, err := a.send(ctx, outgoing{chatID: msg.From.ID, text: reply.Text, markup: keyboard(reply.Buttons)}); {
	case err == nil:
		a.deliver(ctx, outgoing{chatID: msg.Chat.ID, replyTo: msg.ID, text: l.T("reply_sent_privately", nil)}, req.User.ID)
	case errors.Is(err, tgbot.ErrorForbidden):
		// The member never opened a chat with the bot, or blocked it.
		a.deliver(ctx, outgoing{chatID: msg.Chat.ID, replyTo: msg.ID, text: l.T("reply_needs_private_chat", nil)}, req.User.ID)
	default:
		a.log.Error("telegram: send private reply", "err", a.redact(err))
	}
}

// deliver sends a reply and handles what send reports: a 403 from a private
// chat means the user blocked the bot (from a group it means the bot lost the
// group, which says nothing about the user).
func (a *Adapter) deliver(ctx context.Context, m outgoing, userID string) {
	_, err := a.send(ctx, m)
	switch {
	case err == nil:
	case errors.Is(err, tgbot.ErrorForbidden) && strconv.FormatInt(m.chatID, 10) == userID:
		a.log.Info("telegram: user blocked the bot", "user", userID)
		if a.cfg.Unreachable != nil {
			a.cfg.Unreachable(ctx, "telegram", userID)
		}
	default:
		a.log.Error("telegram: send reply", "chat", m.chatID, "err", a.redact(err))
	}
}

func userOf(u *models.User) bot.User {
	name := strings.TrimSpace(u.FirstName + " " + u.LastName)
	if name == "" {
		name = u.Username
	}
	return bot.User{Platform: "telegram", ID: strconv.FormatInt(u.ID, 10), Name: name, Locale: u.LanguageCode}
}

// outgoing is one message to send in a chat.
type outgoing struct {
	chatID   int64
	replyTo  int // the message replied to, 0 for none
	text     string
	markup   models.ReplyMarkup // inline keyboard or force reply; nil for none
	entities []models.MessageEntity
}

// send sends one message, waiting out 429s (retry_after) a few times.
func (a *Adapter) send(ctx context.Context, m outgoing) (*models.Message, error) {
	params := &tgbot.SendMessageParams{ChatID: m.chatID, Text: m.text, ReplyMarkup: m.markup, Entities: m.entities}
	if m.replyTo != 0 {
		params.ReplyParameters = &models.ReplyParameters{MessageID: m.replyTo, AllowSendingWithoutReply: true}
	}
	for attempt := 1; ; attempt++ {
		sent, err := a.b.SendMessage(ctx, params)
		var tooMany *tgbot.TooManyRequestsError
		if err == nil || !errors.As(err, &tooMany) || attempt == maxSendAttempts {
			return sent, err
		}
		wait := time.Duration(max(tooMany.RetryAfter, 1)) * time.Second
		a.log.Warn("telegram: rate limited, waiting", "retry_after", wait)
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// firstTime records an update id and reports whether it was new. Ids older
// than a day are pruned now and then. The id is recorded before the reply is
// sent: a crash in between leaves one command unanswered rather than answered
// twice ("at most once").
// once reports whether an update is seen for the first time (and should be
// handled); a redelivered one, or one that cannot be remembered, is not.
func (a *Adapter) once(ctx context.Context, upd *models.Update) bool {
	first, err := a.firstTime(ctx, upd.ID)
	if err != nil {
		a.log.Error("telegram: remember update", "update", upd.ID, "err", err)
		return false
	}
	if !first {
		a.log.Info("telegram: update delivered again, ignored", "update", upd.ID)
	}
	return first
}

func (a *Adapter) firstTime(ctx context.Context, id int64) (bool, error) {
	tag, err := a.cfg.DB.Exec(ctx, `INSERT INTO telegram_updates (update_id, handled_at) VALUES ($1, now())
		ON CONFLICT DO NOTHING`, id)
	if err != nil {
		return false, err
	}
	if id%100 == 0 {
		a.cfg.DB.Exec(ctx, "DELETE FROM telegram_updates WHERE handled_at < now() - interval '1 day'")
	}
	return tag.RowsAffected() == 1, nil
}
