package discord

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/bwmarrin/discordgo"

	"github.com/tally-loyalty/tally/bot"
)

var _ bot.Poster = (*Adapter)(nil)

// Send delivers a message Tally sends on its own (bot.Sender): to m.UserID
// in a DM (the DM channel is opened first; Discord returns the same one each
// time), else to the channel m.ChatID, with m.Buttons as button components
// and no mentions. It tries once, without discordgo's retry on 429: a rate
// limit comes back as *bot.RateLimitedError, a user who cannot be messaged
// (DMs closed, bot blocked, unknown user) as bot.ErrUnreachable. It neither
// runs commands nor marks anyone unreachable. It needs the bot token.
func (a *Adapter) Send(ctx context.Context, m bot.Outgoing) error {
	_, err := a.Post(ctx, m)
	return err
}

// Post is Send that returns "<channel id>:<message id>" for Edit (bot.Poster).
func (a *Adapter) Post(ctx context.Context, m bot.Outgoing) (string, error) {
	if a.session == nil {
		return "", errors.New("discord: sending needs DISCORD_BOT_TOKEN")
	}
	opts := []discordgo.RequestOption{discordgo.WithContext(ctx), discordgo.WithRetryOnRatelimit(false)}
	channel, dm := m.ChatID, m.UserID != ""
	if dm {
		ch, err := a.session.UserChannelCreate(m.UserID, opts...)
		if err != nil {
			return "", sendError("open DM with "+m.UserID, err, true)
		}
		channel = ch.ID
	}
	if channel == "" {
		return "", errors.New("discord: send: no user or channel to send to")
	}
	sent, err := a.session.ChannelMessageSendComplex(channel, &discordgo.MessageSend{Content: m.Text,
		Components: components(m.Buttons), AllowedMentions: noMentions()}, opts...)
	if err != nil {
		return "", sendError("send to channel "+channel, err, dm)
	}
	return channel + ":" + sent.ID, nil
}

// Edit replaces the content and buttons of a message Post sent (bot.Poster);
// no buttons removes them.
func (a *Adapter) Edit(ctx context.Context, ref string, m bot.Outgoing) error {
	if a.session == nil {
		return errors.New("discord: editing needs DISCORD_BOT_TOKEN")
	}
	channel, id, ok := strings.Cut(ref, ":")
	if !ok || channel == "" || id == "" {
		return fmt.Errorf("discord: edit: %q is no message reference", ref)
	}
	content := m.Text
	comps := components(m.Buttons)
	if comps == nil {
		comps = []discordgo.MessageComponent{}
	}
	_, err := a.session.ChannelMessageEditComplex(&discordgo.MessageEdit{ID: id, Channel: channel, Content: &content,
		Components: &comps, AllowedMentions: noMentions()}, discordgo.WithContext(ctx), discordgo.WithRetryOnRatelimit(false))
	if err != nil {
		return sendError("edit message "+id, err, false)
	}
	return nil
}

// sendError maps a REST error to what bot.Sender promises; dm says the
// request was for a user's DM, where a 403 means the user cannot be reached.
func sendError(what string, err error, dm bool) error {
	var rl *discordgo.RateLimitError
	if errors.As(err, &rl) && rl.RateLimit != nil && rl.TooManyRequests != nil {
		return &bot.RateLimitedError{After: rl.RetryAfter}
	}
	var re *discordgo.RESTError
	if errors.As(err, &re) && re.Response != nil {
		code, msg := 0, re.Response.Status
		if re.Message != nil {
			code, msg = re.Message.Code, re.Message.Message
		}
		if code == discordgo.ErrCodeCannotSendMessagesToThisUser || code == discordgo.ErrCodeUnknownUser ||
			(dm && re.Response.StatusCode == http.StatusForbidden) {
			return fmt.Errorf("discord: %s: %w: %s (code %d)", what, bot.ErrUnreachable, msg, code)
		}
	}
	return fmt.Errorf("discord: %s: %w", what, err)
}
