// Package discord is the Discord adapter: slash commands arrive as HTTP
// interactions (POST /discord/interactions, Ed25519-signed) or through the
// gateway, become bot.Requests, and are answered with a type-4 interaction
// response (ephemeral for private replies). Button clicks go to Router.Press
// and modal submits to Router.Submit; Send delivers messages Tally sends on
// its own (bot.Sender).
package discord

import (
	"bytes"
	"cmp"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/bwmarrin/discordgo"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tally-loyalty/tally/bot"
	"github.com/tally-loyalty/tally/locales"
)

// Config is what the adapter needs; empty fields turn their part off.
type Config struct {
	Token      string // gateway mode and command registration
	AppID      string
	PublicKey  string // hex Ed25519 key: HTTP interactions
	APIURL     string // REST base override (proxies, tests), e.g. http://127.0.0.1:9000
	GatewayURL string // gateway override, e.g. ws://127.0.0.1:9000/gateway
	Router     *bot.Router
	Log        *slog.Logger
	// DB remembers answered interaction ids across instances (required with
	// PublicKey).
	DB *pgxpool.Pool
}

// Adapter connects the router to Discord.
type Adapter struct {
	cfg     Config
	pubKey  ed25519.PublicKey
	session *discordgo.Session // with the bot token: gateway, commands, Send
	// rest reaches interaction webhooks (followups), which need no bot token,
	// so HTTP interactions work without one.
	rest *discordgo.Session
	log  *slog.Logger
	// Followups sent after an HTTP interaction's response run until Close.
	ctx      context.Context
	stop     context.CancelFunc
	mu       sync.Mutex // guards closed and adding to inflight
	closed   bool
	inflight sync.WaitGroup
}

// replayWindow bounds how old a signed request may be; within it a repeated
// interaction id is refused, so a captured request cannot be replayed.
const replayWindow = 5 * time.Minute

// fresh reports whether a signed request's timestamp is recent and its
// interaction id new to every instance, remembering the id in Postgres.
func (a *Adapter) fresh(ctx context.Context, timestamp, id string) bool {
	sec, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil || time.Since(time.Unix(sec, 0)).Abs() > replayWindow || id == "" {
		return false
	}
	tag, err := a.cfg.DB.Exec(ctx, `INSERT INTO discord_interactions (interaction_id, seen_at) VALUES ($1, now())
		ON CONFLICT DO NOTHING`, id)
	if err != nil {
		a.log.Error("discord: remember interaction", "err", err)
		return false
	}
	if strings.HasSuffix(id, "00") { // about one request in a hundred prunes
		a.cfg.DB.Exec(ctx, "DELETE FROM discord_interactions WHERE seen_at < now() - interval '1 hour'")
	}
	return tag.RowsAffected() == 1
}

// New prepares the adapter; it connects nothing yet.
func New(cfg Config) (*Adapter, error) {
	a := &Adapter{cfg: cfg, log: cfg.Log.With("platform", "discord")}
	a.ctx, a.stop = context.WithCancel(context.Background())
	var transport http.RoundTripper
	if cfg.APIURL != "" || cfg.GatewayURL != "" {
		rt, err := newRedirect(cfg.APIURL, cfg.GatewayURL)
		if err != nil {
			return nil, err
		}
		transport = rt
	}
	if cfg.PublicKey != "" {
		key, err := hex.DecodeString(cfg.PublicKey)
		if err != nil || len(key) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("DISCORD_PUBLIC_KEY must be the application's 64-hex-digit public key")
		}
		if cfg.DB == nil {
			return nil, fmt.Errorf("discord: HTTP interactions need a database to refuse replayed requests")
		}
		a.pubKey = key
	}
	if cfg.Token != "" {
		s, err := discordgo.New("Bot " + cfg.Token)
		if err != nil {
			return nil, fmt.Errorf("discord: %w", err)
		}
		s.Identify.Intents = discordgo.IntentsGuilds
		if transport != nil {
			s.Client = &http.Client{Transport: transport, Timeout: s.Client.Timeout}
		}
		s.AddHandler(a.onInteraction)
		a.session = s
		a.rest = s
	} else {
		s, err := discordgo.New("")
		if err != nil {
			return nil, fmt.Errorf("discord: %w", err)
		}
		if transport != nil {
			s.Client = &http.Client{Transport: transport, Timeout: s.Client.Timeout}
		}
		a.rest = s
	}
	return a, nil
}

