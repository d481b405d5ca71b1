package discord_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/bwmarrin/discordgo"

	"github.com/tally-loyalty/tally"
	"github.com/tally-loyalty/tally/bot"
	"github.com/tally-loyalty/tally/bot/discord"
	"github.com/tally-loyalty/tally/ledger"
	"github.com/tally-loyalty/tally/locales"
	"github.com/tally-loyalty/tally/program"
	"github.com/tally-loyalty/tally/tallytest"
	"github.com/tally-loyalty/tally/tallytest/fakediscord"
)

const wait = 5 * time.Second

// In guild 1, role 555 moderates by the programme file, and so does Manage
// Server; Bob has neither.
var (
	mara  = fakediscord.Invoker{UserID: "900", Username: "mara", GlobalName: "Mara", GuildID: "1", ChannelID: "50", Roles: []string{"555"}}
	owner = fakediscord.Invoker{UserID: "902", Username: "olga", GuildID: "1", ChannelID: "50", Permissions: discordgo.PermissionManageGuild}
	bob   = fakediscord.Invoker{UserID: "901", Username: "bob", GuildID: "1", ChannelID: "50"}
)

// newButtonRouter is a router whose programme names role 555 and guild 1,
// with a /post command that posts a claim with approve and reject buttons, a
// /give command with user and integer options that echoes its arguments, and
// the buttons' handlers: approve edits the post, reject first asks why.
func newButtonRouter(t *testing.T) *bot.Router {
	t.Helper()
	prog, err := program.Parse([]byte("[moderation]\ndiscord_role_ids = [\"555\"]\ndiscord_guild_ids = [\"1\"]\n"), "test")
	if err != nil {
		t.Fatal(err)
	}
	cat, err := locales.Load()
	if err != nil {
		t.Fatal(err)
	}
	r := bot.NewRouter(ledger.New(tallytest.DB(t), tally.SystemClock{}), cat, prog, slog.Default())
	r.Register(bot.Command{Name: "post", Desc: "cmd_help", Usage: "/post", Hidden: true,
		Run: func(ctx context.Context, c *bot.Call) (bot.Reply, error) {
			return bot.Reply{Text: "Claim #12 by Bo", Buttons: []bot.Button{
				{Label: "Approve", Data: "approve:12", Style: bot.ButtonSuccess},
				{Label: "Reject", Data: "reject:12", Style: bot.ButtonDanger},
				{Label: "Details", Data: "details:12", Style: bot.ButtonPrimary}}}, nil
		}})
	r.Register(bot.Command{Name: "give", Desc: "cmd_balance", Usage: "/give <member> <points> [reason]",
		Options: []bot.Option{
			{Name: "member", Desc: "opt_member", Required: true, Type: bot.OptionUser},
			{Name: "points", Desc: "opt_points", Required: true, Type: bot.OptionInteger},
			{Name: "reason", Desc: "opt_reason"}},
		Run: func(ctx context.Context, c *bot.Call) (bot.Reply, error) {
			return bot.Reply{Text: strings.Join(c.Args, "|")}, nil
		}})
	r.RegisterButton(bot.ButtonHandler{Action: "approve", Moderator: true,
		Run: func(ctx context.Context, c *bot.Call, arg string, submit bool, text string) (bot.PressReply, error) {
			return bot.PressReply{Edit: "Claim #" + arg + ": approved by " + c.User.Name, Answer: "done"}, nil
		}})
	r.RegisterButton(bot.ButtonHandler{Action: "reject", Moderator: true,
		Run: func(ctx context.Context, c *bot.Call, arg string, submit bool, text string) (bot.PressReply, error) {
			if !submit {
				return bot.PressReply{Ask: &bot.Ask{Data: "reject:" + arg, Title: "Reject claim #" + arg,
					Prompt: "Why reject claim #" + arg + "? Members see the reason you give.", Optional: true, MaxLen: 200}}, nil
			}
			if text == "" {
				text = "(no reason)"
			}
			return bot.PressReply{Edit: "Claim #" + arg + " rejected: " + text, Answer: "rejected"}, nil
		}})
	r.RegisterButton(bot.ButtonHandler{Action: "details",
		Run: func(ctx context.Context, c *bot.Call, arg string, submit bool, text string) (bot.PressReply, error) {
			return bot.PressReply{Answer: "Claim #" + arg + ": three newcomers helped"}, nil
		}})
	return r
}

