package fakediscord_test

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bwmarrin/discordgo"
	"github.com/gorilla/websocket"

	"github.com/tally-loyalty/tally/tallytest"
	"github.com/tally-loyalty/tally/tallytest/fakediscord"
)

// TestMain fails the run when goroutines of the fake, discordgo or the HTTP
// machinery outlive the tests: every test closes what it opened.
func TestMain(m *testing.M) {
	tallytest.RunCheckingLeaks(m, "bwmarrin/discordgo", "gorilla/websocket", "tallytest/fakediscord.",
		"net/http.(*persistConn)", "net/http.(*conn).serve", "net/http/httptest")
}

const wait = 5 * time.Second

// restSession is a session that only uses REST.
func restSession(t *testing.T, fd *fakediscord.Server) *discordgo.Session {
	t.Helper()
	s, err := discordgo.New("Bot " + fd.BotToken())
	if err != nil {
		t.Fatal(err)
	}
	fd.ConfigureSession(s)
	return s
}

// openSession connects a session to the fake's gateway and returns the READY
// it received.
func openSession(t *testing.T, fd *fakediscord.Server, handlers ...any) (*discordgo.Session, *discordgo.Ready) {
	t.Helper()
	s := restSession(t, fd)
	for _, h := range handlers {
		s.AddHandler(h)
	}
	ready := make(chan *discordgo.Ready, 1)
	s.AddHandlerOnce(func(_ *discordgo.Session, r *discordgo.Ready) { ready <- r })
	if err := s.Open(); err != nil {
		t.Fatalf("Open: %v", err)
	}
	select {
	case r := <-ready:
		return s, r
	case <-time.After(wait):
		t.Fatal("no READY")
		return nil, nil
	}
}

// echoBot answers interactions the way a small bot would, reporting each one
// it saw on the returned channel.
func echoBot(t *testing.T) (func(*discordgo.Session, *discordgo.InteractionCreate), <-chan *discordgo.Interaction) {
	seen := make(chan *discordgo.Interaction, 16)
	return func(s *discordgo.Session, ic *discordgo.InteractionCreate) {
		i := ic.Interaction
		seen <- i
		var err error
		switch i.Type {
		case discordgo.InteractionMessageComponent:
			err = s.InteractionRespond(i, &discordgo.InteractionResponse{Type: discordgo.InteractionResponseUpdateMessage,
				Data: &discordgo.InteractionResponseData{Content: "clicked " + i.MessageComponentData().CustomID}})
		case discordgo.InteractionApplicationCommand:
			data := i.ApplicationCommandData()
			switch data.Name {
			case "menu":
				err = s.InteractionRespond(i, &discordgo.InteractionResponse{Type: discordgo.InteractionResponseChannelMessageWithSource,
					Data: &discordgo.InteractionResponseData{Content: "pick one", Components: []discordgo.MessageComponent{
						discordgo.ActionsRow{Components: []discordgo.MessageComponent{
							discordgo.Button{CustomID: "redeem:coffee", Label: "Coffee"}}}}}})
			case "later":
				err = s.InteractionRespond(i, &discordgo.InteractionResponse{Type: discordgo.InteractionResponseDeferredChannelMessageWithSource,
					Data: &discordgo.InteractionResponseData{Flags: discordgo.MessageFlagsEphemeral}})
				if err == nil {
					done := "done"
					_, err = s.InteractionResponseEdit(i, &discordgo.WebhookEdit{Content: &done})
				}
				if err == nil {
					_, err = s.FollowupMessageCreate(i, true, &discordgo.WebhookParams{Content: "and more"})
				}
			default:
				var parts []string
				for _, o := range data.Options {
					parts = append(parts, fmt.Sprintf("%s=%v", o.Name, o.Value))
				}
				err = s.InteractionRespond(i, &discordgo.InteractionResponse{Type: discordgo.InteractionResponseChannelMessageWithSource,
					Data: &discordgo.InteractionResponseData{Content: fmt.Sprintf("%s [%s] %s", data.Name, string(i.Locale), strings.Join(parts, " ")),
						Flags: discordgo.MessageFlagsEphemeral}})
			}
		}
		if err != nil {
			t.Errorf("bot: answer %s: %v", i.ID, err)
		}
	}, seen
}

func receive(t *testing.T, seen <-chan *discordgo.Interaction) *discordgo.Interaction {
	t.Helper()
	select {
	case i := <-seen:
		return i
	case <-time.After(wait):
		t.Fatal("bot received no interaction")
		return nil
	}
}

