// Package bot is Tally's chat surface without a platform: requests and replies
// that know nothing of Telegram or Discord, the router that runs commands on
// them, and the commands themselves. Adapters (bot/telegram, bot/discord,
// bot/console) turn platform events into Requests and Replies back into
// platform messages. Adding a command is one Register call.
package bot

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"time"
	"unicode"

	"github.com/tally-loyalty/tally"
	"github.com/tally-loyalty/tally/ledger"
	"github.com/tally-loyalty/tally/locales"
	"github.com/tally-loyalty/tally/program"
	"github.com/tally-loyalty/tally/tasks"
)

// User is a person on a chat platform.
type User struct {
	Platform string // telegram, discord, console
	ID       string // the platform's user id, digits
	Name     string // display name from the platform profile
	Locale   string // the platform's language tag ("pt-br", "de", "en-US"), may be ""
}

// Request is one command someone sent.
type Request struct {
	User    User
	ChatID  string
	Group   bool // sent in a group or guild channel, not a private chat
	Command string
	Args    []string
	// ReplyTo is the author of the message the command replies to (Telegram).
	ReplyTo *User
	// Moderator is set by adapters that learn it from the platform (Discord's
	// Manage Server permission); the programme file names more.
	Moderator bool
	// Roles are the user's roles where the platform has them (Discord).
	Roles []string
	// Guild is the Discord server the command came from ("" elsewhere).
	Guild string
}

// Reply is what the bot answers.
type Reply struct {
	Text string
	// Private replies (balances, history, link codes, errors) are shown only to
	// the asker: Discord ephemeral messages, Telegram direct messages.
	Private bool
	// Locale is the language the reply speaks, for anything an adapter adds.
	Locale string
	// Buttons go under the message (Telegram inline keyboard, Discord button
	// components); pressing one calls Router.Press with its Data.
	Buttons []Button
	// Embed, when set, is how platforms with cards (Discord) show the reply
	// instead of Text; Text still holds everything for the others.
	Embed *Embed
}

// Embed is a card: a title, lines of text and a footer.
type Embed struct {
	Title       string
	Description string
	Footer      string
}

// Button is an inline button. Data comes back when it is pressed: at most 64
// bytes, "<action>:<argument>" such as "approve:12" (Telegram callback_data,
// Discord custom_id).
type Button struct {
	Label string
	Data  string
	Style string // ButtonPrimary, ButtonSuccess or ButtonDanger
}

// Button styles.
const (
	ButtonPrimary = "primary"
	ButtonSuccess = "success"
	ButtonDanger  = "danger"
)

// PressReply is what pressing a button (or answering what it asked) does.
type PressReply struct {
	// Answer is a short note shown only to the presser (Telegram callback
	// answer, Discord ephemeral message); may be "".
	Answer string
	// Edit, when set, replaces the text of the message the button was on and
	// removes its buttons.
	Edit string
	// Ask, when set, asks the presser for text first: a Discord modal, a
	// Telegram message to reply to. The text comes back through Router.Submit
	// with Ask.Data.
	Ask *Ask
	// Locale is the language Answer and Ask speak.
	Locale string
}

// Ask asks the presser for a line of text.
type Ask struct {
	Data     string // comes back with the answer
	Title    string // Discord modal title (≤ 45 characters)
	Prompt   string // the question (Telegram prompt text, Discord input label ≤ 45)
	Optional bool   // the text may be left empty (Telegram: "-" for none)
	MaxLen   int
}

// ButtonHandler runs when a button whose Data starts with "<action>:" is
// pressed (submit is false) or when the text it asked for arrives (submit is
// true, text holds it). arg is what follows the colon.
type ButtonHandler struct {
	Action    string
	Moderator bool
	Run       func(ctx context.Context, c *Call, arg string, submit bool, text string) (PressReply, error)
}

// Outgoing is a message Tally sends on its own (claim outcomes, review
// posts, later season and expiry messages).
type Outgoing struct {
	// UserID is the platform user to message privately (a DM); ChatID a group
	// or channel to post in instead.
	UserID  string
	ChatID  string
	Text    string
	Buttons []Button
}

// Sender delivers outgoing messages on one platform. Errors: ErrUnreachable
// when the user blocked the bot or cannot be messaged (retrying will not help),
// *RateLimitedError when the platform asks to wait; anything else is retried
// with backoff.
type Sender interface {
	Send(ctx context.Context, m Outgoing) error
}

// Poster is a Sender that also tells where a post went and edits it later:
// review posts are updated when their claim is decided on another platform.
// Errors are those of Sender.
type Poster interface {
	Sender
	// Post sends m and returns a reference to the message for Edit.
	Post(ctx context.Context, m Outgoing) (ref string, err error)
	// Edit replaces the text and buttons of the message ref names.
	Edit(ctx context.Context, ref string, m Outgoing) error
}

// ErrUnreachable says the recipient cannot be messaged (blocked the bot,
// closed DMs, left the platform).
var ErrUnreachable = errors.New("recipient cannot be messaged")