// buttonsHTTP serves an adapter for HTTP interactions whose followups reach
// the fake.
func buttonsHTTP(t *testing.T) (*fakediscord.Server, string, fakediscord.SignFunc) {
	t.Helper()
	fd := fakediscord.New(t)
	pub, sign := fakediscord.NewSigner()
	a, err := discord.New(discord.Config{PublicKey: pub, APIURL: fd.URL(), Router: newButtonRouter(t), Log: slog.Default(), DB: tallytest.DB(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	srv := httptest.NewServer(a.InteractionsHandler())
	t.Cleanup(srv.Close)
	return fd, srv.URL, sign
}

// buttonsOf returns the buttons of a message's or response's components.
func buttonsOf(cs []discordgo.MessageComponent) []*discordgo.Button {
	var out []*discordgo.Button
	for _, c := range cs {
		if row, ok := c.(*discordgo.ActionsRow); ok {
			for _, b := range row.Components {
				if b, ok := b.(*discordgo.Button); ok {
					out = append(out, b)
				}
			}
		}
	}
	return out
}

func followupTo(t *testing.T, fd *fakediscord.Server, interactionID string) fakediscord.Message {
	t.Helper()
	return fd.WaitMessage(t, wait, func(m fakediscord.Message) bool {
		return m.Kind == fakediscord.KindFollowup && m.InteractionID == interactionID
	})
}

func TestHTTPInteractions_ButtonsEditPostsAndOnlyForModerators(t *testing.T) {
	t.Parallel()
	fd, url, sign := buttonsHTTP(t)
	post := fd.SlashCommand(mara, "post")
	fd.PostInteraction(t, url, sign, post)
	r := fd.WaitInteractionResponse(t, post.ID, wait)
	bs := buttonsOf(r.Components)
	if r.Type != 4 || r.Ephemeral() || len(r.Components) != 1 || len(bs) != 3 {
		t.Fatalf("post: %+v", r)
	}
	for n, want := range []struct {
		id    string
		style discordgo.ButtonStyle
	}{{"approve:12", discordgo.SuccessButton}, {"reject:12", discordgo.DangerButton}, {"details:12", discordgo.PrimaryButton}} {
		if bs[n].CustomID != want.id || bs[n].Style != want.style {
			t.Errorf("button %d: %+v, want %s style %d", n, bs[n], want.id, want.style)
		}
	}
	if !strings.Contains(string(r.Body), `"allowed_mentions":{"parse":[]`) {
		t.Errorf("post allows mentions: %s", r.Body)
	}

	// Anyone may see the details; only moderators approve.
	click := fd.ButtonClick(bob, "details:12")
	fd.PostInteraction(t, url, sign, click)
	if r := fd.WaitInteractionResponse(t, click.ID, wait); r.Type != 4 || !r.Ephemeral() || r.Content != "Claim #12: three newcomers helped" {
		t.Fatalf("details: %+v", r)
	}
	click = fd.ButtonClick(bob, "approve:12")
	fd.PostInteraction(t, url, sign, click)
	if r := fd.WaitInteractionResponse(t, click.ID, wait); r.Type != 4 || !r.Ephemeral() || r.Content != "Only moderators can do that." {
		t.Fatalf("a non-moderator's approval: %+v", r)
	}
	if m := fd.WaitMessage(t, wait, func(m fakediscord.Message) bool { return m.InteractionID == post.ID }); m.Edits != 0 {
		t.Fatalf("the post was edited: %+v", m)
	}

	// Manage Server in the programme's guild makes Olga a moderator.
	click = fd.ButtonClick(owner, "approve:12")
	fd.PostInteraction(t, url, sign, click)
	r = fd.WaitInteractionResponse(t, click.ID, wait)
	if r.Type != discordgo.InteractionResponseUpdateMessage || r.Content != "Claim #12: approved by olga" || len(r.Components) != 0 {
		t.Fatalf("approval: %+v", r)
	}
	m := fd.WaitMessage(t, wait, func(m fakediscord.Message) bool { return m.InteractionID == post.ID })
	if m.Content != "Claim #12: approved by olga" || len(m.Components) != 0 {
		t.Fatalf("the post after approval: %+v", m)
	}
	if f := followupTo(t, fd, click.ID); f.Content != "done" || f.Flags&discordgo.MessageFlagsEphemeral == 0 {
		t.Fatalf("followup: %+v", f)
	}
}

func TestHTTPInteractions_RejectAsksInAModal(t *testing.T) {
	t.Parallel()
	fd, url, sign := buttonsHTTP(t)
	post := fd.SlashCommand(mara, "post")
	fd.PostInteraction(t, url, sign, post)
	fd.WaitInteractionResponse(t, post.ID, wait)

	click := fd.ButtonClick(mara, "reject:12")
	fd.PostInteraction(t, url, sign, click)
	r := fd.WaitInteractionResponse(t, click.ID, wait)
	if r.Type != discordgo.InteractionResponseModal || r.CustomID != "reject:12" || r.Title != "Reject claim #12" || len(r.Components) != 1 {
		t.Fatalf("modal: %+v", r)
	}
	in := r.Components[0].(*discordgo.ActionsRow).Components[0].(*discordgo.TextInput)
	if in.CustomID != "text" || in.Required || in.MaxLength != 200 || in.Style != discordgo.TextInputParagraph ||
		len([]rune(in.Label)) != 45 || !strings.HasPrefix(in.Label, "Why reject claim #12?") {
		t.Fatalf("text input: %+v", in)
	}

	submit := fd.ModalSubmit(mara, "reject:12", map[string]string{"text": "duplicate of #11"})
	fd.PostInteraction(t, url, sign, submit)
	r = fd.WaitInteractionResponse(t, submit.ID, wait)
	if r.Type != discordgo.InteractionResponseUpdateMessage || r.Content != "Claim #12 rejected: duplicate of #11" {
		t.Fatalf("submit: %+v", r)
	}
	if m := fd.WaitMessage(t, wait, func(m fakediscord.Message) bool { return m.InteractionID == post.ID }); m.Content != r.Content || len(m.Components) != 0 {
		t.Fatalf("the post after rejection: %+v", m)
	}
	if f := followupTo(t, fd, submit.ID); f.Content != "rejected" || f.Flags&discordgo.MessageFlagsEphemeral == 0 {
		t.Fatalf("followup: %+v", f)
	}
}

func TestGateway_RejectModalRoundTripAndTypedOptions(t *testing.T) {
	t.Parallel()
	fd := fakediscord.New(t)
	a, err := discord.New(discord.Config{Token: fd.BotToken(), AppID: fd.AppID(), APIURL: fd.URL(), GatewayURL: fd.GatewayURL(),
		Router: newButtonRouter(t), Log: slog.Default()})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	fd.WaitReady(t, wait)

	var give *discordgo.ApplicationCommand
	for _, c := range fd.Commands() {
		if c.Name == "give" {
			give = c
		}
	}
	if give == nil || len(give.Options) != 3 {
		t.Fatalf("give: %+v", give)
	}
	if o := give.Options[0]; o.Type != discordgo.ApplicationCommandOptionUser || !o.Required {
		t.Errorf("member option: %+v", o)
	}
	if o := give.Options[1]; o.Type != discordgo.ApplicationCommandOptionInteger || o.MinValue == nil || *o.MinValue != 1 {
		t.Errorf("points option: %+v", o)
	}
	if o := give.Options[2]; o.Type != discordgo.ApplicationCommandOptionString || o.Required {
		t.Errorf("reason option: %+v", o)
	}
	// Filled in another order than declared; arguments follow the declaration.
	i := fd.SlashCommand(mara, "give", fakediscord.IntegerOption("points", 1500000),
		fakediscord.StringOption("reason", "helped  newcomers"), fakediscord.UserOption("member", "80351110224678912"))
	fd.DispatchInteraction(i)
	if r := fd.WaitInteractionResponse(t, i.ID, wait); r.Content != "80351110224678912|1500000|helped|newcomers" {
		t.Fatalf("give arguments: %q", r.Content)
	}

	post := fd.SlashCommand(mara, "post")
	fd.DispatchInteraction(post)
	fd.WaitInteractionResponse(t, post.ID, wait)
	click := fd.ButtonClick(mara, "reject:12")
	fd.DispatchInteraction(click)
	if r := fd.WaitInteractionResponse(t, click.ID, wait); r.Type != discordgo.InteractionResponseModal || r.CustomID != "reject:12" {
		t.Fatalf("modal: %+v", r)
	}
	submit := fd.ModalSubmit(mara, "reject:12", nil) // optional: left empty
	fd.DispatchInteraction(submit)
	if r := fd.WaitInteractionResponse(t, submit.ID, wait); r.Type != discordgo.InteractionResponseUpdateMessage ||
		r.Content != "Claim #12 rejected: (no reason)" {
		t.Fatalf("submit: %+v", r)
	}
	if f := followupTo(t, fd, submit.ID); f.Content != "rejected" || f.Flags&discordgo.MessageFlagsEphemeral == 0 {
		t.Fatalf("followup: %+v", f)
	}

	click = fd.ButtonClick(bob, "approve:12")
	fd.DispatchInteraction(click)
	if r := fd.WaitInteractionResponse(t, click.ID, wait); r.Type != 4 || !r.Ephemeral() || r.Content != "Only moderators can do that." {
		t.Fatalf("a non-moderator's approval: %+v", r)
	}
}

func TestSend_DMsChannelsRateLimitsAndUnreachableUsers(t *testing.T) {
	t.Parallel()
	fd := fakediscord.New(t)
	a, err := discord.New(discord.Config{Token: fd.BotToken(), AppID: fd.AppID(), APIURL: fd.URL(), Router: newButtonRouter(t), Log: slog.Default()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	out := bot.Outgoing{UserID: "910", Text: "Your claim was approved, @everyone", Buttons: []bot.Button{
		{Label: "Approve", Data: "approve:3", Style: bot.ButtonSuccess}}}
	if err := a.Send(ctx, out); err != nil {
		t.Fatal(err)
	}
	m := fd.WaitMessage(t, wait, func(m fakediscord.Message) bool { return m.Recipient == "910" })
	if bs := buttonsOf(m.Components); m.Content != out.Text || m.Kind != fakediscord.KindChannel || len(bs) != 1 ||
		bs[0].CustomID != "approve:3" || bs[0].Style != discordgo.SuccessButton {
		t.Fatalf("DM %+v", m)
	}
	if calls := fd.Calls(fakediscord.RouteChannelMessages); len(calls) != 1 || !strings.Contains(string(calls[0].Body), `"allowed_mentions":{"parse":[]`) {
		t.Fatalf("message calls %+v", calls)
	}
	if n := len(fd.Calls(fakediscord.RouteCreateDM)); n != 1 {
		t.Fatalf("%d DM channels opened", n)
	}
	if err := a.Send(ctx, bot.Outgoing{ChatID: "1300", Text: "New claim to review"}); err != nil {
		t.Fatal(err)
	}
	fd.WaitMessage(t, wait, func(m fakediscord.Message) bool { return m.ChannelID == "1300" && m.Content == "New claim to review" })
	if n := len(fd.Calls(fakediscord.RouteCreateDM)); n != 1 {
		t.Fatalf("posting in a channel opened a DM (%d)", n)
	}

	fd.FailNext(fakediscord.RouteChannelMessages, 1, http.StatusTooManyRequests, 0.25)
	err = a.Send(ctx, out)
	var rl *bot.RateLimitedError
	if !errors.As(err, &rl) || rl.After != 250*time.Millisecond {
		t.Fatalf("429: %v, want RateLimitedError of 250ms", err)
	}
	if n := len(fd.Calls(fakediscord.RouteChannelMessages)); n != 3 {
		t.Fatalf("%d message calls: Send must not retry a 429 itself", n)
	}

	fd.BlockDMs("911")
	if err := a.Send(ctx, bot.Outgoing{UserID: "911", Text: "hi"}); !errors.Is(err, bot.ErrUnreachable) || !strings.Contains(err.Error(), "50007") {
		t.Errorf("DMs closed: %v, want ErrUnreachable with 50007", err)
	}
	fd.FailNextError(fakediscord.RouteCreateDM, 1, http.StatusNotFound, 10013, "Unknown User")
	if err := a.Send(ctx, bot.Outgoing{UserID: "912", Text: "hi"}); !errors.Is(err, bot.ErrUnreachable) {
		t.Errorf("unknown user: %v", err)
	}
	fd.FailNext(fakediscord.RouteCreateDM, 1, http.StatusForbidden, 0)
	if err := a.Send(ctx, bot.Outgoing{UserID: "913", Text: "hi"}); !errors.Is(err, bot.ErrUnreachable) {
		t.Errorf("403 opening the DM: %v", err)
	}
	// A channel the bot may not post in is a configuration problem, not an
	// unreachable member.
	fd.FailNextError(fakediscord.RouteChannelMessages, 1, http.StatusForbidden, 50013, "Missing Permissions")
	if err := a.Send(ctx, bot.Outgoing{ChatID: "1300", Text: "hi"}); err == nil || errors.Is(err, bot.ErrUnreachable) || errors.As(err, &rl) {
		t.Errorf("missing permissions in a channel: %v", err)
	}
}

func TestPostAndEdit_ReviewPostShowsTheDecision(t *testing.T) {
	t.Parallel()
	fd := fakediscord.New(t)
	a, err := discord.New(discord.Config{Token: fd.BotToken(), AppID: fd.AppID(), APIURL: fd.URL(), Router: newButtonRouter(t), Log: slog.Default()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ref, err := a.Post(ctx, bot.Outgoing{ChatID: "1300", Text: "Claim #1", Buttons: []bot.Button{{Label: "Approve", Data: "approve:1", Style: bot.ButtonSuccess}}})
	if err != nil {
		t.Fatal(err)
	}
	m := fd.WaitMessage(t, wait, func(m fakediscord.Message) bool { return m.ChannelID == "1300" })
	if ref != "1300:"+m.ID {
		t.Fatalf("ref %q for message %s", ref, m.ID)
	}
	if err := a.Edit(ctx, ref, bot.Outgoing{Text: "Claim #1\n✅ Approved by Mo"}); err != nil {
		t.Fatal(err)
	}
	m = fd.WaitMessage(t, wait, func(m fakediscord.Message) bool {
		return m.ChannelID == "1300" && strings.Contains(m.Content, "Approved")
	})
	if len(buttonsOf(m.Components)) != 0 {
		t.Fatalf("edited message keeps its buttons: %+v", m)
	}
}