func TestGateway_IdentifyHeartbeatAndInteractions(t *testing.T) {
	t.Parallel()
	fd := fakediscord.New(t)
	handler, seen := echoBot(t)
	var seqMu sync.Mutex
	var seqs []int64
	onEvent := func(_ *discordgo.Session, e *discordgo.Event) {
		if e.Type == "INTERACTION_CREATE" {
			seqMu.Lock()
			seqs = append(seqs, e.Sequence)
			seqMu.Unlock()
		}
	}
	opened := time.Now()
	s, ready := openSession(t, fd, handler, onEvent)
	fd.WaitReady(t, wait)

	if ready.SessionID == "" || ready.User == nil || ready.User.ID != fd.AppID() || ready.Application == nil || ready.Application.ID != fd.AppID() {
		t.Fatalf("READY = %+v, want session, bot user and application %s", ready, fd.AppID())
	}
	if s.State.User == nil || !s.State.User.Bot {
		t.Errorf("State.User = %+v, want the bot user", s.State.User)
	}
	if n := fd.Identified(); n != 1 {
		t.Errorf("Identified() = %d, want 1", n)
	}

	t.Run("first heartbeat is acknowledged", func(t *testing.T) {
		// discordgo beats once right after Open, then every interval.
		deadline := time.Now().Add(wait)
		for {
			s.RLock()
			ack := s.LastHeartbeatAck
			s.RUnlock()
			if fd.Heartbeats() >= 1 && ack.After(opened) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("Heartbeats() = %d, LastHeartbeatAck = %v, want an ACK after %v", fd.Heartbeats(), ack, opened)
			}
			time.Sleep(5 * time.Millisecond)
		}
	})

	t.Run("guild slash command with locale and options", func(t *testing.T) {
		in := fd.SlashCommand(fakediscord.Invoker{UserID: "1001", Username: "ana", GuildID: "2001",
			Roles: []string{"3001"}, Permissions: discordgo.PermissionManageGuild, Locale: discordgo.German},
			"give", fakediscord.StringOption("reason", "danke"), fakediscord.IntegerOption("amount", 25),
			fakediscord.UserOption("to", "1002"))
		fd.DispatchInteraction(in)
		got := receive(t, seen)
		if got.ID != in.ID || got.GuildID != "2001" || got.User != nil || got.Member == nil || got.Member.User.ID != "1001" {
			t.Fatalf("interaction = %+v, want guild member 1001", got)
		}
		if !slices.Equal(got.Member.Roles, []string{"3001"}) || got.Member.Permissions != discordgo.PermissionManageGuild {
			t.Errorf("member roles %v permissions %d", got.Member.Roles, got.Member.Permissions)
		}
		if got.Locale != discordgo.German || got.GuildLocale == nil || *got.GuildLocale != discordgo.EnglishUS {
			t.Errorf("locale %q guild locale %v", got.Locale, got.GuildLocale)
		}
		data := got.ApplicationCommandData()
		if data.GetOption("reason").StringValue() != "danke" || data.GetOption("amount").IntValue() != 25 ||
			data.GetOption("to").UserValue(nil).ID != "1002" {
			t.Errorf("options = %+v", data.Options)
		}
		if data.Resolved == nil || data.Resolved.Users["1002"] == nil || data.Resolved.Members["1002"] == nil {
			t.Errorf("resolved = %+v, want user and member 1002", data.Resolved)
		}

		r := fd.WaitInteractionResponse(t, in.ID, wait)
		if r.Type != discordgo.InteractionResponseChannelMessageWithSource || !r.Ephemeral() ||
			r.Content != "give [de] reason=danke amount=25 to=1002" || r.HTTP {
			t.Errorf("response = %+v", r)
		}
		var body map[string]any
		if err := json.Unmarshal(r.Body, &body); err != nil || body["type"] != float64(4) {
			t.Errorf("raw body %s", r.Body)
		}
	})

	t.Run("DM slash command", func(t *testing.T) {
		in := fd.SlashCommand(fakediscord.Invoker{UserID: "1003", Locale: discordgo.PortugueseBR}, "balance")
		fd.DispatchInteraction(in)
		got := receive(t, seen)
		if got.GuildID != "" || got.Member != nil || got.User == nil || got.User.ID != "1003" || got.Locale != discordgo.PortugueseBR {
			t.Fatalf("interaction = %+v, want DM from 1003 in pt-BR", got)
		}
		r := fd.WaitInteractionResponse(t, in.ID, wait)
		if r.Content != "balance [pt-BR] " {
			t.Errorf("content %q", r.Content)
		}
		m := fd.WaitMessage(t, wait, func(m fakediscord.Message) bool { return m.InteractionID == in.ID })
		if m.Kind != fakediscord.KindOriginal || m.Recipient != "1003" || m.ChannelID != in.ChannelID {
			t.Errorf("original message = %+v", m)
		}
	})

	t.Run("button click updates the message", func(t *testing.T) {
		by := fakediscord.Invoker{UserID: "1004"}
		menu := fd.SlashCommand(by, "menu")
		fd.DispatchInteraction(menu)
		receive(t, seen)
		fd.WaitInteractionResponse(t, menu.ID, wait)
		click := fd.ButtonClick(by, "redeem:coffee")
		fd.DispatchInteraction(click)
		got := receive(t, seen)
		if got.MessageComponentData().CustomID != "redeem:coffee" || got.Message == nil {
			t.Fatalf("click = %+v", got)
		}
		if r := fd.WaitInteractionResponse(t, click.ID, wait); r.Type != discordgo.InteractionResponseUpdateMessage {
			t.Errorf("response type %d", r.Type)
		}
		m := fd.WaitMessage(t, wait, func(m fakediscord.Message) bool { return m.ID == got.Message.ID })
		if m.Content != "clicked redeem:coffee" || m.Edits != 1 {
			t.Errorf("message after click = %+v", m)
		}
	})

	t.Run("deferred response, edit and followup", func(t *testing.T) {
		in := fd.SlashCommand(fakediscord.Invoker{UserID: "1005", GuildID: "2001"}, "later")
		fd.DispatchInteraction(in)
		receive(t, seen)
		if r := fd.WaitInteractionResponse(t, in.ID, wait); r.Type != discordgo.InteractionResponseDeferredChannelMessageWithSource || !r.Ephemeral() {
			t.Errorf("response = %+v", r)
		}
		follow := fd.WaitMessage(t, wait, func(m fakediscord.Message) bool {
			return m.InteractionID == in.ID && m.Kind == fakediscord.KindFollowup
		})
		if follow.Content != "and more" {
			t.Errorf("followup = %+v", follow)
		}
		orig := fd.WaitMessage(t, wait, func(m fakediscord.Message) bool {
			return m.InteractionID == in.ID && m.Kind == fakediscord.KindOriginal
		})
		if orig.Content != "done" || orig.Edits != 1 || orig.Flags&discordgo.MessageFlagsEphemeral == 0 {
			t.Errorf("original = %+v", orig)
		}
	})

	t.Run("second response is refused", func(t *testing.T) {
		in := fd.SlashCommand(fakediscord.Invoker{UserID: "1006"}, "ping")
		fd.DispatchInteraction(in)
		receive(t, seen)
		fd.WaitInteractionResponse(t, in.ID, wait)
		err := s.InteractionRespond(&in, &discordgo.InteractionResponse{Type: discordgo.InteractionResponseChannelMessageWithSource,
			Data: &discordgo.InteractionResponseData{Content: "again"}})
		var re *discordgo.RESTError
		if !errors.As(err, &re) || re.Response.StatusCode != http.StatusBadRequest || re.Message.Code != 40060 {
			t.Errorf("second response: %v, want 400 code 40060", err)
		}
	})

	t.Run("unknown interaction and empty message are refused", func(t *testing.T) {
		ghost := discordgo.Interaction{ID: "42", Token: "nope"}
		err := s.InteractionRespond(&ghost, &discordgo.InteractionResponse{Type: discordgo.InteractionResponseChannelMessageWithSource,
			Data: &discordgo.InteractionResponseData{Content: "hi"}})
		var re *discordgo.RESTError
		if !errors.As(err, &re) || re.Response.StatusCode != http.StatusNotFound || re.Message.Code != 10062 {
			t.Errorf("unknown interaction: %v, want 404 code 10062", err)
		}
		_, err = s.ChannelMessageSend("5001", "")
		if !errors.As(err, &re) || re.Message.Code != 50006 {
			t.Errorf("empty message: %v, want code 50006", err)
		}
		_, err = s.ChannelMessageSend("5001", strings.Repeat("ä", 2001))
		if !errors.As(err, &re) || re.Message.Code != 50035 {
			t.Errorf("2001-character message: %v, want code 50035", err)
		}
	})

	seqMu.Lock()
	defer seqMu.Unlock()
	slices.Sort(seqs)
	for i, seq := range seqs {
		if seq != int64(i+2) { // READY is 1
			t.Errorf("INTERACTION_CREATE sequences %v, want 2, 3, …", seqs)
			break
		}
	}
}