// RateLimitedError says the platform asked to wait before sending again.
type RateLimitedError struct{ After time.Duration }

func (e *RateLimitedError) Error() string {
	return fmt.Sprintf("rate limited: retry after %s", e.After)
}

// Option is an argument of a command, described for platforms that declare
// them (Discord slash command options).
type Option struct {
	Name     string
	Desc     string // message id of the description
	Required bool
	Choices  []string
	// Type is OptionText (default), OptionInteger or OptionUser: Discord
	// shows a number field or a member picker; the argument arrives as digits
	// (a user option as the platform user id).
	Type string
}

// Option types.
const (
	OptionText    = ""
	OptionInteger = "integer"
	OptionUser    = "user"
)

// Command is something a member can ask the bot.
type Command struct {
	Name      string
	Desc      string // message id of the one-line description (cmd_<name>)
	Usage     string // e.g. "/lang [code]", shown when arguments are wrong
	Options   []Option
	Moderator bool
	// Hidden commands work but are left out of help and command menus
	// (aliases such as Telegram's /start).
	Hidden bool
	Run    func(ctx context.Context, c *Call) (Reply, error)
}

// Call is one running command: the request, the member behind it and the
// language to answer in.
type Call struct {
	Request
	Member ledger.Profile
	L      *locales.Localizer
	router *Router
}

// Ledger is what the commands need of the ledger.
type Ledger interface {
	EnsureMember(ctx context.Context, platform, userID, name string) (ledger.Profile, error)
	Member(ctx context.Context, ref ledger.MemberRef) (ledger.Member, ledger.Balance, error)
	History(ctx context.Context, ref ledger.MemberRef, before int64, limit int) ([]ledger.Entry, bool, error)
	Describe(ctx context.Context, ids []int64) (map[int64]ledger.Member, error)
	NextExpiry(ctx context.Context, member int64) (ledger.Expiry, bool, error)
	SetLocale(ctx context.Context, member int64, code string) error
	SetSeenLocale(ctx context.Context, member int64, code string) error
	SetNotify(ctx context.Context, member int64, on bool) error
	CreateLinkCode(ctx context.Context, member int64, platform string) (string, time.Time, error)
	Link(ctx context.Context, code string, caller int64) (ledger.LinkResult, error)
}

// Router runs commands.
type Router struct {
	ledger  Ledger
	catalog *locales.Catalog
	prog    *program.Program
	log     *slog.Logger
	cmds    map[string]*Command
	buttons map[string]*ButtonHandler
	tasks   *tasks.Service // nil until UseTasks
}

// NewRouter returns a router with the built-in commands registered.
func NewRouter(l Ledger, catalog *locales.Catalog, prog *program.Program, log *slog.Logger) *Router {
	r := &Router{ledger: l, catalog: catalog, prog: prog, log: log, cmds: map[string]*Command{}, buttons: map[string]*ButtonHandler{}}
	for _, c := range builtins() {
		r.Register(c)
	}
	return r
}

// Register adds a command (or replaces one of the same name).
func (r *Router) Register(c Command) { r.cmds[c.Name] = &c }

// RegisterButton adds the handler of buttons whose Data starts with h.Action+":".
func (r *Router) RegisterButton(h ButtonHandler) { r.buttons[h.Action] = &h }

// Has reports whether a command of that name is registered.
func (r *Router) Has(name string) bool {
	_, ok := r.cmds[strings.ToLower(name)]
	return ok
}

// Commands returns the listed (not hidden) commands sorted by name, "help" first.
func (r *Router) Commands() []Command {
	out := make([]Command, 0, len(r.cmds))
	for _, c := range r.cmds {
		if !c.Hidden {
			out = append(out, *c)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if (out[i].Name == "help") != (out[j].Name == "help") {
			return out[i].Name == "help"
		}
		return out[i].Name < out[j].Name
	})
	return out
}

// Catalog returns the messages the router speaks.
func (r *Router) Catalog() *locales.Catalog { return r.catalog }

// Handle runs a request and always returns something to say: unknown
// commands and bad arguments get a localized hint, internal failures a
// localized apology (the details go to the log).
func (r *Router) Handle(ctx context.Context, req Request) Reply {
	req.Command = strings.ToLower(req.Command)
	call, failed := r.call(ctx, req)
	if call == nil {
		return Reply{Text: failed.T("error_internal", nil), Private: true}
	}
	reply := r.run(ctx, call)
	if reply.Locale == "" {
		reply.Locale = call.L.Code()
	}
	return reply
}

