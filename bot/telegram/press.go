package telegram

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	tgbot "github.com/go-telegram/bot"
	"github.com/go-telegram/bot/models"
	"github.com/jackc/pgx/v5"

	"github.com/tally-loyalty/tally/bot"
)

// Telegram's limits on what the adapter sends with a press.
const (
	maxCallbackAnswer = 200 // answerCallbackQuery text
	maxPlaceholder    = 64  // force reply input_field_placeholder
)

// keyboard renders buttons as an inline keyboard of one row (callback_data is
// the button's Data); nil without buttons.
func keyboard(bs []bot.Button) models.ReplyMarkup {
	if len(bs) == 0 {
		return nil
	}
	row := make([]models.InlineKeyboardButton, len(bs))
	for i, b := range bs {
		row[i] = models.InlineKeyboardButton{Text: b.Label, CallbackData: b.Data}
	}
	return &models.InlineKeyboardMarkup{InlineKeyboard: [][]models.InlineKeyboardButton{row}}
}

// handlePress runs the button behind a callback query and shows what it did:
// the answer as the query's answer (always sent, so the client's spinner
// stops), an edit of the pressed message without its buttons, and a prompt
// when the button asks for text.
func (a *Adapter) handlePress(ctx context.Context, upd *models.Update) {
	q := upd.CallbackQuery
	if !a.once(ctx, upd) {
		return
	}
	var chat models.Chat
	var msgID int
	switch m := q.Message; {
	case m.Message != nil:
		chat, msgID = m.Message.Chat, m.Message.ID
	case m.InaccessibleMessage != nil:
		chat, msgID = m.InaccessibleMessage.Chat, m.InaccessibleMessage.MessageID
	}
	if q.Data == "" || msgID == 0 || q.From.IsBot {
		// Games and inline-mode messages: not buttons the bot made.
		a.answerQuery(ctx, q.ID, "")
		return
	}
	req := bot.Request{
		User:   userOf(&q.From),
		ChatID: strconv.FormatInt(chat.ID, 10),
		Group:  chat.Type != models.ChatTypePrivate,
	}
	pr := a.cfg.Router.Press(ctx, req, q.Data)
	a.answerQuery(ctx, q.ID, pr.Answer)
	if pr.Edit != "" {
		a.edit(ctx, chat.ID, msgID, pr.Edit)
	}
	if pr.Ask != nil {
		a.ask(ctx, chat, msgID, q.From, pr.Ask)
	}
}

// answerQuery answers a callback query; Telegram shows text as a toast.
func (a *Adapter) answerQuery(ctx context.Context, id, text string) {
	_, err := a.b.AnswerCallbackQuery(ctx, &tgbot.AnswerCallbackQueryParams{CallbackQueryID: id, Text: clip(text, maxCallbackAnswer)})
	if err != nil {
		a.log.Warn("telegram: answer callback query", "err", a.redact(err))
	}
}

// edit replaces a message's text; leaving reply_markup out removes its
// inline keyboard.
func (a *Adapter) edit(ctx context.Context, chatID int64, msgID int, text string) {
	_, err := a.b.EditMessageText(ctx, &tgbot.EditMessageTextParams{ChatID: chatID, MessageID: msgID, Text: text})
	// A late press on a decided post asks for the text it already shows.
	if err != nil && !strings.Contains(err.Error(), "message is not modified") {
		a.log.Warn("telegram: edit message", "chat", chatID, "message", msgID, "err", a.redact(err))
	}
}

// ask sends a force-reply prompt under the pressed post and remembers it, so
// the presser's reply to it reaches Router.Submit. In groups the prompt
// starts by mentioning the presser: a selective force reply opens the reply
// field only for users the message mentions.
func (a *Adapter) ask(ctx context.Context, chat models.Chat, postID int, from models.User, ask *bot.Ask) {
	m := outgoing{chatID: chat.ID, replyTo: postID, text: ask.Prompt}
	if chat.Type != models.ChatTypePrivate {
		name := userOf(&from).Name
		m.text = name + ": " + ask.Prompt
		m.entities = []models.MessageEntity{{Type: models.MessageEntityTypeTextMention, Offset: 0,
			Length: len(utf16.Encode([]rune(name))), User: &from}}
	}
	fr := &models.ForceReply{ForceReply: true, Selective: true}
	if p := strings.TrimSpace(ask.Title); p != "" {
		fr.InputFieldPlaceholder = clip(p, maxPlaceholder)
	}
	m.markup = fr
	sent, err := a.send(ctx, m)
	if err != nil {
		a.log.Error("telegram: send prompt", "chat", chat.ID, "err", a.redact(err))
		return
	}
	_, err = a.cfg.DB.Exec(ctx, `INSERT INTO telegram_prompts
		(chat_id, message_id, data, optional, post_chat_id, post_message_id, user_id, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, now()) ON CONFLICT DO NOTHING`,
		sent.Chat.ID, sent.ID, ask.Data, ask.Optional, chat.ID, postID, from.ID)
	if err != nil {
		a.log.Error("telegram: remember prompt", "chat", chat.ID, "err", err)
		return
	}
	// Nobody answers a day-old prompt; the index makes this cheap.
	a.cfg.DB.Exec(ctx, "DELETE FROM telegram_prompts WHERE created_at < now() - interval '1 day'")
}

// answerPrompt hands a reply to one of the bot's prompts to Router.Submit,
// when it comes from the user the prompt asked, and shows the outcome: an
// edit of the post the button was on, the answer as a reply in the chat. It
// reports whether msg answered a prompt. The prompt is deleted as it is
// taken, so a second reply (or the same update delivered again) does nothing.
func (a *Adapter) answerPrompt(ctx context.Context, msg *models.Message) bool {
	var data string
	var optional bool
	var postChat, postMsg int64
	err := a.cfg.DB.QueryRow(ctx, `DELETE FROM telegram_prompts
		WHERE chat_id = $1 AND message_id = $2 AND user_id = $3 AND created_at > now() - interval '1 day'
		RETURNING data, optional, post_chat_id, post_message_id`,
		msg.Chat.ID, msg.ReplyToMessage.ID, msg.From.ID).Scan(&data, &optional, &postChat, &postMsg)
	if errors.Is(err, pgx.ErrNoRows) {
		return false
	}
	if err != nil {
		a.log.Error("telegram: take prompt", "chat", msg.Chat.ID, "err", err)
		return false
	}
	text := strings.TrimSpace(msg.Text)
	if optional && text == "-" {
		text = ""
	}
	req := bot.Request{
		User:   userOf(msg.From),
		ChatID: strconv.FormatInt(msg.Chat.ID, 10),
		Group:  msg.Chat.Type != models.ChatTypePrivate,
	}
	pr := a.cfg.Router.Submit(ctx, req, data, text)
	if pr.Edit != "" {
		a.edit(ctx, postChat, int(postMsg), pr.Edit)
	}
	if pr.Answer != "" {
		a.deliver(ctx, outgoing{chatID: msg.Chat.ID, replyTo: msg.ID, text: pr.Answer}, req.User.ID)
	}
	if pr.Ask != nil { // asked again, e.g. the text was too long
		a.ask(ctx, msg.Chat, int(postMsg), *msg.From, pr.Ask)
	}
	return true
}

// clip shortens s to at most n characters.
func clip(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}