// rawGateway is a bare websocket client, to check the protocol frame by frame.
type rawGateway struct {
	t  *testing.T
	ws *websocket.Conn
}

type frame struct {
	Op int             `json:"op"`
	D  json.RawMessage `json:"d"`
	S  *int64          `json:"s"`
	T  *string         `json:"t"`
}

func dialRaw(t *testing.T, fd *fakediscord.Server) *rawGateway {
	t.Helper()
	ws, _, err := websocket.DefaultDialer.Dial(fd.GatewayURL()+"/?v=9&encoding=json", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.Close() })
	return &rawGateway{t, ws}
}

func (g *rawGateway) send(op int, d any) {
	g.t.Helper()
	if err := g.ws.WriteJSON(map[string]any{"op": op, "d": d}); err != nil {
		g.t.Fatal(err)
	}
}

func (g *rawGateway) read() frame {
	g.t.Helper()
	g.ws.SetReadDeadline(time.Now().Add(wait))
	var f frame
	if err := g.ws.ReadJSON(&f); err != nil {
		g.t.Fatalf("read: %v", err)
	}
	return f
}

func (f frame) event() (string, int64) {
	if f.T == nil || f.S == nil {
		return "", 0
	}
	return *f.T, *f.S
}

func TestGateway_RawProtocolAndResumeReplay(t *testing.T) {
	t.Parallel()
	fd := fakediscord.New(t, fakediscord.WithHeartbeatInterval(1234*time.Millisecond))

	a := dialRaw(t, fd)
	hello := a.read()
	if hello.Op != 10 || string(hello.D) != `{"heartbeat_interval":1234}` {
		t.Fatalf("HELLO = op %d %s", hello.Op, hello.D)
	}
	a.send(1, nil)
	if ack := a.read(); ack.Op != 11 {
		t.Fatalf("heartbeat answered with op %d, want 11", ack.Op)
	}
	a.send(2, map[string]any{"token": "Bot " + fd.BotToken(), "intents": 1, "properties": map[string]string{"os": "linux"}})
	readyFrame := a.read()
	if ev, seq := readyFrame.event(); readyFrame.Op != 0 || ev != "READY" || seq != 1 {
		t.Fatalf("after IDENTIFY: op %d %s seq %d", readyFrame.Op, ev, seq)
	}
	var ready struct {
		SessionID   string `json:"session_id"`
		ResumeURL   string `json:"resume_gateway_url"`
		Application struct {
			ID string `json:"id"`
		} `json:"application"`
		Guilds []any `json:"guilds"`
	}
	if err := json.Unmarshal(readyFrame.D, &ready); err != nil || ready.SessionID == "" ||
		ready.ResumeURL != fd.GatewayURL() || ready.Application.ID != fd.AppID() || ready.Guilds == nil {
		t.Fatalf("READY %s (%v)", readyFrame.D, err)
	}

	// Two dispatches; a is cut off before reading the second.
	first := fd.SlashCommand(fakediscord.Invoker{}, "one")
	second := fd.SlashCommand(fakediscord.Invoker{}, "two")
	fd.DispatchInteraction(first)
	if ev, seq := a.read().event(); ev != "INTERACTION_CREATE" || seq != 2 {
		t.Fatalf("first dispatch %s seq %d", ev, seq)
	}
	fd.DispatchInteraction(second)
	a.ws.Close()

	b := dialRaw(t, fd)
	b.read() // HELLO
	b.send(6, map[string]any{"token": "Bot " + fd.BotToken(), "session_id": ready.SessionID, "seq": 2})
	replayed := b.read()
	if ev, seq := replayed.event(); ev != "INTERACTION_CREATE" || seq != 3 || !strings.Contains(string(replayed.D), second.ID) {
		t.Fatalf("replay %s seq %d: %s", ev, seq, replayed.D)
	}
	if ev, seq := b.read().event(); ev != "RESUMED" || seq != 4 {
		t.Fatalf("after replay %s seq %d, want RESUMED 4", ev, seq)
	}
	fd.WaitResumed(t, 1, wait)

	c := dialRaw(t, fd)
	c.read()
	c.send(6, map[string]any{"token": "Bot " + fd.BotToken(), "session_id": "unknown", "seq": 9})
	if inv := c.read(); inv.Op != 9 || string(inv.D) != "false" {
		t.Fatalf("resuming an unknown session: op %d %s, want 9 false", inv.Op, inv.D)
	}

	d := dialRaw(t, fd)
	d.read()
	d.send(3, map[string]any{"status": "online"})
	d.ws.SetReadDeadline(time.Now().Add(wait))
	_, _, err := d.ws.ReadMessage()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != 4003 {
		t.Fatalf("presence before IDENTIFY: %v, want close 4003", err)
	}
}