// redirect sends REST calls meant for discord.com to another server, and
// answers the gateway lookup with the configured gateway: discordgo computes
// its endpoint URLs once at init, so a transport is the one place to move them.
type redirect struct {
	api     *url.URL
	gateway string
}

func newRedirect(apiURL, gatewayURL string) (*redirect, error) {
	r := &redirect{gateway: gatewayURL}
	if apiURL != "" {
		u, err := url.Parse(apiURL)
		if err != nil || u.Host == "" {
			return nil, fmt.Errorf("DISCORD_API_URL %q: want a URL such as http://127.0.0.1:9000", apiURL)
		}
		r.api = u
	}
	return r, nil
}

func (r *redirect) RoundTrip(req *http.Request) (*http.Response, error) {
	if r.gateway != "" && (strings.HasSuffix(req.URL.Path, "/gateway") || strings.HasSuffix(req.URL.Path, "/gateway/bot")) {
		body, _ := json.Marshal(map[string]any{"url": r.gateway, "shards": 1})
		return &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/json"}},
			Body: io.NopCloser(bytes.NewReader(body)), Request: req}, nil
	}
	if r.api != nil {
		req = req.Clone(req.Context())
		req.URL.Scheme, req.URL.Host = r.api.Scheme, r.api.Host
		req.Host = r.api.Host
	}
	return http.DefaultTransport.RoundTrip(req)
}

// Open registers the slash commands and, with a bot token, connects to the
// gateway. Close disconnects.
func (a *Adapter) Open(ctx context.Context) error {
	if a.session == nil {
		return nil
	}
	if a.cfg.AppID == "" {
		return fmt.Errorf("discord: DISCORD_APP_ID is required with DISCORD_BOT_TOKEN")
	}
	if _, err := a.session.ApplicationCommandBulkOverwrite(a.cfg.AppID, "", a.Commands(), discordgo.WithContext(ctx)); err != nil {
		return fmt.Errorf("discord: register commands: %w", err)
	}
	if err := a.session.Open(); err != nil {
		return fmt.Errorf("discord: gateway: %w", err)
	}
	return nil
}

// Close disconnects from the gateway and waits for followups still being
// sent.
func (a *Adapter) Close() error {
	a.mu.Lock()
	a.closed = true
	a.mu.Unlock()
	a.stop()
	a.inflight.Wait()
	if a.session == nil {
		return nil
	}
	return a.session.Close()
}

// discordLocales maps Tally's locales to Discord's; Discord has no Arabic.
var discordLocales = map[string][]discordgo.Locale{
	"en": {discordgo.EnglishUS, discordgo.EnglishGB}, "de": {discordgo.German}, "fr": {discordgo.French},
	"es": {discordgo.SpanishES, discordgo.Locale("es-419")}, "it": {discordgo.Italian}, "pt-BR": {discordgo.PortugueseBR},
	"ru": {discordgo.Russian}, "ja": {discordgo.Japanese}, "ko": {discordgo.Korean},
	"zh-CN": {discordgo.ChineseCN}, "zh-TW": {discordgo.ChineseTW},
}

