// Package discord is the Discord adapter: slash commands arrive as HTTP
// interactions (POST /discord/interactions, Ed25519-signed) or through the
// gateway, become bot.Requests, and are answered with a type-4 interaction
// response (ephemeral for private replies).
package discord

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
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
	session *discordgo.Session
	log     *slog.Logger
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
		if cfg.APIURL != "" || cfg.GatewayURL != "" {
			rt, err := newRedirect(cfg.APIURL, cfg.GatewayURL)
			if err != nil {
				return nil, err
			}
			s.Client = &http.Client{Transport: rt, Timeout: s.Client.Timeout}
		}
		s.AddHandler(a.onInteraction)
		a.session = s
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

// Close disconnects from the gateway.
func (a *Adapter) Close() error {
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
			for _, ch := range o.Choices {
				opt.Choices = append(opt.Choices, &discordgo.ApplicationCommandOptionChoice{Name: ch, Value: ch})
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
		resp, ok := a.respond(r.Context(), &i)
		if !ok {
			http.Error(w, "unsupported interaction", http.StatusBadRequest)
			return
		}
		json.NewEncoder(w).Encode(resp)
	})
}

func (a *Adapter) onInteraction(s *discordgo.Session, ic *discordgo.InteractionCreate) {
	resp, ok := a.respond(context.Background(), ic.Interaction)
	if !ok {
		return
	}
	if err := s.InteractionRespond(ic.Interaction, resp); err != nil {
		a.log.Error("discord: interaction response", "interaction", ic.ID, "err", err)
	}
}

// respond turns an application-command interaction into a request, runs it and
// renders the reply; ok is false for interactions it does not handle.
func (a *Adapter) respond(ctx context.Context, i *discordgo.Interaction) (*discordgo.InteractionResponse, bool) {
	if i.Type != discordgo.InteractionApplicationCommand {
		return nil, false
	}
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
		return nil, false
	}
	data := i.ApplicationCommandData()
	var args []string
	for _, o := range data.Options {
		if o.Type == discordgo.ApplicationCommandOptionString {
			args = append(args, strings.Fields(o.StringValue())...)
		} else {
			args = append(args, fmt.Sprint(o.Value))
		}
	}
	name := u.GlobalName
	if name == "" {
		name = u.Username
	}
	req := bot.Request{
		User:      bot.User{Platform: "discord", ID: u.ID, Name: name, Locale: string(i.Locale)},
		ChatID:    i.ChannelID,
		Group:     i.GuildID != "",
		Command:   data.Name,
		Args:      args,
		Moderator: moderator,
		Roles:     roles,
		Guild:     i.GuildID,
	}
	reply := a.cfg.Router.Handle(ctx, req)
	rd := &discordgo.InteractionResponseData{Content: reply.Text, AllowedMentions: &discordgo.MessageAllowedMentions{}}
	if reply.Private {
		rd.Flags = discordgo.MessageFlagsEphemeral
	}
	return &discordgo.InteractionResponse{Type: discordgo.InteractionResponseChannelMessageWithSource, Data: rd}, true
}