func TestGateway_ResumesAfterDroppedConnection(t *testing.T) {
	t.Parallel()
	fd := fakediscord.New(t)
	handler, seen := echoBot(t)
	openSession(t, fd, handler)

	fd.DropConnections()
	fd.WaitResumed(t, 1, wait)
	fd.WaitReady(t, wait)
	if n := fd.Identified(); n != 1 {
		t.Errorf("Identified() = %d after resume, want 1", n)
	}
	in := fd.SlashCommand(fakediscord.Invoker{UserID: "1010"}, "balance")
	fd.DispatchInteraction(in)
	receive(t, seen)
	fd.WaitInteractionResponse(t, in.ID, wait)
}

func TestGateway_RejectsWrongToken(t *testing.T) {
	t.Parallel()
	fd := fakediscord.New(t)
	s, err := discordgo.New("Bot wrong")
	if err != nil {
		t.Fatal(err)
	}
	fd.ConfigureSession(s)
	err = s.Open()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != 4004 {
		t.Fatalf("Open with a wrong token: %v, want close 4004", err)
	}
	_, err = s.User("@me")
	var re *discordgo.RESTError
	if !errors.As(err, &re) || re.Response.StatusCode != http.StatusUnauthorized {
		t.Fatalf("GET /users/@me with a wrong token: %v, want 401", err)
	}
	if got := strings.TrimSpace(string(re.ResponseBody)); got != `{"message":"401: Unauthorized","code":0}` {
		t.Errorf("401 body %s", got)
	}
}

func TestInteractionCallback_LateAnswerIsUnknown(t *testing.T) {
	t.Parallel()
	fd := fakediscord.New(t, fakediscord.WithInteractionDeadline(50*time.Millisecond))
	errs := make(chan error, 1)
	openSession(t, fd, func(s *discordgo.Session, ic *discordgo.InteractionCreate) {
		time.Sleep(100 * time.Millisecond) // slow work before answering
		errs <- s.InteractionRespond(ic.Interaction, &discordgo.InteractionResponse{Type: discordgo.InteractionResponseChannelMessageWithSource,
			Data: &discordgo.InteractionResponseData{Content: "too late"}})
	})
	fd.DispatchInteraction(fd.SlashCommand(fakediscord.Invoker{}, "slow"))
	select {
	case err := <-errs:
		var re *discordgo.RESTError
		if !errors.As(err, &re) || re.Response.StatusCode != http.StatusNotFound || re.Message.Code != 10062 {
			t.Errorf("late answer: %v, want 404 Unknown interaction", err)
		}
	case <-time.After(wait):
		t.Fatal("bot never answered")
	}
	if n := len(fd.InteractionResponses()); n != 0 {
		t.Errorf("%d responses recorded, want none", n)
	}
}