// Commands returns the router's commands as Discord slash commands with their
// descriptions in every language Discord and Tally share.
func (a *Adapter) Commands() []*discordgo.ApplicationCommand {
	cat := a.cfg.Router.Catalog()
	localized := func(id string) map[discordgo.Locale]string {
		m := map[discordgo.Locale]string{}
		for _, code := range locales.Supported {
			for _, dl := range discordLocales[code] {
				m[dl] = cat.For(code).T(id, nil)
			}
		}
		return m
	}
	var out []*discordgo.ApplicationCommand
	for _, c := range a.cfg.Router.Commands() {
		ac := &discordgo.ApplicationCommand{Name: c.Name, Description: cat.For("en").T(c.Desc, nil),
			DescriptionLocalizations: ptr(localized(c.Desc))}
		// Discord shows a localized name in its picker but sends the base name
		// in the interaction, so the router still sees "balance".
		if names := localized("name_" + c.Name); validNames(names) {
			ac.NameLocalizations = &names
		}
		for _, o := range c.Options {
			opt := &discordgo.ApplicationCommandOption{Type: discordgo.ApplicationCommandOptionString, Name: o.Name,
				Description: cat.For("en").T(o.Desc, nil), DescriptionLocalizations: localized(o.Desc), Required: o.Required}
			switch o.Type {
			case bot.OptionInteger:
				opt.Type, opt.MinValue = discordgo.ApplicationCommandOptionInteger, ptr(1.0)
			case bot.OptionUser:
				opt.Type = discordgo.ApplicationCommandOptionUser
			}
			for _, ch := range o.Choices {
				var v any = ch
				if n, err := strconv.ParseInt(ch, 10, 64); err == nil && opt.Type == discordgo.ApplicationCommandOptionInteger {
					v = n
				}
				opt.Choices = append(opt.Choices, &discordgo.ApplicationCommandOptionChoice{Name: ch, Value: v})
			}
			ac.Options = append(ac.Options, opt)
		}
		out = append(out, ac)
	}
	return out
}

func ptr[T any](v T) *T { return &v }

// validNames reports whether every localized name is one Discord accepts (a
// command without a name message renders its id, which is refused).
func validNames(m map[discordgo.Locale]string) bool {
	for _, n := range m {
		if n == "" || strings.HasPrefix(n, "name_") || len([]rune(n)) > 32 || strings.ToLower(n) != n || strings.ContainsAny(n, " /") {
			return false
		}
	}
	return true
}

// InteractionsHandler serves POST /discord/interactions: the signature over
// timestamp and body must verify (401 otherwise); PING is answered with PONG,
// commands with a type-4 response inside Discord's 3 seconds.
func (a *Adapter) InteractionsHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
		if a.pubKey == nil || !discordgo.VerifyInteraction(r, a.pubKey) {
			http.Error(w, "invalid request signature", http.StatusUnauthorized)
			return
		}
		var i discordgo.Interaction
		if err := json.NewDecoder(r.Body).Decode(&i); err != nil {
			http.Error(w, "not an interaction", http.StatusBadRequest)
			return
		}
		if !a.fresh(r.Context(), r.Header.Get("X-Signature-Timestamp"), i.ID) {
			http.Error(w, "stale or replayed request", http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		if i.Type == discordgo.InteractionPing {
			w.Write([]byte(`{"type":1}`))
			return
		}
		resp, followup, ok := a.respond(r.Context(), &i)
		if !ok {
			http.Error(w, "unsupported interaction", http.StatusBadRequest)
			return
		}
		json.NewEncoder(w).Encode(resp)
		if followup != "" {
			// Discord opens the interaction's webhook once it has this
			// response, so the followup goes out after the handler returns.
			a.followupLater(&i, followup)
		}
	})
}

func (a *Adapter) onInteraction(s *discordgo.Session, ic *discordgo.InteractionCreate) {
	resp, followup, ok := a.respond(context.Background(), ic.Interaction)
	if !ok {
		return
	}
	if err := s.InteractionRespond(ic.Interaction, resp); err != nil {
		a.log.Error("discord: interaction response", "interaction", ic.ID, "err", err)
		return
	}
	if followup != "" {
		if err := a.followup(a.ctx, ic.Interaction, followup); err != nil {
			a.log.Error("discord: followup", "interaction", ic.ID, "err", err)
		}
	}
}

// respond runs an interaction: a slash command through Router.Handle, a
// button click through Router.Press, a modal submit through Router.Submit.
// It returns the interaction response and, when there is one, an ephemeral
// followup to send after it; ok is false for interactions it does not handle.
func (a *Adapter) respond(ctx context.Context, i *discordgo.Interaction) (resp *discordgo.InteractionResponse, followup string, ok bool) {
	req, ok := requestOf(i)
	if !ok {
		return nil, "", false
	}
	switch i.Type {
	case discordgo.InteractionApplicationCommand:
		return a.command(ctx, i, req), "", true
	case discordgo.InteractionMessageComponent:
		data := i.MessageComponentData()
		if data.CustomID == "" {
			return nil, "", false
		}
		resp, followup := pressResponse(i, a.cfg.Router.Press(ctx, req, data.CustomID), false)
		return resp, followup, true
	case discordgo.InteractionModalSubmit:
		data := i.ModalSubmitData()
		text := strings.TrimSpace(inputValue(data.Components, modalInput))
		resp, followup := pressResponse(i, a.cfg.Router.Submit(ctx, req, data.CustomID, text), true)
		return resp, followup, true
	}
	return nil, "", false
}

