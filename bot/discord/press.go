package discord

import (
	"context"
	"errors"
	"time"
	"unicode/utf8"

	"github.com/bwmarrin/discordgo"

	"github.com/tally-loyalty/tally/bot"
)

// Discord's limits on what the adapter renders.
const (
	maxButtonsPerRow = 5
	maxRows          = 5
	maxButtonLabel   = 80
	maxModalTitle    = 45
	maxInputLabel    = 45
	defaultInputLen  = 500
	maxInputLen      = 4000
	// modalInput is the custom_id of the one text input of the modals the
	// adapter shows.
	modalInput = "text"
)

// buttonStyles maps bot.Button styles to Discord's.
var buttonStyles = map[string]discordgo.ButtonStyle{
	bot.ButtonPrimary: discordgo.PrimaryButton,
	bot.ButtonSuccess: discordgo.SuccessButton,
	bot.ButtonDanger:  discordgo.DangerButton,
}

// components renders buttons as button components (custom_id is the
// button's Data) in an action row; a row holds five, so more start another.
// nil without buttons.
func components(bs []bot.Button) []discordgo.MessageComponent {
	var rows []discordgo.MessageComponent
	for start := 0; start < len(bs) && len(rows) < maxRows; start += maxButtonsPerRow {
		var row []discordgo.MessageComponent
		for _, b := range bs[start:min(start+maxButtonsPerRow, len(bs))] {
			style, ok := buttonStyles[b.Style]
			if !ok {
				style = discordgo.SecondaryButton
			}
			row = append(row, discordgo.Button{Label: clip(b.Label, maxButtonLabel), Style: style, CustomID: b.Data})
		}
		rows = append(rows, discordgo.ActionsRow{Components: row})
	}
	return rows
}

// pressResponse renders what a button press (or a modal submit, fromModal)
// did: a modal when it asks for text; an update of the clicked message with
// the new text and no buttons when it edits, the answer then following as an
// ephemeral followup; otherwise the answer as an ephemeral message.
func pressResponse(i *discordgo.Interaction, pr bot.PressReply, fromModal bool) (*discordgo.InteractionResponse, string) {
	switch {
	case pr.Ask != nil && !fromModal: // a modal cannot answer a modal
		return modal(pr.Ask), ""
	case pr.Edit != "" && i.Message != nil:
		return &discordgo.InteractionResponse{Type: discordgo.InteractionResponseUpdateMessage,
			Data: &discordgo.InteractionResponseData{Content: pr.Edit, Components: []discordgo.MessageComponent{},
				AllowedMentions: noMentions()}}, pr.Answer
	}
	text := pr.Answer
	if text == "" && pr.Edit != "" {
		text = pr.Edit // no message to update (a modal opened by a command)
	}
	if text == "" && pr.Ask != nil {
		text = pr.Ask.Prompt
	}
	if text == "" {
		if i.Message != nil {
			// Nothing to say: acknowledge and leave the message as it is.
			return &discordgo.InteractionResponse{Type: discordgo.InteractionResponseDeferredMessageUpdate}, ""
		}
		text = "✓"
	}
	return ephemeral(text), ""
}

// ephemeral is a type-4 response only the presser sees.
func ephemeral(text string) *discordgo.InteractionResponse {
	return &discordgo.InteractionResponse{Type: discordgo.InteractionResponseChannelMessageWithSource,
		Data: &discordgo.InteractionResponseData{Content: text, Flags: discordgo.MessageFlagsEphemeral, AllowedMentions: noMentions()}}
}

// modal asks for a line of text in a modal with one paragraph input.
func modal(ask *bot.Ask) *discordgo.InteractionResponse {
	title := ask.Title
	if title == "" {
		title = ask.Prompt
	}
	maxLen := ask.MaxLen
	if maxLen <= 0 {
		maxLen = defaultInputLen
	}
	input := discordgo.TextInput{CustomID: modalInput, Label: clip(ask.Prompt, maxInputLabel), Style: discordgo.TextInputParagraph,
		Required: !ask.Optional, MaxLength: min(maxLen, maxInputLen)}
	return &discordgo.InteractionResponse{Type: discordgo.InteractionResponseModal, Data: &discordgo.InteractionResponseData{
		CustomID: ask.Data, Title: clip(title, maxModalTitle),
		Components: []discordgo.MessageComponent{discordgo.ActionsRow{Components: []discordgo.MessageComponent{input}}}}}
}

// inputValue finds the value of the text input customID in a modal submit.
func inputValue(cs []discordgo.MessageComponent, customID string) string {
	for _, c := range cs {
		switch c := c.(type) {
		case *discordgo.ActionsRow:
			if v := inputValue(c.Components, customID); v != "" {
				return v
			}
		case discordgo.ActionsRow:
			if v := inputValue(c.Components, customID); v != "" {
				return v
			}
		case *discordgo.TextInput:
			if c.CustomID == customID {
				return c.Value
			}
		case discordgo.TextInput:
			if c.CustomID == customID {
				return c.Value
			}
		}
	}
	return ""
}

// followup sends text as an ephemeral followup to an answered interaction.
func (a *Adapter) followup(ctx context.Context, i *discordgo.Interaction, text string) error {
	_, err := a.rest.FollowupMessageCreate(i, false, &discordgo.WebhookParams{Content: text,
		Flags: discordgo.MessageFlagsEphemeral, AllowedMentions: noMentions()}, discordgo.WithContext(ctx))
	return err
}

// followupLater sends a followup to an interaction answered over HTTP once
// Discord has the response: until then its webhook is unknown (10015), so
// that answer is retried a few times. Close waits for it.
func (a *Adapter) followupLater(i *discordgo.Interaction, text string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return
	}
	a.inflight.Add(1)
	go func() {
		defer a.inflight.Done()
		delay := 50 * time.Millisecond
		for attempt := 1; ; attempt++ {
			err := a.followup(a.ctx, i, text)
			var re *discordgo.RESTError
			if err == nil || attempt == 6 || !errors.As(err, &re) || re.Message == nil || re.Message.Code != discordgo.ErrCodeUnknownWebhook {
				if err != nil && a.ctx.Err() == nil {
					a.log.Error("discord: followup", "interaction", i.ID, "err", err)
				}
				return
			}
			select {
			case <-time.After(delay):
				delay *= 2
			case <-a.ctx.Done():
				return
			}
		}
	}()
}

// clip shortens s to at most n characters.
func clip(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}