func TestApplicationCommandBulkOverwrite_RecordsLocalizations(t *testing.T) {
	t.Parallel()
	fd := fakediscord.New(t)
	s := restSession(t, fd)
	cmds := func() []*discordgo.ApplicationCommand {
		return []*discordgo.ApplicationCommand{{
			Name:                     "balance",
			Description:              "Show your points",
			NameLocalizations:        &map[discordgo.Locale]string{discordgo.German: "kontostand", discordgo.PortugueseBR: "saldo"},
			DescriptionLocalizations: &map[discordgo.Locale]string{discordgo.German: "Zeigt deine Punkte", "es-419": "Muestra tus puntos"},
			Options: []*discordgo.ApplicationCommandOption{{
				Type: discordgo.ApplicationCommandOptionUser, Name: "member", Description: "Whose balance",
				DescriptionLocalizations: map[discordgo.Locale]string{discordgo.French: "Le solde de qui"},
			}},
		}}
	}

	created, err := s.ApplicationCommandBulkOverwrite(fd.AppID(), "", cmds())
	if err != nil {
		t.Fatal(err)
	}
	if len(created) != 1 || created[0].ID == "" || created[0].ApplicationID != fd.AppID() {
		t.Fatalf("created = %+v", created)
	}
	got := fd.Commands()
	if len(got) != 1 || (*got[0].NameLocalizations)[discordgo.German] != "kontostand" ||
		(*got[0].DescriptionLocalizations)["es-419"] != "Muestra tus puntos" ||
		got[0].Options[0].DescriptionLocalizations[discordgo.French] != "Le solde de qui" {
		t.Fatalf("Commands() = %+v", got)
	}

	again, err := s.ApplicationCommandBulkOverwrite(fd.AppID(), "", cmds())
	if err != nil {
		t.Fatal(err)
	}
	if again[0].ID != created[0].ID {
		t.Errorf("ID changed across overwrites: %s then %s", created[0].ID, again[0].ID)
	}
	if in := fd.SlashCommand(fakediscord.Invoker{}, "balance"); in.ApplicationCommandData().ID != created[0].ID {
		t.Errorf("built interaction carries command ID %s, want %s", in.ApplicationCommandData().ID, created[0].ID)
	}
	if _, err := s.ApplicationCommandBulkOverwrite(fd.AppID(), "2001", cmds()); err != nil {
		t.Fatal(err)
	}
	if g := fd.GuildCommands("2001"); len(g) != 1 || g[0].GuildID != "2001" {
		t.Errorf("GuildCommands(2001) = %+v", g)
	}

	for name, mutate := range map[string]func(*discordgo.ApplicationCommand){
		"unknown locale":    func(c *discordgo.ApplicationCommand) { (*c.NameLocalizations)["xx"] = "x" },
		"upper-case name":   func(c *discordgo.ApplicationCommand) { c.Name = "Balance" },
		"long description":  func(c *discordgo.ApplicationCommand) { c.Description = strings.Repeat("d", 101) },
		"empty option desc": func(c *discordgo.ApplicationCommand) { c.Options[0].Description = "" },
	} {
		bad := cmds()
		mutate(bad[0])
		_, err := s.ApplicationCommandBulkOverwrite(fd.AppID(), "", bad)
		var re *discordgo.RESTError
		if !errors.As(err, &re) || re.Response.StatusCode != http.StatusBadRequest || re.Message.Code != 50035 {
			t.Errorf("%s: %v, want 400 Invalid Form Body", name, err)
		}
	}
	if got := fd.Commands(); len(got) != 1 || got[0].GuildID != "2001" {
		t.Errorf("a refused overwrite changed the commands: %+v", got)
	}
}

