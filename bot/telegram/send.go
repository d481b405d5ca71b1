package telegram

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	tgbot "github.com/go-telegram/bot"

	"github.com/tally-loyalty/tally/bot"
)

// Send delivers a message Tally sends on its own (bot.Sender): to the private
// chat of m.UserID (a private chat's id is the user's id), else to m.ChatID,
// with m.Buttons as an inline keyboard. It tries once: a 429 comes back as
// *bot.RateLimitedError, a recipient who blocked the bot, was deactivated or
// whose chat does not exist as bot.ErrUnreachable; other errors as they are,
// without the token. It neither runs commands nor marks anyone unreachable.
func (a *Adapter) Send(ctx context.Context, m bot.Outgoing) error {
	_, err := a.Post(ctx, m)
	return err
}

// Post is Send that returns "<chat id>:<message id>" for Edit (bot.Poster).
func (a *Adapter) Post(ctx context.Context, m bot.Outgoing) (string, error) {
	to := m.UserID
	if to == "" {
		to = m.ChatID
	}
	chatID, err := strconv.ParseInt(to, 10, 64)
	if err != nil || chatID == 0 {
		return "", fmt.Errorf("telegram: send: recipient %q is no chat id", to)
	}
	sent, err := a.b.SendMessage(ctx, &tgbot.SendMessageParams{ChatID: chatID, Text: m.Text, ReplyMarkup: keyboard(m.Buttons)})
	if err != nil {
		return "", a.sendError(err)
	}
	return fmt.Sprintf("%d:%d", chatID, sent.ID), nil
}

// Edit replaces the text and inline keyboard of a message Post sent
// (bot.Poster); no buttons removes the keyboard. An edit that changes
// nothing is no error.
func (a *Adapter) Edit(ctx context.Context, ref string, m bot.Outgoing) error {
	chat, msg, ok := strings.Cut(ref, ":")
	chatID, err1 := strconv.ParseInt(chat, 10, 64)
	msgID, err2 := strconv.Atoi(msg)
	if !ok || err1 != nil || err2 != nil {
		return fmt.Errorf("telegram: edit: %q is no message reference", ref)
	}
	params := &tgbot.EditMessageTextParams{ChatID: chatID, MessageID: msgID, Text: m.Text}
	if len(m.Buttons) > 0 {
		params.ReplyMarkup = keyboard(m.Buttons)
	}
	_, err := a.b.EditMessageText(ctx, params)
	if err != nil && strings.Contains(err.Error(), "message is not modified") {
		return nil
	}
	return a.sendError(err)
}

// sendError maps what sendMessage reports to what bot.Sender promises.
func (a *Adapter) sendError(err error) error {
	if err == nil {
		return nil
	}
	var tooMany *tgbot.TooManyRequestsError
	switch {
	case errors.As(err, &tooMany):
		return &bot.RateLimitedError{After: time.Duration(max(tooMany.RetryAfter, 1)) * time.Second}
	case errors.Is(err, tgbot.ErrorForbidden), // blocked, deactivated, kicked from the group
		errors.Is(err, tgbot.ErrorBadRequest) && strings.Contains(err.Error(), "chat not found"):
		return fmt.Errorf("telegram: %w: %s", bot.ErrUnreachable, a.redact(err))
	}
	return &redactedError{msg: "telegram: send: " + a.redact(err), err: err}
}

// redactedError shows an error's text without the bot token but keeps the
// error itself for errors.Is and errors.As.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

var _ bot.Poster = (*Adapter)(nil)