// requestOf fills what every request from an interaction carries: who (with
// their Manage Server permission and roles in a guild) and where.
func requestOf(i *discordgo.Interaction) (bot.Request, bool) {
	var u *discordgo.User
	var roles []string
	moderator := false
	if i.Member != nil && i.Member.User != nil {
		u = i.Member.User
		moderator = i.Member.Permissions&discordgo.PermissionManageGuild != 0
		roles = i.Member.Roles
	} else {
		u = i.User
	}
	if u == nil {
		return bot.Request{}, false
	}
	name := u.GlobalName
	if name == "" {
		name = u.Username
	}
	return bot.Request{
		User:      bot.User{Platform: "discord", ID: u.ID, Name: name, Locale: string(i.Locale)},
		ChatID:    i.ChannelID,
		Group:     i.GuildID != "",
		Moderator: moderator,
		Roles:     roles,
		Guild:     i.GuildID,
	}, true
}

// embedColor is the accent of Tally's embeds (gold).
const embedColor = 0xF1C40F

// command runs a slash command and renders its reply as a type-4 response.
func (a *Adapter) command(ctx context.Context, i *discordgo.Interaction, req bot.Request) *discordgo.InteractionResponse {
	data := i.ApplicationCommandData()
	req.Command = data.Name
	req.Args = a.args(data)
	reply := a.cfg.Router.Handle(ctx, req)
	rd := &discordgo.InteractionResponseData{Content: reply.Text, AllowedMentions: noMentions(),
		Components: components(reply.Buttons)}
	if e := reply.Embed; e != nil {
		rd.Content = ""
		rd.Embeds = []*discordgo.MessageEmbed{{Title: e.Title, Description: e.Description, Color: embedColor}}
		if e.Footer != "" {
			rd.Embeds[0].Footer = &discordgo.MessageEmbedFooter{Text: e.Footer}
		}
	}
	if reply.Private {
		rd.Flags = discordgo.MessageFlagsEphemeral
	}
	return &discordgo.InteractionResponse{Type: discordgo.InteractionResponseChannelMessageWithSource, Data: rd}
}

// args turns a command's options into the router's positional arguments, in
// the order the command declares its options (Discord sends them in the
// order the member filled them in). Text is split into words; integers and
// user options (the user's id) arrive as digits.
func (a *Adapter) args(data discordgo.ApplicationCommandInteractionData) []string {
	rank := map[string]int{}
	for _, c := range a.cfg.Router.Commands() {
		if c.Name == data.Name {
			for n, o := range c.Options {
				rank[o.Name] = n + 1
			}
			break
		}
	}
	opts := slices.Clone(data.Options)
	slices.SortStableFunc(opts, func(x, y *discordgo.ApplicationCommandInteractionDataOption) int {
		return cmp.Compare(orLast(rank[x.Name]), orLast(rank[y.Name]))
	})
	var args []string
	for _, o := range opts {
		switch v := o.Value.(type) {
		case string:
			if o.Type == discordgo.ApplicationCommandOptionString {
				args = append(args, strings.Fields(v)...)
			} else {
				args = append(args, v) // a user, channel, role or mentionable id
			}
		case float64: // JSON numbers
			if o.Type == discordgo.ApplicationCommandOptionInteger {
				args = append(args, strconv.FormatInt(int64(v), 10))
			} else {
				args = append(args, strconv.FormatFloat(v, 'f', -1, 64))
			}
		default:
			args = append(args, fmt.Sprint(v))
		}
	}
	return args
}

// orLast puts options the command does not declare (rank 0) after the others.
func orLast(rank int) int {
	if rank == 0 {
		return math.MaxInt
	}
	return rank
}

// noMentions lets a message mention nobody: no pings from names or text.
func noMentions() *discordgo.MessageAllowedMentions {
	return &discordgo.MessageAllowedMentions{Parse: []discordgo.AllowedMentionType{}}
}