func TestChannelMessageSend_RetriedAfterRateLimit(t *testing.T) {
	t.Parallel()
	fd := fakediscord.New(t)
	s := restSession(t, fd)
	dm, err := s.UserChannelCreate("1020")
	if err != nil {
		t.Fatal(err)
	}
	fd.FailNext(fakediscord.RouteChannelMessages, 1, http.StatusTooManyRequests, 0.05)

	start := time.Now()
	m, err := s.ChannelMessageSend(dm.ID, "hello")
	if err != nil {
		t.Fatalf("send after a 429: %v", err)
	}
	if took := time.Since(start); took < 50*time.Millisecond {
		t.Errorf("discordgo retried after %v, want ≥ retry_after 50 ms", took)
	}
	if m.ID == "" || m.ChannelID != dm.ID || m.Content != "hello" || m.Author == nil || m.Author.ID != fd.AppID() {
		t.Errorf("message = %+v", m)
	}
	calls := fd.Calls(fakediscord.RouteChannelMessages)
	if len(calls) != 2 || calls[0].Status != http.StatusTooManyRequests || calls[1].Status != http.StatusOK {
		t.Fatalf("calls = %+v, want a 429 then a 200", calls)
	}
	if got := fd.Calls("POST /channels/" + dm.ID + "/messages"); len(got) != 2 {
		t.Errorf("Calls by concrete path = %d, want 2", len(got))
	}
	if msgs := fd.Messages(); len(msgs) != 1 || msgs[0].Recipient != "1020" || msgs[0].Kind != fakediscord.KindChannel {
		t.Errorf("Messages() = %+v", msgs)
	}

	t.Run("without retry the caller gets the rate limit", func(t *testing.T) {
		fd.FailNext(fakediscord.RouteChannelMessages, 1, http.StatusTooManyRequests, 0.05)
		_, err := s.ChannelMessageSend(dm.ID, "again", discordgo.WithRetryOnRatelimit(false))
		var rl *discordgo.RateLimitError
		if !errors.As(err, &rl) || rl.RetryAfter != 50*time.Millisecond || rl.Message != "You are being rate limited." {
			t.Errorf("err = %v, want a RateLimitError of 50 ms", err)
		}
	})

	t.Run("a 502 is retried too", func(t *testing.T) {
		fd.FailNext(fakediscord.RouteMe, 1, http.StatusBadGateway, 0)
		if u, err := s.User("@me"); err != nil || u.ID != fd.AppID() {
			t.Errorf("User(@me) = %+v, %v", u, err)
		}
	})

	t.Run("edit", func(t *testing.T) {
		if _, err := s.ChannelMessageEdit(dm.ID, m.ID, "edited"); err != nil {
			t.Fatal(err)
		}
		if msgs := fd.Messages(); msgs[0].Content != "edited" || msgs[0].Edits != 1 {
			t.Errorf("after edit %+v", msgs[0])
		}
	})
}

func TestChannelMessageSend_BlockedDMsAreForbidden(t *testing.T) {
	t.Parallel()
	fd := fakediscord.New(t)
	s := restSession(t, fd)
	fd.BlockDMs("1030")
	dm, err := s.UserChannelCreate("1030")
	if err != nil {
		t.Fatalf("opening the DM channel still works on Discord: %v", err)
	}
	_, err = s.ChannelMessageSend(dm.ID, "your points expire")
	var re *discordgo.RESTError
	if !errors.As(err, &re) || re.Response.StatusCode != http.StatusForbidden || re.Message.Code != 50007 {
		t.Fatalf("err = %v, want 403 code 50007", err)
	}
	if n := len(fd.Messages()); n != 0 {
		t.Errorf("%d messages recorded, want none", n)
	}
}

func TestHTTPInteractions_SignedAcceptedForgedRejected(t *testing.T) {
	t.Parallel()
	fd := fakediscord.New(t)
	pub, sign := fakediscord.NewSigner()
	key, err := hex.DecodeString(pub)
	if err != nil || len(key) != ed25519.PublicKeySize {
		t.Fatalf("public key %q: %v", pub, err)
	}
	bot := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !discordgo.VerifyInteraction(r, key) {
			http.Error(w, "invalid request signature", http.StatusUnauthorized)
			return
		}
		var i discordgo.Interaction
		if err := json.NewDecoder(r.Body).Decode(&i); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		if i.Type == discordgo.InteractionPing {
			io.WriteString(w, `{"type":1}`)
			return
		}
		json.NewEncoder(w).Encode(discordgo.InteractionResponse{Type: discordgo.InteractionResponseChannelMessageWithSource,
			Data: &discordgo.InteractionResponseData{Content: "hi " + i.User.ID, Flags: discordgo.MessageFlagsEphemeral}})
	}))
	defer bot.Close()
	url := bot.URL + "/discord/interactions"

	in := fd.SlashCommand(fakediscord.Invoker{UserID: "1040"}, "balance")
	resp := fd.PostInteraction(t, url, sign, in)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("signed interaction: %s", resp.Status)
	}
	r := fd.WaitInteractionResponse(t, in.ID, wait)
	if !r.HTTP || r.Content != "hi 1040" || !r.Ephemeral() {
		t.Errorf("recorded %+v", r)
	}

	body, _ := json.Marshal(in)
	tampered := func(b []byte, ts string) string { return sign(append(bytes.Clone(b), ' '), ts) }
	for name, sf := range map[string]fakediscord.SignFunc{
		"forged key": fakediscord.ForgedSigner(), "other body": tampered, "no signature": nil,
	} {
		if resp := fakediscord.PostSigned(t, url, sf, body); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s: %s, want 401", name, resp.Status)
		}
	}

	ping := fakediscord.PostSigned(t, url, sign, []byte(`{"id":"1","application_id":"`+fd.AppID()+`","type":1,"token":"t","version":1}`))
	if b, _ := io.ReadAll(ping.Body); ping.StatusCode != http.StatusOK || string(b) != `{"type":1}` {
		t.Errorf("PING answered %s %s", ping.Status, b)
	}

	// The webhook of an interaction answered over HTTP takes followups.
	s := restSession(t, fd)
	if _, err := s.FollowupMessageCreate(&in, true, &discordgo.WebhookParams{Content: "later news"}); err != nil {
		t.Fatalf("followup: %v", err)
	}
	fd.WaitMessage(t, wait, func(m fakediscord.Message) bool {
		return m.Kind == fakediscord.KindFollowup && m.Content == "later news"
	})
}