// call finds (or creates) the member behind a request and the language to
// answer in. When the member cannot be read it returns nil and the
// localizer to apologize with.
func (r *Router) call(ctx context.Context, req Request) (*Call, *locales.Localizer) {
	profile, err := r.ledger.EnsureMember(ctx, req.User.Platform, req.User.ID, req.User.Name)
	if err != nil {
		r.log.Error("chat: member lookup failed", "platform", req.User.Platform, "user", req.User.ID, "err", err)
		return nil, r.catalog.For(r.catalog.Resolve("", req.User.Locale, r.prog.DefaultLocale))
	}
	r.noteLocale(ctx, profile, req.User.Locale)
	return &Call{Request: req, Member: profile, router: r,
		L: r.catalog.For(r.catalog.Resolve(profile.Locale, req.User.Locale, r.prog.DefaultLocale))}, nil
}

// Press runs the button a user pressed; data is the button's Data.
func (r *Router) Press(ctx context.Context, req Request, data string) PressReply {
	return r.press(ctx, req, data, false, "")
}

// Submit hands over the text a PressReply.Ask asked for; data is Ask.Data.
func (r *Router) Submit(ctx context.Context, req Request, data, text string) PressReply {
	return r.press(ctx, req, data, true, text)
}

func (r *Router) press(ctx context.Context, req Request, data string, submit bool, text string) PressReply {
	call, failed := r.call(ctx, req)
	if call == nil {
		return PressReply{Answer: failed.T("error_internal", nil), Locale: failed.Code()}
	}
	call.Moderator = r.isModerator(req)
	action, arg, _ := strings.Cut(data, ":")
	h, ok := r.buttons[action]
	var reply PressReply
	switch {
	case !ok:
		reply = PressReply{Answer: call.L.T("error_button_unknown", nil)}
	case h.Moderator && !call.Moderator:
		reply = PressReply{Answer: call.L.T("error_moderators_only", nil)}
	default:
		var err error
		if reply, err = h.Run(ctx, call, arg, submit, text); err != nil {
			r.log.Error("chat button failed", "data", clipArg(data), "member", call.Member.ID, "err", err)
			reply = PressReply{Answer: call.L.T("error_internal", nil)}
		}
	}
	if reply.Locale == "" {
		reply.Locale = call.L.Code()
	}
	return reply
}

// noteLocale remembers the language the member's chat app reports when it
// changed, for messages Tally sends on its own later.
func (r *Router) noteLocale(ctx context.Context, p ledger.Profile, platform string) {
	code := r.catalog.Match(platform)
	if code == "" || code == p.SeenLocale {
		return
	}
	if err := r.ledger.SetSeenLocale(ctx, p.ID, code); err != nil {
		r.log.Warn("chat: language not remembered", "member", p.ID, "err", err)
	}
}

// isModerator reports whether the sender moderates by the programme file, or
// by Discord's Manage Server in one of the programme's own servers (anyone can
// add the bot to a server of their own).
func (r *Router) isModerator(req Request) bool {
	if req.User.Platform == "console" {
		return req.Moderator // the local demo says who moderates
	}
	platformSays := req.Moderator && req.Guild != "" && r.prog.DiscordGuilds[req.Guild]
	return platformSays || r.prog.IsModerator(req.User.Platform, req.User.ID, req.Roles)
}

// run finds and runs the command of a call.
func (r *Router) run(ctx context.Context, call *Call) Reply {
	req, profile := call.Request, call.Member
	cmd, ok := r.cmds[req.Command]
	if !ok {
		return Reply{Text: call.L.T("error_unknown_command", map[string]any{"Command": clipArg(req.Command)}), Private: true}
	}
	call.Moderator = r.isModerator(req)
	if cmd.Moderator && !call.Moderator {
		return Reply{Text: call.L.T("error_moderators_only", nil), Private: true}
	}
	reply, err := cmd.Run(ctx, call)
	if err != nil {
		if tally.ErrorCode(err) == tally.EINVALID {
			return Reply{Text: call.L.T("error_usage", map[string]any{"Usage": cmd.Usage}), Private: true}
		}
		r.log.Error("chat command failed", "command", cmd.Name, "member", profile.ID, "err", err)
		return Reply{Text: call.L.T("error_internal", nil), Private: true}
	}
	return reply
}

// clipArg keeps what a user typed short and printable when it is echoed back.
func clipArg(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsPrint(r) {
			return r
		}
		return -1
	}, s)
	if r := []rune(s); len(r) > 32 {
		return string(r[:32]) + "…"
	}
	return s
}

// ParseText reads a text message as a command: "/balance", "/lang de",
// "/balance@TallyBot" in groups. ok is false for text that is no command or a
// command addressed to another bot (botName is the bot's own username; "" accepts
// any mention).
func ParseText(text, botName string) (cmd string, args []string, ok bool) {
	fields := strings.Fields(text)
	if len(fields) == 0 || !strings.HasPrefix(fields[0], "/") || len(fields[0]) < 2 {
		return "", nil, false
	}
	name, mention, addressed := strings.Cut(fields[0][1:], "@")
	if addressed && botName != "" && !strings.EqualFold(mention, botName) {
		return "", nil, false
	}
	if name == "" {
		return "", nil, false
	}
	return strings.ToLower(name), fields[1:], true
}