func TestServer_ConcurrentUse(t *testing.T) {
	t.Parallel()
	fd := fakediscord.New(t)
	s := restSession(t, fd)
	var wg sync.WaitGroup
	for n := range 16 {
		wg.Add(2)
		go func() {
			defer wg.Done()
			if _, err := s.ChannelMessageSend(fmt.Sprint(6000+n%4), fmt.Sprint("message ", n)); err != nil {
				t.Errorf("send %d: %v", n, err)
			}
		}()
		go func() {
			defer wg.Done()
			_ = fd.Messages()
			_ = fd.Calls(fakediscord.RouteChannelMessages)
			_ = fd.SlashCommand(fakediscord.Invoker{GuildID: "2001"}, "x")
		}()
	}
	wg.Wait()
	if n := len(fd.Messages()); n != 16 {
		t.Errorf("%d messages, want 16", n)
	}
}

// recordingTB keeps what the fake reports as misuse instead of failing the test.
type recordingTB struct {
	testing.TB
	mu   sync.Mutex
	errs []string
}

func (r *recordingTB) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

func (r *recordingTB) reports() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.errs)
}

// modalBot posts a button on /post, opens a modal when it is clicked and
// updates the post with what the modal submit carries; every answer's error
// goes to errs.
func modalBot(errs chan<- error) func(*discordgo.Session, *discordgo.InteractionCreate) {
	return func(s *discordgo.Session, ic *discordgo.InteractionCreate) {
		i := ic.Interaction
		var resp *discordgo.InteractionResponse
		switch i.Type {
		case discordgo.InteractionApplicationCommand:
			resp = &discordgo.InteractionResponse{Type: discordgo.InteractionResponseChannelMessageWithSource,
				Data: &discordgo.InteractionResponseData{Content: "claim #1", Components: []discordgo.MessageComponent{
					discordgo.ActionsRow{Components: []discordgo.MessageComponent{
						discordgo.Button{CustomID: "reject:1", Label: "Reject", Style: discordgo.DangerButton}}}}}}
		case discordgo.InteractionMessageComponent:
			resp = &discordgo.InteractionResponse{Type: discordgo.InteractionResponseModal, Data: &discordgo.InteractionResponseData{
				CustomID: "reason:1", Title: "Reject claim #1", Components: []discordgo.MessageComponent{
					discordgo.ActionsRow{Components: []discordgo.MessageComponent{discordgo.TextInput{
						CustomID: "text", Label: "Why?", Style: discordgo.TextInputParagraph, Required: true, MaxLength: 10}}}}}}
		case discordgo.InteractionModalSubmit:
			d := i.ModalSubmitData()
			text := d.Components[0].(*discordgo.ActionsRow).Components[0].(*discordgo.TextInput).Value
			resp = &discordgo.InteractionResponse{Type: discordgo.InteractionResponseUpdateMessage,
				Data: &discordgo.InteractionResponseData{Content: "rejected: " + text + " (" + d.CustomID + ")",
					Components: []discordgo.MessageComponent{}}}
		}
		errs <- s.InteractionRespond(i, resp)
	}
}

func TestModalSubmit_FromAButtonUpdatesItsMessageOnce(t *testing.T) {
	t.Parallel()
	rec := &recordingTB{TB: t}
	fd := fakediscord.New(rec)
	errs := make(chan error, 8)
	openSession(t, fd, modalBot(errs))
	answered := func() {
		t.Helper()
		select {
		case err := <-errs:
			if err != nil {
				t.Fatalf("bot answer: %v", err)
			}
		case <-time.After(wait):
			t.Fatal("bot did not answer")
		}
	}
	mod := fakediscord.Invoker{UserID: "2001", GuildID: "7", ChannelID: "70"}
	fd.DispatchInteraction(fd.SlashCommand(mod, "post"))
	answered()
	click := fd.ButtonClick(mod, "reject:1")
	fd.DispatchInteraction(click)
	answered()
	if r := fd.WaitInteractionResponse(t, click.ID, wait); r.Type != discordgo.InteractionResponseModal ||
		r.CustomID != "reason:1" || r.Title != "Reject claim #1" {
		t.Fatalf("modal response %+v", r)
	}

	// The client refuses what the modal does not allow.
	other := fakediscord.Invoker{UserID: "2002", GuildID: "7", ChannelID: "70"}
	fd.ModalSubmit(other, "reason:1", map[string]string{"text": "x"})
	fd.ModalSubmit(mod, "reason:1", map[string]string{"text": "far too long a reason"})
	fd.ModalSubmit(mod, "reason:1", map[string]string{"text": ""})
	if got := rec.reports(); len(got) != 3 || !strings.Contains(got[0], "no modal") || !strings.Contains(got[1], "takes 10") ||
		!strings.Contains(got[2], "required") {
		t.Fatalf("misuse reports %q", got)
	}

	// The modal is still open.
	submit := fd.ModalSubmit(mod, "reason:1", map[string]string{"text": "spam"})
	if submit.Message == nil || submit.Message.ID != click.Message.ID || submit.ChannelID != "70" {
		t.Fatalf("submit does not carry the button's message: %+v", submit.Message)
	}
	fd.DispatchInteraction(submit)
	answered()
	m := fd.WaitMessage(t, wait, func(m fakediscord.Message) bool { return m.ID == click.Message.ID && m.Edits > 0 })
	if m.Content != "rejected: spam (reason:1)" || len(m.Components) != 0 {
		t.Errorf("post after the submit: %+v", m)
	}
	fd.ModalSubmit(mod, "reason:1", map[string]string{"text": "again"})
	if got := rec.reports(); len(got) != 4 || !strings.Contains(got[3], "no modal") {
		t.Errorf("a second submit of the same modal: reports %q", got)
	}
}

func TestInteractionCallback_RefusesWhatDiscordRefuses(t *testing.T) {
	t.Parallel()
	fd := fakediscord.New(t)
	responses := make(chan *discordgo.InteractionResponse, 1)
	errs := make(chan error, 1)
	openSession(t, fd, func(s *discordgo.Session, ic *discordgo.InteractionCreate) {
		errs <- s.InteractionRespond(ic.Interaction, <-responses)
	})
	try := func(i discordgo.Interaction, resp *discordgo.InteractionResponse) error {
		t.Helper()
		responses <- resp
		fd.DispatchInteraction(i)
		select {
		case err := <-errs:
			return err
		case <-time.After(wait):
			t.Fatal("bot did not answer")
			return nil
		}
	}
	formError := func(err error, field string) bool {
		var re *discordgo.RESTError
		return errors.As(err, &re) && re.Response.StatusCode == http.StatusBadRequest && re.Message.Code == 50035 &&
			strings.Contains(string(re.ResponseBody), field)
	}
	by := fakediscord.Invoker{UserID: "3001"}
	input := discordgo.ActionsRow{Components: []discordgo.MessageComponent{
		discordgo.TextInput{CustomID: "text", Label: "Why?", Style: discordgo.TextInputShort}}}
	longTitle := &discordgo.InteractionResponse{Type: discordgo.InteractionResponseModal, Data: &discordgo.InteractionResponseData{
		CustomID: "m", Title: strings.Repeat("t", 46), Components: []discordgo.MessageComponent{input}}}
	if err := try(fd.SlashCommand(by, "a"), longTitle); !formError(err, `"title"`) {
		t.Errorf("modal title of 46 characters: %v", err)
	}
	update := &discordgo.InteractionResponse{Type: discordgo.InteractionResponseUpdateMessage,
		Data: &discordgo.InteractionResponseData{Content: "x"}}
	var re *discordgo.RESTError
	if err := try(fd.SlashCommand(by, "b"), update); !errors.As(err, &re) || re.Message.Code != 10008 {
		t.Errorf("UPDATE_MESSAGE answering a slash command: %v, want 404 Unknown Message", err)
	}
	var six []discordgo.MessageComponent
	for n := range 6 {
		six = append(six, discordgo.Button{CustomID: fmt.Sprint("b", n), Label: "B", Style: discordgo.PrimaryButton})
	}
	tooMany := &discordgo.InteractionResponse{Type: discordgo.InteractionResponseChannelMessageWithSource,
		Data: &discordgo.InteractionResponseData{Content: "x", Components: []discordgo.MessageComponent{discordgo.ActionsRow{Components: six}}}}
	if err := try(fd.SlashCommand(by, "c"), tooMany); !formError(err, `"components"`) {
		t.Errorf("six buttons in a row: %v", err)
	}
	modal := &discordgo.InteractionResponse{Type: discordgo.InteractionResponseModal, Data: &discordgo.InteractionResponseData{
		CustomID: "m", Title: "Why", Components: []discordgo.MessageComponent{input}}}
	if err := try(fd.SlashCommand(by, "d"), modal); err != nil {
		t.Fatalf("a valid modal: %v", err)
	}
	submit := fd.ModalSubmit(by, "m", map[string]string{"text": "because"})
	if err := try(submit, modal); !formError(err, `"type"`) {
		t.Errorf("a modal answering a modal submit: %v", err)
	}
	if n := len(fd.InteractionResponses()); n != 1 {
		t.Errorf("%d responses recorded, want only the valid modal", n)
	}
}

func TestFailNextError_CarriesDiscordsCode(t *testing.T) {
	t.Parallel()
	fd := fakediscord.New(t)
	s := restSession(t, fd)
	fd.FailNextError(fakediscord.RouteCreateDM, 1, http.StatusNotFound, 10013, "Unknown User")
	_, err := s.UserChannelCreate("4001")
	var re *discordgo.RESTError
	if !errors.As(err, &re) || re.Response.StatusCode != http.StatusNotFound || re.Message.Code != 10013 || re.Message.Message != "Unknown User" {
		t.Fatalf("err = %v, want 404 code 10013", err)
	}
	if ch, err := s.UserChannelCreate("4001"); err != nil || ch.ID == "" {
		t.Fatalf("the next call: %+v %v", ch, err)
	}
}
