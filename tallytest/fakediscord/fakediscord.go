// Package fakediscord is a fake Discord for tests. It serves the REST API under
// /api/v9 and the gateway websocket on 127.0.0.1, speaking the same wire
// protocols as discord.com, so the real discordgo.Session and the bot's own
// HTTP interactions endpoint run unchanged against it. A test injects what
// Discord would do (slash commands, button clicks, modal submits, rate limits,
// error codes, users who block DMs) and reads back what the bot sent
// (interaction responses, messages, commands).
//
// The fake enforces the Discord rules that bots get wrong in production: one
// response per interaction within three seconds, followups only after the
// response, messages neither empty nor over 2000 characters, at most five rows
// of five buttons, modals within Discord's limits and never in answer to a
// modal, UPDATE_MESSAGE only where there is a message to update, and command
// names, descriptions and locales that Discord accepts.
//
// A gateway test reads:
//
//	fd := fakediscord.New(t)
//	s, _ := discordgo.New("Bot " + fd.BotToken())
//	fd.ConfigureSession(s)
//	s.AddHandler(bot.OnInteraction)
//	if err := s.Open(); err != nil { t.Fatal(err) }
//	in := fd.SlashCommand(fakediscord.Invoker{UserID: "1", GuildID: "2", Locale: discordgo.German}, "balance")
//	fd.DispatchInteraction(in)
//	r := fd.WaitInteractionResponse(t, in.ID, 5*time.Second)
//
// An HTTP-interactions test signs with NewSigner's key and posts with
// PostInteraction; code that takes a REST base URL instead of an http.Client
// gets URL and GatewayURL.
package fakediscord

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"mime"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/bwmarrin/discordgo"
	"github.com/gorilla/websocket"
)

// Routes name the REST endpoints the fake serves, as method and path pattern
// below /api/v9. FailNext and Calls take them, or a concrete "METHOD /path".
const (
	RouteGateway             = "GET /gateway"
	RouteGatewayBot          = "GET /gateway/bot"
	RouteMe                  = "GET /users/@me"
	RouteUser                = "GET /users/{user_id}"
	RouteCreateDM            = "POST /users/@me/channels"
	RouteGlobalCommands      = "PUT /applications/{app_id}/commands"
	RouteGuildCommands       = "PUT /applications/{app_id}/guilds/{guild_id}/commands"
	RouteInteractionCallback = "POST /interactions/{interaction_id}/{token}/callback"
	RouteFollowup            = "POST /webhooks/{app_id}/{token}"
	RouteEditOriginal        = "PATCH /webhooks/{app_id}/{token}/messages/@original"
	RouteEditFollowup        = "PATCH /webhooks/{app_id}/{token}/messages/{message_id}"
	RouteChannelMessages     = "POST /channels/{channel_id}/messages"
	RouteEditChannelMessage  = "PATCH /channels/{channel_id}/messages/{message_id}"
)

// discordEpoch is the first millisecond of 2015, where snowflakes start.
const discordEpoch = 1420070400000

// writeTimeout bounds every gateway write so a stuck client cannot hang a test.
const writeTimeout = 5 * time.Second

// replayLimit is how many dispatches a session keeps for RESUME.
const replayLimit = 256

// Server is a fake Discord. It is safe for concurrent use; New closes it when
// the test ends.
type Server struct {
	t         testing.TB
	srv       *httptest.Server
	api       string // path prefix, "/api/v9"
	appID     string
	token     string
	bot       discordgo.User
	heartbeat time.Duration
	deadline  time.Duration
	transport *http.Transport
	client    *http.Client
	upgrader  websocket.Upgrader
	lastID    atomic.Uint64
	wg        sync.WaitGroup

	// dispatchMu orders gateway writes that carry sequence numbers, so a
	// session sees READY before any dispatch and dispatches in sequence order.
	dispatchMu sync.Mutex

	mu            sync.Mutex
	changed       chan struct{} // closed and replaced on every change, to wake waiters
	closed        bool
	conns         map[*gatewayConn]struct{}
	sessions      map[string]*gatewaySession
	identified    int
	resumed       int
	heartbeats    int
	interactions  map[string]*interactionState // by interaction ID
	byToken       map[string]*interactionState
	responses     []InteractionResponse
	commands      map[string][]*discordgo.ApplicationCommand // by guild ID, "" is global
	commandIDs    map[string]string                          // scope, type and name → stable ID
	lastCommands  []*discordgo.ApplicationCommand
	messages      []*Message
	modals        []*shownModal // modals shown and not yet submitted
	calls         []Call
	failures      []*failure
	blocked       map[string]bool
	users         map[string]discordgo.User
	dms           map[string]string // user → DM channel
	dmUsers       map[string]string // DM channel → user
	guildChannels map[string]string // guild → default channel for built interactions
}

// Option changes how New sets up the fake.
type Option func(*Server)

// WithHeartbeatInterval sets the heartbeat_interval sent in HELLO (Discord's
// is about 41 s). Keep the default with discordgo: below its one-second pause
// in Session.Close, its heartbeat goroutine can race Close and start a
// reconnect loop that outlives the test, and it reconnects when an ACK is
// five intervals late. Short intervals suit raw websocket clients.
func WithHeartbeatInterval(d time.Duration) Option {
	return func(s *Server) { s.heartbeat = d }
}

// WithInteractionDeadline sets how long after an interaction its first
// response is accepted (Discord: 3 s, discordgo.InteractionDeadline). Zero
// turns the check off.
func WithInteractionDeadline(d time.Duration) Option {
	return func(s *Server) { s.deadline = d }
}

// New starts a fake Discord on 127.0.0.1 with a fresh application, bot user
// and token, and closes it (gateway connections included) when the test ends.
func New(t testing.TB, opts ...Option) *Server {
	t.Helper()
	s := &Server{
		t:             t,
		api:           "/api/v" + discordgo.APIVersion,
		heartbeat:     41250 * time.Millisecond,
		deadline:      discordgo.InteractionDeadline,
		changed:       make(chan struct{}),
		conns:         map[*gatewayConn]struct{}{},
		sessions:      map[string]*gatewaySession{},
		interactions:  map[string]*interactionState{},
		byToken:       map[string]*interactionState{},
		commands:      map[string][]*discordgo.ApplicationCommand{},
		commandIDs:    map[string]string{},
		blocked:       map[string]bool{},
		users:         map[string]discordgo.User{},
		dms:           map[string]string{},
		dmUsers:       map[string]string{},
		guildChannels: map[string]string{},
	}
	for _, o := range opts {
		o(s)
	}
	s.appID = s.newID()
	// Real bot tokens are base64(user id).timestamp.hmac; keeping the shape
	// catches code that splits or logs them.
	s.token = base64.RawURLEncoding.EncodeToString([]byte(s.appID)) + ".fake." + rand.Text()
	// A modern application's bot user shares the application's ID.
	s.bot = discordgo.User{ID: s.appID, Username: "tally-fake", Discriminator: "0", Bot: true, Verified: true}

	api := http.NewServeMux()
	s.route(api, RouteGateway, false, s.getGateway)
	s.route(api, RouteGatewayBot, true, s.getGatewayBot)
	s.route(api, RouteMe, true, s.getMe)
	s.route(api, RouteUser, true, s.getUser)
	s.route(api, RouteCreateDM, true, s.createDM)
	s.route(api, RouteGlobalCommands, true, s.putCommands)
	s.route(api, RouteGuildCommands, true, s.putCommands)
	s.route(api, RouteInteractionCallback, false, s.interactionCallback)
	s.route(api, RouteFollowup, false, s.followup)
	s.route(api, RouteEditOriginal, false, s.editWebhookMessage)
	s.route(api, RouteEditFollowup, false, s.editWebhookMessage)
	s.route(api, RouteChannelMessages, true, s.createChannelMessage)
	s.route(api, RouteEditChannelMessage, true, s.editChannelMessage)
	s.route(api, "/", false, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, apiMessage{Message: "404: Not Found"})
	})

	mux := http.NewServeMux()
	mux.Handle(s.api+"/", http.StripPrefix(s.api, api))
	// discordgo appends "/" and "?v=9&encoding=json" to the URL /gateway returns.
	mux.HandleFunc("GET /gateway", s.serveGateway)
	mux.HandleFunc("GET /gateway/", s.serveGateway)
	s.srv = httptest.NewUnstartedServer(mux)
	// Started after s.srv is set: connection handlers read it (GatewayURL).
	s.srv.Start()

	// The fake's own transport, without the environment's proxy: a proxy
	// would not reach 127.0.0.1, and Close can drop its idle connections.
	s.transport = &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		MaxIdleConnsPerHost: 16,
		IdleConnTimeout:     30 * time.Second,
	}
	s.client = &http.Client{
		Transport: &rewriter{host: s.srv.Listener.Addr().String(), base: s.transport},
		Timeout:   20 * time.Second,
	}
	t.Cleanup(s.Close)
	return s
}

// AppID is the application's ID, which is also the bot user's ID.
func (s *Server) AppID() string { return s.appID }

// BotToken is the bot token without the "Bot " prefix, as a bot reads it
// from its configuration.
func (s *Server) BotToken() string { return s.token }

// BotUser is the user the bot is logged in as (GET /users/@me, READY).
func (s *Server) BotUser() discordgo.User { return s.bot }

// URL is the fake's base URL, to use in place of https://discord.com.
func (s *Server) URL() string { return s.srv.URL }

// GatewayURL is the gateway's websocket URL, as GET /gateway returns it.
func (s *Server) GatewayURL() string {
	return "ws://" + s.srv.Listener.Addr().String() + "/gateway"
}

// HTTPClient returns a client that sends every request, whatever its host, to
// the fake: discordgo computes its endpoint URLs from https://discord.com/ at
// init, so rewriting in the transport is the only way to move them.
func (s *Server) HTTPClient() *http.Client { return s.client }

// ConfigureSession points a discordgo session at the fake: REST through
// HTTPClient (GET /gateway then hands it the fake's gateway) and a websocket
// dialer that ignores proxy settings. It also closes the session when the test
// ends, before the fake shuts down; otherwise discordgo would try to reconnect
// to the vanished gateway forever.
func (s *Server) ConfigureSession(sess *discordgo.Session) {
	sess.Client = s.HTTPClient()
	sess.Dialer = &websocket.Dialer{HandshakeTimeout: 5 * time.Second}
	s.t.Cleanup(func() { _ = sess.Close() })
}

// Close closes the gateway connections, waits for their goroutines, and shuts
// the server down. New arranges for it to run when the test ends; calling it
// again does nothing.
func (s *Server) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	conns := make([]*gatewayConn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.notifyLocked()
	s.mu.Unlock()
	for _, c := range conns {
		_ = c.ws.Close()
	}
	// Hijacked websocket connections are not tracked by httptest, so the
	// fake waits for their handlers itself.
	s.wg.Wait()
	s.srv.Close()
	s.transport.CloseIdleConnections()
}

// rewriter sends every request to the fake, keeping method, path and body.
type rewriter struct {
	host string
	base http.RoundTripper
}

// RoundTrip rewrites a copy, as a RoundTripper must not change its request.
func (rt *rewriter) RoundTrip(r *http.Request) (*http.Response, error) {
	r2 := r.Clone(r.Context())
	r2.URL.Scheme = "http"
	r2.URL.Host = rt.host
	r2.Host = ""
	return rt.base.RoundTrip(r2)
}

// newID returns a snowflake: time-ordered like Discord's and unique.
func (s *Server) newID() string {
	for {
		last := s.lastID.Load()
		next := uint64(time.Now().UnixMilli()-discordEpoch) << 22
		if next <= last {
			next = last + 1
		}
		if s.lastID.CompareAndSwap(last, next) {
			return strconv.FormatUint(next, 10)
		}
	}
}

// notifyLocked wakes everything waiting for a change; s.mu must be held.
func (s *Server) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// waitFor reports whether cond, evaluated under s.mu, became true in time.
func (s *Server) waitFor(timeout time.Duration, cond func() bool) bool {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		s.mu.Lock()
		ok := cond()
		ch := s.changed
		s.mu.Unlock()
		if ok {
			return true
		}
		select {
		case <-ch:
		case <-timer.C:
			return false
		}
	}
}

// ---------------------------------------------------------------------------
// REST plumbing: auth, injected failures, call log, JSON errors.

// Call is one REST request the fake received.
type Call struct {
	Method string
	Path   string // below /api/v9, e.g. /channels/123/messages
	Route  string // the matched Route constant; empty for unknown paths
	Header http.Header
	Body   []byte
	Status int // the status the fake answered
}

// failure is a queued FailNext or FailNextError.
type failure struct {
	route      string
	left       int
	status     int
	retryAfter float64
	body       *apiMessage // FailNextError's body; nil for the standard one
}

// apiMessage is Discord's error body.
type apiMessage struct {
	Message string `json:"message"`
	Code    int    `json:"code"`
	Errors  any    `json:"errors,omitempty"`
}

// apiError is an error answer a handler decided on.
type apiError struct {
	status int
	body   apiMessage
}

func errUnknownInteraction() *apiError {
	return &apiError{http.StatusNotFound, apiMessage{Message: "Unknown interaction", Code: 10062}}
}

func errUnknownWebhook() *apiError {
	return &apiError{http.StatusNotFound, apiMessage{Message: "Unknown Webhook", Code: 10015}}
}

func errUnknownMessage() *apiError {
	return &apiError{http.StatusNotFound, apiMessage{Message: "Unknown Message", Code: 10008}}
}

func errInvalidJSON() *apiError {
	return &apiError{http.StatusBadRequest, apiMessage{Message: "The request body contains invalid JSON.", Code: 50109}}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (e *apiError) write(w http.ResponseWriter) { writeJSON(w, e.status, e.body) }

// statusRecorder remembers the status a handler wrote, for the call log.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

// route registers a handler behind the checks every Discord endpoint makes.
func (s *Server) route(mux *http.ServeMux, pattern string, auth bool, h http.HandlerFunc) {
	name := pattern
	if pattern == "/" {
		name = ""
	}
	mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 25<<20))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		rec := &statusRecorder{ResponseWriter: w}
		defer func() {
			s.mu.Lock()
			s.calls = append(s.calls, Call{Method: r.Method, Path: r.URL.Path, Route: name,
				Header: r.Header.Clone(), Body: body, Status: rec.status})
			s.notifyLocked()
			s.mu.Unlock()
		}()
		if auth && r.Header.Get("Authorization") != "Bot "+s.token {
			writeJSON(rec, http.StatusUnauthorized, apiMessage{Message: "401: Unauthorized"})
			return
		}
		if f := s.takeFailure(name, r.Method+" "+r.URL.Path); f != nil {
			s.writeFailure(rec, f)
			return
		}
		if name != "" {
			// Discord sends its bucket state on every answer; discordgo's
			// limiter reads it, so the fake keeps the bucket open.
			setRateLimitHeaders(rec.Header(), name, 4, 1)
		}
		h(rec, r)
	})
}

// takeFailure consumes one queued failure for the request, if any.
func (s *Server) takeFailure(route, concrete string) *failure {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, f := range s.failures {
		if f.left > 0 && (f.route == route || f.route == concrete) {
			f.left--
			return f
		}
	}
	return nil
}

func setRateLimitHeaders(h http.Header, route string, remaining int, resetAfter float64) {
	reset := float64(time.Now().UnixMilli())/1000 + resetAfter
	h.Set("X-RateLimit-Limit", "5")
	h.Set("X-RateLimit-Remaining", strconv.Itoa(remaining))
	h.Set("X-RateLimit-Reset", strconv.FormatFloat(reset, 'f', 3, 64))
	h.Set("X-RateLimit-Reset-After", strconv.FormatFloat(resetAfter, 'f', 3, 64))
	h.Set("X-RateLimit-Bucket", hex.EncodeToString([]byte(route))[:16])
}

// writeFailure answers as Discord does when it refuses a request: for a 429
// the JSON body discordgo sleeps on (retry_after in seconds) and the bucket
// headers its limiter reads (X-RateLimit-Reset-After, -Remaining).
func (s *Server) writeFailure(w http.ResponseWriter, f *failure) {
	if f.status == http.StatusTooManyRequests {
		setRateLimitHeaders(w.Header(), f.route, 0, f.retryAfter)
		w.Header().Set("X-RateLimit-Scope", "user")
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(f.retryAfter))))
		writeJSON(w, f.status, map[string]any{
			"message": "You are being rate limited.", "retry_after": f.retryAfter, "global": false,
		})
		return
	}
	if f.body != nil {
		writeJSON(w, f.status, *f.body)
		return
	}
	writeJSON(w, f.status, apiMessage{Message: fmt.Sprintf("%d: %s", f.status, http.StatusText(f.status))})
}

// FailNext makes the next n requests on route fail with status instead of
// reaching the handler. With 429 the answer is Discord's rate limit, which
// discordgo sleeps retryAfter seconds on and retries (keep it small, 0.05);
// route is a Route constant or a concrete "POST /channels/123/messages".
func (s *Server) FailNext(route string, n int, status int, retryAfter float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failures = append(s.failures, &failure{route: s.normalizeRoute(route), left: n,
		status: status, retryAfter: retryAfter})
}

// FailNextError makes the next n requests on route fail with status and
// Discord's JSON error body {"message": message, "code": code}, for the
// errors a bot tells apart by code: 50007 "Cannot send messages to this
// user" (403), 10013 "Unknown User" (404), 10003 "Unknown Channel" (404)...
func (s *Server) FailNextError(route string, n int, status, code int, message string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failures = append(s.failures, &failure{route: s.normalizeRoute(route), left: n, status: status,
		body: &apiMessage{Message: message, Code: code}})
}

// normalizeRoute accepts "POST /api/v9/channels/…" for "POST /channels/…".
func (s *Server) normalizeRoute(route string) string {
	method, path, ok := strings.Cut(route, " ")
	if !ok {
		return route
	}
	return method + " " + strings.TrimPrefix(path, s.api)
}

// BlockDMs makes messages to the user's DM channel fail with 403 code 50007,
// as when a user closes DMs or blocks the bot; opening the channel still works.
func (s *Server) BlockDMs(userID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.blocked[userID] = true
}

// Calls returns the requests made on route (a Route constant or a concrete
// "METHOD /path" below /api/v9), oldest first.
func (s *Server) Calls(route string) []Call {
	route = s.normalizeRoute(route)
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Call
	for _, c := range s.calls {
		if c.Route == route || c.Method+" "+c.Path == route {
			out = append(out, c)
		}
	}
	return out
}

// requestJSON returns a request's JSON payload; discordgo sends it as the
// payload_json part of a multipart body when files are attached.
func requestJSON(r *http.Request) ([]byte, error) {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt == "multipart/form-data" {
		if err := r.ParseMultipartForm(25 << 20); err != nil {
			return nil, err
		}
		return []byte(r.FormValue("payload_json")), nil
	}
	return io.ReadAll(r.Body)
}

// ---------------------------------------------------------------------------
// REST handlers.

func (s *Server) getGateway(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"url": s.GatewayURL()})
}

func (s *Server) getGatewayBot(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"url": s.GatewayURL(), "shards": 1,
		"session_start_limit": map[string]int{"total": 1000, "remaining": 999, "reset_after": 14400000, "max_concurrency": 1},
	})
}

func (s *Server) getMe(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.bot)
}

func (s *Server) getUser(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("user_id")
	s.mu.Lock()
	u, ok := s.users[id]
	s.mu.Unlock()
	if !ok {
		u = discordgo.User{ID: id, Username: defaultUsername(id), Discriminator: "0"}
	}
	writeJSON(w, http.StatusOK, u)
}

func (s *Server) createDM(w http.ResponseWriter, r *http.Request) {
	var req struct {
		RecipientID string `json:"recipient_id"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		errInvalidJSON().write(w)
		return
	}
	if req.RecipientID == "" {
		fe := &formErrors{}
		fe.add([]string{"recipient_id"}, "BASE_TYPE_REQUIRED", "This field is required")
		fe.apiError().write(w)
		return
	}
	s.mu.Lock()
	ch := s.dmChannelLocked(req.RecipientID)
	u, ok := s.users[req.RecipientID]
	s.mu.Unlock()
	if !ok {
		u = discordgo.User{ID: req.RecipientID, Username: defaultUsername(req.RecipientID), Discriminator: "0"}
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"id": ch, "type": discordgo.ChannelTypeDM, "last_message_id": nil, "flags": 0, "recipients": []discordgo.User{u},
	})
}

// dmChannelLocked returns the user's DM channel, opening it the first time
// (Discord, too, answers the same channel for the same user).
func (s *Server) dmChannelLocked(userID string) string {
	if ch, ok := s.dms[userID]; ok {
		return ch
	}
	ch := s.newID()
	s.dms[userID] = ch
	s.dmUsers[ch] = userID
	return ch
}

func defaultUsername(id string) string {
	if len(id) > 4 {
		id = id[len(id)-4:]
	}
	return "user" + id
}

func (s *Server) putCommands(w http.ResponseWriter, r *http.Request) {
	if r.PathValue("app_id") != s.appID {
		writeJSON(w, http.StatusForbidden, apiMessage{Message: "Missing Access", Code: 50001})
		return
	}
	guild := r.PathValue("guild_id")
	body, err := requestJSON(r)
	if err != nil {
		errInvalidJSON().write(w)
		return
	}
	var cmds []*discordgo.ApplicationCommand
	if err := json.Unmarshal(body, &cmds); err != nil {
		errInvalidJSON().write(w)
		return
	}
	if fe := validateCommands(cmds); fe != nil {
		fe.apiError().write(w)
		return
	}
	s.mu.Lock()
	for _, c := range cmds {
		if c.Type == 0 {
			c.Type = discordgo.ChatApplicationCommand
		}
		// Discord keeps a command's ID across overwrites while its name and
		// type stay; bots store these IDs for mentions like </name:id>.
		key := fmt.Sprintf("%s\x00%d\x00%s", guild, c.Type, c.Name)
		id, ok := s.commandIDs[key]
		if !ok {
			id = s.newID()
			s.commandIDs[key] = id
		}
		c.ID, c.ApplicationID, c.GuildID, c.Version = id, s.appID, guild, s.newID()
	}
	s.commands[guild] = cloneCommands(cmds)
	s.lastCommands = cloneCommands(cmds)
	s.notifyLocked()
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, cmds)
}

func cloneCommands(cmds []*discordgo.ApplicationCommand) []*discordgo.ApplicationCommand {
	b, err := json.Marshal(cmds)
	if err != nil {
		panic(err)
	}
	var out []*discordgo.ApplicationCommand
	if err := json.Unmarshal(b, &out); err != nil {
		panic(err)
	}
	return out
}

// Commands returns the commands of the last bulk overwrite, global or guild,
// as Discord stored them (with IDs and localizations).
func (s *Server) Commands() []*discordgo.ApplicationCommand {
	s.mu.Lock()
	defer s.mu.Unlock()
	return cloneCommands(s.lastCommands)
}

// GuildCommands returns the commands registered for a guild, or the global
// commands for guildID "".
func (s *Server) GuildCommands(guildID string) []*discordgo.ApplicationCommand {
	s.mu.Lock()
	defer s.mu.Unlock()
	return cloneCommands(s.commands[guildID])
}

// commandIDLocked finds a registered command's ID so built interactions carry
// the ID Discord would send; unregistered names get a fresh one.
func (s *Server) commandIDLocked(guild, name string) string {
	for _, scope := range []string{guild, ""} {
		if id, ok := s.commandIDs[fmt.Sprintf("%s\x00%d\x00%s", scope, discordgo.ChatApplicationCommand, name)]; ok {
			return id
		}
	}
	return s.newID()
}

// ---------------------------------------------------------------------------
// Messages and interaction responses.

// MessageKind says how a bot's message was created.
type MessageKind string

// Message kinds.
const (
	// KindChannel is a message sent with POST /channels/{id}/messages.
	KindChannel MessageKind = "channel"
	// KindOriginal is an interaction's response message (type 4 or 5), which
	// PATCH .../messages/@original edits.
	KindOriginal MessageKind = "original"
	// KindFollowup is a followup sent to the interaction's webhook.
	KindFollowup MessageKind = "followup"
)

// Message is a message the bot created, with all edits applied.
type Message struct {
	ID        string
	ChannelID string
	// Recipient is the user whose DM channel this is, for channels opened
	// with POST /users/@me/channels or built into interactions.
	Recipient string
	// InteractionID ties an original response or followup to its interaction.
	InteractionID string
	Kind          MessageKind
	Content       string
	Flags         discordgo.MessageFlags
	Embeds        []*discordgo.MessageEmbed
	Components    []discordgo.MessageComponent
	Edits         int
	Created       time.Time
}

// InteractionResponse is a bot's first answer to an interaction: the body of
// POST /interactions/{id}/{token}/callback, or of its HTTP reply to an
// interaction sent with PostInteraction.
type InteractionResponse struct {
	InteractionID string
	Token         string
	Type          discordgo.InteractionResponseType
	Content       string
	Flags         discordgo.MessageFlags
	Embeds        []*discordgo.MessageEmbed
	Components    []discordgo.MessageComponent
	Choices       []*discordgo.ApplicationCommandOptionChoice // autocomplete
	CustomID      string                                      // modal
	Title         string                                      // modal
	// HTTP is true when the response was the HTTP reply to PostInteraction.
	HTTP bool
	// Body is the JSON exactly as the bot sent it.
	Body json.RawMessage
}

// Ephemeral reports whether only the invoking user sees the response.
func (r InteractionResponse) Ephemeral() bool {
	return r.Flags&discordgo.MessageFlagsEphemeral != 0
}

// messageFields is the part of a message payload the fake keeps; pointers
// tell an edit's absent fields (unchanged) from present ones.
type messageFields struct {
	Content    *string                    `json:"content"`
	Flags      *discordgo.MessageFlags    `json:"flags"`
	Embeds     *[]*discordgo.MessageEmbed `json:"embeds"`
	Components *[]json.RawMessage         `json:"components"`
	Poll       json.RawMessage            `json:"poll"`
	Stickers   []string                   `json:"sticker_ids"`
	Attachment []json.RawMessage          `json:"attachments"`
	decoded    []discordgo.MessageComponent
}

// parseMessage decodes and checks a message payload the way Discord does.
// create demands a non-empty message; edits may change any subset.
func parseMessage(raw []byte, create bool) (*messageFields, *apiError) {
	var f messageFields
	if len(bytes.TrimSpace(raw)) == 0 {
		raw = []byte("{}")
	}
	if err := json.Unmarshal(raw, &f); err != nil {
		return nil, errInvalidJSON()
	}
	fe := &formErrors{}
	if f.Content != nil && utf8.RuneCountInString(*f.Content) > 2000 {
		fe.add([]string{"content"}, "BASE_TYPE_MAX_LENGTH", "Must be 2000 or fewer in length.")
	}
	if f.Embeds != nil && len(*f.Embeds) > 10 {
		fe.add([]string{"embeds"}, "BASE_TYPE_MAX_LENGTH", "Must be 10 or fewer in length.")
	}
	if f.Components != nil {
		for i, rc := range *f.Components {
			c, err := discordgo.MessageComponentFromJSON(rc)
			if err != nil {
				fe.add([]string{"components", strconv.Itoa(i)}, "UNION_TYPE_CHOICES", err.Error())
				continue
			}
			f.decoded = append(f.decoded, c)
		}
		checkButtons(fe, f.decoded)
	}
	if e := fe.apiError(); e != nil {
		return nil, e
	}
	if create && (f.Content == nil || *f.Content == "") && (f.Embeds == nil || len(*f.Embeds) == 0) &&
		len(f.decoded) == 0 && isNull(f.Poll) && len(f.Stickers) == 0 && len(f.Attachment) == 0 {
		return nil, &apiError{http.StatusBadRequest, apiMessage{Message: "Cannot send an empty message", Code: 50006}}
	}
	return &f, nil
}

// checkButtons applies Discord's limits to a message's action rows: at most
// five rows of at most five buttons, a custom_id of 1 to 100 characters on
// every button but link buttons, labels of at most 80.
func checkButtons(fe *formErrors, rows []discordgo.MessageComponent) {
	if len(rows) > 5 {
		fe.add([]string{"components"}, "BASE_TYPE_MAX_LENGTH", "Must be 5 or fewer in length.")
	}
	for i, c := range rows {
		row, ok := c.(*discordgo.ActionsRow)
		if !ok {
			continue
		}
		p := []string{"components", strconv.Itoa(i), "components"}
		if len(row.Components) > 5 {
			fe.add(p, "BASE_TYPE_MAX_LENGTH", "Must be 5 or fewer in length.")
		}
		for j, cc := range row.Components {
			b, ok := cc.(*discordgo.Button)
			if !ok {
				continue
			}
			bp := sub(p, strconv.Itoa(j))
			if b.Style != discordgo.LinkButton && b.Style != discordgo.PremiumButton {
				checkLength(fe, sub(bp, "custom_id"), b.CustomID, 1, 100)
			}
			checkLength(fe, sub(bp, "label"), b.Label, 0, 80)
		}
	}
}

// isNull reports whether a raw field was absent or null.
func isNull(raw json.RawMessage) bool {
	return len(raw) == 0 || string(raw) == "null"
}

// apply writes the present fields onto m.
func (f *messageFields) apply(m *Message) {
	if f.Content != nil {
		m.Content = *f.Content
	}
	if f.Flags != nil {
		m.Flags = *f.Flags
	}
	if f.Embeds != nil {
		m.Embeds = *f.Embeds
	}
	if f.Components != nil {
		m.Components = f.decoded
	}
}

// messageJSONLocked renders m as Discord returns a message object.
func (s *Server) messageJSONLocked(m *Message) map[string]any {
	embeds := m.Embeds
	if embeds == nil {
		embeds = []*discordgo.MessageEmbed{}
	}
	components := m.Components
	if components == nil {
		components = []discordgo.MessageComponent{}
	}
	out := map[string]any{
		"id": m.ID, "channel_id": m.ChannelID, "type": discordgo.MessageTypeDefault, "content": m.Content,
		"author": s.bot, "timestamp": m.Created.Format(time.RFC3339Nano), "edited_timestamp": nil,
		"embeds": embeds, "components": components, "flags": m.Flags, "tts": false, "mention_everyone": false,
		"mentions": []any{}, "mention_roles": []any{}, "attachments": []any{}, "pinned": false,
	}
	if m.Edits > 0 {
		out["edited_timestamp"] = time.Now().Format(time.RFC3339Nano)
	}
	if m.Kind != KindChannel {
		out["webhook_id"] = s.appID
		out["application_id"] = s.appID
		if m.Kind == KindOriginal {
			out["type"] = discordgo.MessageTypeChatInputCommand
		}
	}
	return out
}

// addMessageLocked stores a new message the bot created.
func (s *Server) addMessageLocked(m *Message) {
	m.ID = s.newID()
	m.Created = time.Now()
	m.Recipient = s.dmUsers[m.ChannelID]
	s.messages = append(s.messages, m)
	s.notifyLocked()
}

func (s *Server) findMessageLocked(id string) *Message {
	for _, m := range s.messages {
		if m.ID == id {
			return m
		}
	}
	return nil
}

func (s *Server) createChannelMessage(w http.ResponseWriter, r *http.Request) {
	ch := r.PathValue("channel_id")
	raw, err := requestJSON(r)
	if err != nil {
		errInvalidJSON().write(w)
		return
	}
	f, e := parseMessage(raw, true)
	if e != nil {
		e.write(w)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if u, ok := s.dmUsers[ch]; ok && s.blocked[u] {
		writeJSON(w, http.StatusForbidden, apiMessage{Message: "Cannot send messages to this user", Code: 50007})
		return
	}
	m := &Message{ChannelID: ch, Kind: KindChannel}
	f.apply(m)
	s.addMessageLocked(m)
	writeJSON(w, http.StatusOK, s.messageJSONLocked(m))
}

func (s *Server) editChannelMessage(w http.ResponseWriter, r *http.Request) {
	raw, err := requestJSON(r)
	if err != nil {
		errInvalidJSON().write(w)
		return
	}
	f, e := parseMessage(raw, false)
	if e != nil {
		e.write(w)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.findMessageLocked(r.PathValue("message_id"))
	if m == nil || m.ChannelID != r.PathValue("channel_id") {
		errUnknownMessage().write(w)
		return
	}
	f.apply(m)
	m.Edits++
	s.notifyLocked()
	writeJSON(w, http.StatusOK, s.messageJSONLocked(m))
}

// interactionState is what the fake knows about an interaction it sent.
type interactionState struct {
	id, token, channelID string
	typ                  discordgo.InteractionType
	messageID            string // the message a clicked component sits on
	userID               string // who used it
	created              time.Time
	acked                bool
	original             *Message
}

// shownModal is a modal a bot showed (response type 9), until it is submitted.
type shownModal struct {
	customID  string
	inputs    []*discordgo.TextInput
	userID    string // only the user it was shown to can submit it
	channelID string
	messageID string // the message whose component opened it; "" after a command
}

// interactionRef is the part of an interaction payload the fake tracks.
type interactionRef struct {
	ID        string                    `json:"id"`
	Token     string                    `json:"token"`
	ChannelID string                    `json:"channel_id"`
	Type      discordgo.InteractionType `json:"type"`
	Message   *struct {
		ID string `json:"id"`
	} `json:"message"`
	User   *struct{ ID string } `json:"user"`
	Member *struct {
		User *struct{ ID string } `json:"user"`
	} `json:"member"`
}

// register remembers an interaction so its callback and webhook are accepted.
func (s *Server) register(raw []byte) *interactionState {
	var ref interactionRef
	if err := json.Unmarshal(raw, &ref); err != nil || ref.ID == "" {
		return nil
	}
	st := &interactionState{id: ref.ID, token: ref.Token, channelID: ref.ChannelID, typ: ref.Type, created: time.Now()}
	if ref.Message != nil {
		st.messageID = ref.Message.ID
	}
	switch {
	case ref.Member != nil && ref.Member.User != nil:
		st.userID = ref.Member.User.ID
	case ref.User != nil:
		st.userID = ref.User.ID
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.interactions[st.id] = st
	s.byToken[st.token] = st
	return st
}

// validResponseTypes are the interaction callback types Discord knows.
var validResponseTypes = map[discordgo.InteractionResponseType]bool{1: true, 4: true, 5: true, 6: true, 7: true, 8: true, 9: true}

// acknowledgeLocked checks and records a bot's first response to st.
func (s *Server) acknowledgeLocked(st *interactionState, raw []byte, viaHTTP bool) *apiError {
	if st.acked {
		return &apiError{http.StatusBadRequest, apiMessage{Message: "Interaction has already been acknowledged.", Code: 40060}}
	}
	var body struct {
		Type discordgo.InteractionResponseType `json:"type"`
		Data json.RawMessage                   `json:"data"`
	}
	if err := json.Unmarshal(raw, &body); err != nil {
		return errInvalidJSON()
	}
	if !validResponseTypes[body.Type] {
		fe := &formErrors{}
		fe.add([]string{"type"}, "BASE_TYPE_CHOICES", fmt.Sprintf("Value must be one of %v.", []int{1, 4, 5, 6, 7, 8, 9}))
		return fe.apiError()
	}
	var extra struct {
		Choices  []*discordgo.ApplicationCommandOptionChoice `json:"choices"`
		CustomID string                                      `json:"custom_id"`
		Title    string                                      `json:"title"`
	}
	if len(body.Data) > 0 {
		if err := json.Unmarshal(body.Data, &extra); err != nil {
			return errInvalidJSON()
		}
	}
	// Discord shows no modal over a modal: a submit takes 4, 5, 6, 7 or 10.
	if st.typ == discordgo.InteractionModalSubmit && body.Type == discordgo.InteractionResponseModal {
		fe := &formErrors{}
		fe.add([]string{"type"}, "BASE_TYPE_CHOICES", "Value must be one of {4, 5, 6, 7, 10}.")
		return fe.apiError()
	}
	// Only a message response (4) must carry something to show; 7 edits.
	f, e := parseMessage(body.Data, body.Type == discordgo.InteractionResponseChannelMessageWithSource)
	if e != nil {
		return e
	}
	var modal *shownModal
	if body.Type == discordgo.InteractionResponseModal {
		var inputs []*discordgo.TextInput
		if fe := checkModal(extra.CustomID, extra.Title, f.decoded, &inputs); fe != nil {
			return fe.apiError()
		}
		modal = &shownModal{customID: extra.CustomID, inputs: inputs, userID: st.userID, channelID: st.channelID, messageID: st.messageID}
	}
	// Updating "the message" needs one: a component's, or that of the
	// component a submitted modal was opened from. After a slash command
	// there is none, and Discord answers Unknown Message.
	if (body.Type == discordgo.InteractionResponseUpdateMessage || body.Type == discordgo.InteractionResponseDeferredMessageUpdate) &&
		st.messageID == "" {
		return errUnknownMessage()
	}
	if modal != nil {
		s.modals = append(s.modals, modal)
	}
	st.acked = true
	resp := InteractionResponse{InteractionID: st.id, Token: st.token, Type: body.Type, HTTP: viaHTTP,
		Choices: extra.Choices, CustomID: extra.CustomID, Title: extra.Title, Body: slices.Clone(raw)}
	if f.Content != nil {
		resp.Content = *f.Content
	}
	if f.Flags != nil {
		resp.Flags = *f.Flags
	}
	if f.Embeds != nil {
		resp.Embeds = *f.Embeds
	}
	resp.Components = f.decoded
	switch body.Type {
	case discordgo.InteractionResponseChannelMessageWithSource, discordgo.InteractionResponseDeferredChannelMessageWithSource:
		m := &Message{ChannelID: st.channelID, InteractionID: st.id, Kind: KindOriginal}
		f.apply(m)
		s.addMessageLocked(m)
		st.original = m
	case discordgo.InteractionResponseDeferredMessageUpdate, discordgo.InteractionResponseUpdateMessage:
		// For a component, @original is the message the component sits on.
		if m := s.findMessageLocked(st.messageID); m != nil {
			st.original = m
			if body.Type == discordgo.InteractionResponseUpdateMessage {
				f.apply(m)
				m.Edits++
			}
		}
	}
	s.responses = append(s.responses, resp)
	s.notifyLocked()
	return nil
}

func (s *Server) interactionCallback(w http.ResponseWriter, r *http.Request) {
	raw, err := requestJSON(r)
	if err != nil {
		errInvalidJSON().write(w)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.interactions[r.PathValue("interaction_id")]
	// Discord forgets an interaction nobody answered in time, which is why a
	// bot that does slow work first must defer (type 5) instead.
	if st == nil || st.token != r.PathValue("token") || (s.deadline > 0 && !st.acked && time.Since(st.created) > s.deadline) {
		errUnknownInteraction().write(w)
		return
	}
	if e := s.acknowledgeLocked(st, raw, false); e != nil {
		e.write(w)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// webhookLocked finds the interaction behind an interaction webhook. Discord
// opens the webhook only once the interaction has been answered.
func (s *Server) webhookLocked(r *http.Request) (*interactionState, *apiError) {
	st := s.byToken[r.PathValue("token")]
	if r.PathValue("app_id") != s.appID || st == nil || !st.acked {
		return nil, errUnknownWebhook()
	}
	return st, nil
}

func (s *Server) followup(w http.ResponseWriter, r *http.Request) {
	raw, err := requestJSON(r)
	if err != nil {
		errInvalidJSON().write(w)
		return
	}
	f, e := parseMessage(raw, true)
	if e != nil {
		e.write(w)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st, e := s.webhookLocked(r)
	if e != nil {
		e.write(w)
		return
	}
	m := &Message{ChannelID: st.channelID, InteractionID: st.id, Kind: KindFollowup}
	f.apply(m)
	s.addMessageLocked(m)
	if r.URL.Query().Get("wait") != "true" {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	writeJSON(w, http.StatusOK, s.messageJSONLocked(m))
}

func (s *Server) editWebhookMessage(w http.ResponseWriter, r *http.Request) {
	raw, err := requestJSON(r)
	if err != nil {
		errInvalidJSON().write(w)
		return
	}
	f, e := parseMessage(raw, false)
	if e != nil {
		e.write(w)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st, e := s.webhookLocked(r)
	if e != nil {
		e.write(w)
		return
	}
	var m *Message
	if id := r.PathValue("message_id"); id == "" || id == "@original" {
		m = st.original
	} else if fm := s.findMessageLocked(id); fm != nil && fm.InteractionID == st.id && fm.Kind == KindFollowup {
		m = fm
	}
	if m == nil {
		errUnknownMessage().write(w)
		return
	}
	f.apply(m)
	m.Edits++
	s.notifyLocked()
	writeJSON(w, http.StatusOK, s.messageJSONLocked(m))
}

// InteractionResponses returns every first response to an interaction, oldest
// first.
func (s *Server) InteractionResponses() []InteractionResponse {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.responses)
}

// WaitInteractionResponse waits for the bot's response to the interaction and
// fails the test if none comes in time. Call it from the test goroutine.
func (s *Server) WaitInteractionResponse(t testing.TB, interactionID string, timeout time.Duration) InteractionResponse {
	t.Helper()
	var got InteractionResponse
	ok := s.waitFor(timeout, func() bool {
		for _, r := range s.responses {
			if r.InteractionID == interactionID {
				got = r
				return true
			}
		}
		return false
	})
	if !ok {
		t.Fatalf("fakediscord: no response to interaction %s within %v", interactionID, timeout)
	}
	return got
}

// Messages returns the messages the bot created, in creation order, with
// edits applied.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Message, len(s.messages))
	for i, m := range s.messages {
		out[i] = *m
	}
	return out
}

// WaitMessage waits for a message that match accepts (evaluated with the
// fake's lock held: keep it quick) and fails the test if none comes in time.
// Call it from the test goroutine.
func (s *Server) WaitMessage(t testing.TB, timeout time.Duration, match func(Message) bool) Message {
	t.Helper()
	var got Message
	ok := s.waitFor(timeout, func() bool {
		for _, m := range s.messages {
			if match(*m) {
				got = *m
				return true
			}
		}
		return false
	})
	if !ok {
		t.Fatalf("fakediscord: no matching message within %v", timeout)
	}
	return got
}

// ---------------------------------------------------------------------------
// Command validation, with Discord's "Invalid Form Body" errors.

// formErrors collects field errors into Discord's nested error object.
type formErrors struct {
	root map[string]any
}

// add records an error at path, e.g. ["0", "options", "1", "description"].
func (f *formErrors) add(path []string, code, msg string) {
	if f.root == nil {
		f.root = map[string]any{}
	}
	node := f.root
	for _, p := range path {
		child, ok := node[p].(map[string]any)
		if !ok {
			child = map[string]any{}
			node[p] = child
		}
		node = child
	}
	errs, _ := node["_errors"].([]map[string]string)
	node["_errors"] = append(errs, map[string]string{"code": code, "message": msg})
}

// apiError is nil when nothing was added.
func (f *formErrors) apiError() *apiError {
	if f == nil || f.root == nil {
		return nil
	}
	return &apiError{http.StatusBadRequest, apiMessage{Message: "Invalid Form Body", Code: 50035, Errors: f.root}}
}

// supportedLocales are the locale codes Discord accepts in localizations. It
// is Discord's list, not discordgo's: discordgo v0.29 lacks "id".
var supportedLocales = map[discordgo.Locale]bool{
	"id": true, "da": true, "de": true, "en-GB": true, "en-US": true, "es-ES": true, "es-419": true,
	"fr": true, "hr": true, "it": true, "lt": true, "hu": true, "nl": true, "no": true, "pl": true,
	"pt-BR": true, "ro": true, "fi": true, "sv-SE": true, "vi": true, "tr": true, "cs": true, "el": true,
	"bg": true, "ru": true, "uk": true, "hi": true, "th": true, "zh-CN": true, "ja": true, "zh-TW": true,
	"ko": true,
}

// chatNameRE is Discord's rule for slash command and option names.
var chatNameRE = regexp.MustCompile(`^[-_\p{L}\p{N}\p{Devanagari}\p{Thai}]{1,32}$`)

func sub(path []string, more ...string) []string {
	return append(slices.Clone(path), more...)
}

func checkLength(fe *formErrors, path []string, v string, lo, hi int) {
	if n := utf8.RuneCountInString(v); n < lo || n > hi {
		fe.add(path, "BASE_TYPE_BAD_LENGTH", fmt.Sprintf("Must be between %d and %d in length.", lo, hi))
	}
}

func checkName(fe *formErrors, path []string, name string, chat bool) {
	if !chat {
		checkLength(fe, path, name, 1, 32)
		return
	}
	if !chatNameRE.MatchString(name) || name != strings.ToLower(name) {
		fe.add(path, "APPLICATION_COMMAND_INVALID_NAME", "Command name is invalid")
	}
}

func checkLocalizations(fe *formErrors, path []string, m map[discordgo.Locale]string, check func([]string, string)) {
	for loc, v := range m {
		p := sub(path, string(loc))
		if !supportedLocales[loc] {
			fe.add(p, "ENUM_TYPE_COERCE", fmt.Sprintf("Value %q is not a valid enum value.", string(loc)))
			continue
		}
		check(p, v)
	}
}

// validateCommands applies the checks Discord makes on a bulk overwrite.
func validateCommands(cmds []*discordgo.ApplicationCommand) *formErrors {
	fe := &formErrors{}
	seen := map[string]bool{}
	chatCount := 0
	for i, c := range cmds {
		p := []string{strconv.Itoa(i)}
		if c == nil {
			fe.add(p, "MODEL_TYPE_CONVERT", "Only dictionaries may be used in a ModelType")
			continue
		}
		chat := c.Type == 0 || c.Type == discordgo.ChatApplicationCommand
		if chat {
			chatCount++
		}
		checkName(fe, sub(p, "name"), c.Name, chat)
		if c.NameLocalizations != nil {
			checkLocalizations(fe, sub(p, "name_localizations"), *c.NameLocalizations,
				func(lp []string, v string) { checkName(fe, lp, v, chat) })
		}
		if chat {
			checkLength(fe, sub(p, "description"), c.Description, 1, 100)
			if c.DescriptionLocalizations != nil {
				checkLocalizations(fe, sub(p, "description_localizations"), *c.DescriptionLocalizations,
					func(lp []string, v string) { checkLength(fe, lp, v, 1, 100) })
			}
			checkOptions(fe, sub(p, "options"), c.Options)
		} else if c.Description != "" {
			fe.add(sub(p, "description"), "APPLICATION_COMMAND_CONTEXT_MENU_DESCRIPTION", "Context menu commands cannot have description")
		}
		key := fmt.Sprintf("%d\x00%s", max(c.Type, 1), c.Name)
		if seen[key] {
			fe.add(nil, "APPLICATION_COMMANDS_DUPLICATE_NAME", fmt.Sprintf("Application command names must be unique (%s)", c.Name))
		}
		seen[key] = true
	}
	if chatCount > 100 {
		fe.add(nil, "BASE_TYPE_MAX_LENGTH", "Must be 100 or fewer in length.")
	}
	return fe.orNil()
}

func (f *formErrors) orNil() *formErrors {
	if f.root == nil {
		return nil
	}
	return f
}

func checkOptions(fe *formErrors, path []string, opts []*discordgo.ApplicationCommandOption) {
	if len(opts) > 25 {
		fe.add(path, "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length.")
	}
	optionalSeen := false
	names := map[string]bool{}
	for j, o := range opts {
		p := sub(path, strconv.Itoa(j))
		if o == nil {
			fe.add(p, "MODEL_TYPE_CONVERT", "Only dictionaries may be used in a ModelType")
			continue
		}
		if o.Type < discordgo.ApplicationCommandOptionSubCommand || o.Type > discordgo.ApplicationCommandOptionAttachment {
			fe.add(sub(p, "type"), "BASE_TYPE_CHOICES", "Value must be one of (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11).")
		}
		checkName(fe, sub(p, "name"), o.Name, true)
		checkLocalizations(fe, sub(p, "name_localizations"), o.NameLocalizations,
			func(lp []string, v string) { checkName(fe, lp, v, true) })
		checkLength(fe, sub(p, "description"), o.Description, 1, 100)
		checkLocalizations(fe, sub(p, "description_localizations"), o.DescriptionLocalizations,
			func(lp []string, v string) { checkLength(fe, lp, v, 1, 100) })
		if names[o.Name] {
			fe.add(sub(p, "name"), "APPLICATION_COMMAND_OPTIONS_NAME_ALREADY_EXISTS", "Option names must be unique")
		}
		names[o.Name] = true
		nested := o.Type == discordgo.ApplicationCommandOptionSubCommand || o.Type == discordgo.ApplicationCommandOptionSubCommandGroup
		if nested {
			checkOptions(fe, sub(p, "options"), o.Options)
		} else {
			if o.Required && optionalSeen {
				fe.add(sub(p, "required"), "APPLICATION_COMMAND_OPTIONS_REQUIRED_INVALID", "Required options must be placed before non-required options")
			}
			if !o.Required {
				optionalSeen = true
			}
		}
		if len(o.Choices) > 25 {
			fe.add(sub(p, "choices"), "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length.")
		}
		for k, ch := range o.Choices {
			cp := sub(p, "choices", strconv.Itoa(k))
			checkLength(fe, sub(cp, "name"), ch.Name, 1, 100)
			checkLocalizations(fe, sub(cp, "name_localizations"), ch.NameLocalizations,
				func(lp []string, v string) { checkLength(fe, lp, v, 1, 100) })
		}
	}
}

// ---------------------------------------------------------------------------
// Gateway.

// gatewaySession is an identified gateway session, which outlives its
// connection so a client can RESUME it.
type gatewaySession struct {
	id    string
	seq   int64
	log   []sentEvent
	conn  *gatewayConn
	shard *[2]int
}

type sentEvent struct {
	seq   int64
	frame []byte
}

// gatewayConn is one websocket connection.
type gatewayConn struct {
	ws      *websocket.Conn
	wmu     sync.Mutex // gorilla allows one writer at a time
	session *gatewaySession
}

// gatewayFrame is the gateway's payload envelope.
type gatewayFrame struct {
	Op int     `json:"op"`
	D  any     `json:"d"`
	S  *int64  `json:"s"`
	T  *string `json:"t"`
}

func (c *gatewayConn) write(v gatewayFrame) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return c.writeRaw(b)
}

func (c *gatewayConn) writeRaw(b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.ws.SetWriteDeadline(time.Now().Add(writeTimeout))
	return c.ws.WriteMessage(websocket.TextMessage, b)
}

// closeWith ends the connection with a Discord close code (4004 bad token…).
func (c *gatewayConn) closeWith(code int, text string) {
	_ = c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, text), time.Now().Add(time.Second))
}

func (s *Server) serveGateway(w http.ResponseWriter, r *http.Request) {
	if enc := r.URL.Query().Get("encoding"); enc != "" && enc != "json" {
		http.Error(w, "the fake gateway speaks encoding=json only", http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		http.Error(w, "closed", http.StatusServiceUnavailable)
		return
	}
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()

	ws, err := s.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // Upgrade has answered the client
	}
	ws.SetReadLimit(1 << 20)
	c := &gatewayConn{ws: ws}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		_ = ws.Close()
		return
	}
	s.conns[c] = struct{}{}
	s.mu.Unlock()
	defer func() {
		_ = ws.Close()
		s.mu.Lock()
		delete(s.conns, c)
		if c.session != nil && c.session.conn == c {
			c.session.conn = nil
		}
		s.notifyLocked()
		s.mu.Unlock()
	}()
	s.runGateway(c)
}

// runGateway speaks the gateway protocol on one connection until it closes.
func (s *Server) runGateway(c *gatewayConn) {
	hello := map[string]int64{"heartbeat_interval": s.heartbeat.Milliseconds()}
	if c.write(gatewayFrame{Op: 10, D: hello}) != nil {
		return
	}
	for {
		_, data, err := c.ws.ReadMessage()
		if err != nil {
			return
		}
		var in struct {
			Op int             `json:"op"`
			D  json.RawMessage `json:"d"`
		}
		if err := json.Unmarshal(data, &in); err != nil {
			c.closeWith(4002, "Error while decoding payload.")
			return
		}
		s.mu.Lock()
		authed := c.session != nil
		s.mu.Unlock()
		switch in.Op {
		case 1: // heartbeat
			s.mu.Lock()
			s.heartbeats++
			s.notifyLocked()
			s.mu.Unlock()
			if c.write(gatewayFrame{Op: 11}) != nil {
				return
			}
		case 2: // identify
			if authed {
				c.closeWith(4005, "Already authenticated.")
				return
			}
			if !s.identify(c, in.D) {
				return
			}
		case 6: // resume
			if authed {
				c.closeWith(4005, "Already authenticated.")
				return
			}
			if !s.resume(c, in.D) {
				return
			}
		case 3, 4, 8: // presence, voice state, request members: accepted, ignored
			if !authed {
				c.closeWith(4003, "Not authenticated.")
				return
			}
		default:
			c.closeWith(4001, "Unknown opcode.")
			return
		}
	}
}

func (s *Server) validGatewayToken(tok string) bool {
	return strings.TrimPrefix(tok, "Bot ") == s.token
}

// identify answers IDENTIFY with READY; false means the connection is done.
func (s *Server) identify(c *gatewayConn, raw json.RawMessage) bool {
	// Only what the fake checks: discordgo's IDENTIFY carries a zero-valued
	// presence.game whose created_at its own Identify type cannot decode.
	var id struct {
		Token   string           `json:"token"`
		Shard   *[2]int          `json:"shard"`
		Intents discordgo.Intent `json:"intents"`
	}
	if err := json.Unmarshal(raw, &id); err != nil {
		c.closeWith(4002, "Error while decoding payload.")
		return false
	}
	if !s.validGatewayToken(id.Token) {
		c.closeWith(4004, "Authentication failed.")
		return false
	}
	if id.Shard != nil && (id.Shard[1] < 1 || id.Shard[0] < 0 || id.Shard[0] >= id.Shard[1]) {
		c.closeWith(4010, "Invalid shard.")
		return false
	}
	version, _ := strconv.Atoi(discordgo.APIVersion)
	sess := &gatewaySession{id: newSessionID(), seq: 1, shard: id.Shard}
	ready := map[string]any{
		"v": version, "user": s.bot, "guilds": []any{}, "private_channels": []any{},
		"session_id": sess.id, "resume_gateway_url": s.GatewayURL(),
		"application": map[string]any{"id": s.appID, "flags": 0},
	}
	if id.Shard != nil {
		ready["shard"] = id.Shard
	}
	t := "READY"
	s.dispatchMu.Lock()
	defer s.dispatchMu.Unlock()
	if c.write(gatewayFrame{Op: 0, D: ready, S: &sess.seq, T: &t}) != nil {
		return false
	}
	s.mu.Lock()
	s.sessions[sess.id] = sess
	sess.conn = c
	c.session = sess
	s.identified++
	s.notifyLocked()
	s.mu.Unlock()
	return true
}

// resume reattaches a session, replays what the client missed and sends
// RESUMED, as Discord does; an unknown session gets INVALID_SESSION (op 9),
// on which discordgo identifies afresh.
func (s *Server) resume(c *gatewayConn, raw json.RawMessage) bool {
	var req struct {
		Token     string `json:"token"`
		SessionID string `json:"session_id"`
		Seq       int64  `json:"seq"`
	}
	if err := json.Unmarshal(raw, &req); err != nil {
		c.closeWith(4002, "Error while decoding payload.")
		return false
	}
	if !s.validGatewayToken(req.Token) {
		c.closeWith(4004, "Authentication failed.")
		return false
	}
	s.dispatchMu.Lock()
	defer s.dispatchMu.Unlock()
	s.mu.Lock()
	sess := s.sessions[req.SessionID]
	if sess == nil {
		s.mu.Unlock()
		return c.write(gatewayFrame{Op: 9, D: false}) == nil
	}
	if old := sess.conn; old != nil && old != c {
		_ = old.ws.Close() // a session lives on one connection
	}
	var missed [][]byte
	for _, e := range sess.log {
		if e.seq > req.Seq {
			missed = append(missed, e.frame)
		}
	}
	sess.seq++
	seq := sess.seq
	s.mu.Unlock()
	for _, f := range missed {
		if c.writeRaw(f) != nil {
			return false
		}
	}
	t := "RESUMED"
	if c.write(gatewayFrame{Op: 0, D: map[string]any{}, S: &seq, T: &t}) != nil {
		return false
	}
	s.mu.Lock()
	sess.conn = c
	c.session = sess
	s.resumed++
	s.notifyLocked()
	s.mu.Unlock()
	return true
}

// Dispatch sends a gateway event (op 0) with the next sequence number to
// every ready session and returns how many it reached. An INTERACTION_CREATE
// is registered first, so the bot's callback for it is accepted.
func (s *Server) Dispatch(event string, data json.RawMessage) int {
	if event == "INTERACTION_CREATE" {
		s.register(data)
	}
	s.dispatchMu.Lock()
	defer s.dispatchMu.Unlock()
	type target struct {
		c     *gatewayConn
		frame []byte
	}
	var targets []target
	s.mu.Lock()
	for c := range s.conns {
		sess := c.session
		if sess == nil || sess.conn != c {
			continue
		}
		sess.seq++
		seq, t := sess.seq, event
		b, err := json.Marshal(gatewayFrame{Op: 0, D: data, S: &seq, T: &t})
		if err != nil {
			s.mu.Unlock()
			s.t.Errorf("fakediscord: dispatch %s: %v", event, err)
			return 0
		}
		sess.log = append(sess.log, sentEvent{seq: seq, frame: b})
		if len(sess.log) > replayLimit {
			sess.log = sess.log[len(sess.log)-replayLimit:]
		}
		targets = append(targets, target{c, b})
	}
	s.mu.Unlock()
	n := 0
	for _, tg := range targets {
		if tg.c.writeRaw(tg.frame) == nil {
			n++
		}
	}
	return n
}

// DispatchInteraction sends the interaction as INTERACTION_CREATE to the
// connected sessions. It fails the test when no session is ready, since the
// bot would never see it.
func (s *Server) DispatchInteraction(i discordgo.Interaction) {
	s.t.Helper()
	b, err := encodeInteraction(i)
	if err != nil {
		s.t.Errorf("fakediscord: marshal interaction: %v", err)
		return
	}
	if s.Dispatch("INTERACTION_CREATE", b) == 0 {
		s.t.Errorf("fakediscord: no ready gateway session to dispatch interaction %s to", i.ID)
	}
}

// DropConnections cuts every gateway connection without a close frame, as a
// network failure does. Sessions stay resumable, so discordgo reconnects and
// RESUMEs (after its own one-second pause in Close).
func (s *Server) DropConnections() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		_ = c.ws.Close()
	}
}

// WaitReady waits until a gateway connection has been identified or resumed
// and fails the test otherwise. Call it from the test goroutine.
func (s *Server) WaitReady(t testing.TB, timeout time.Duration) {
	t.Helper()
	ok := s.waitFor(timeout, func() bool {
		for c := range s.conns {
			if c.session != nil && c.session.conn == c {
				return true
			}
		}
		return false
	})
	if !ok {
		t.Fatalf("fakediscord: no gateway session ready within %v", timeout)
	}
}

// WaitResumed waits until n RESUMEs have succeeded and fails the test
// otherwise. Call it from the test goroutine.
func (s *Server) WaitResumed(t testing.TB, n int, timeout time.Duration) {
	t.Helper()
	if !s.waitFor(timeout, func() bool { return s.resumed >= n }) {
		t.Fatalf("fakediscord: %d resumes wanted within %v, got %d", n, timeout, s.Resumed())
	}
}

// Identified is how many IDENTIFYs were answered with READY.
func (s *Server) Identified() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.identified
}

// Resumed is how many RESUMEs were answered with RESUMED.
func (s *Server) Resumed() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.resumed
}

// Heartbeats is how many heartbeats (op 1) the fake has acknowledged.
func (s *Server) Heartbeats() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.heartbeats
}

// ---------------------------------------------------------------------------
// Building interactions.

// Invoker is who uses a command or clicks a button, and where. Zero fields get
// defaults: a fresh user, en-US, and the user's DM channel or the guild's
// channel.
type Invoker struct {
	UserID     string
	Username   string
	GlobalName string
	// GuildID places the interaction in a guild, where Discord sends a member
	// (user, roles, permissions); empty means a DM with the bot, where it
	// sends a user.
	GuildID     string
	ChannelID   string
	Roles       []string
	Permissions int64 // the member's permissions in the channel
	Locale      discordgo.Locale
	GuildLocale discordgo.Locale
}

// newInteraction fills what every interaction carries.
func (s *Server) newInteraction(by Invoker, typ discordgo.InteractionType) discordgo.Interaction {
	if by.UserID == "" {
		by.UserID = s.newID()
	}
	if by.Username == "" {
		by.Username = defaultUsername(by.UserID)
	}
	if by.Locale == "" {
		by.Locale = discordgo.EnglishUS
	}
	user := &discordgo.User{ID: by.UserID, Username: by.Username, GlobalName: by.GlobalName, Discriminator: "0"}
	s.mu.Lock()
	s.users[user.ID] = *user
	if by.ChannelID == "" {
		if by.GuildID == "" {
			by.ChannelID = s.dmChannelLocked(by.UserID)
		} else {
			ch, ok := s.guildChannels[by.GuildID]
			if !ok {
				ch = s.newID()
				s.guildChannels[by.GuildID] = ch
			}
			by.ChannelID = ch
		}
	}
	s.mu.Unlock()
	i := discordgo.Interaction{
		ID: s.newID(), AppID: s.appID, Type: typ, ChannelID: by.ChannelID, Locale: by.Locale,
		Token: "aW50ZXJhY3Rpb24." + rand.Text() + rand.Text(), Version: 1,
		AppPermissions: discordgo.PermissionViewChannel | discordgo.PermissionSendMessages | discordgo.PermissionEmbedLinks,
	}
	if by.GuildID != "" {
		roles := by.Roles
		if roles == nil {
			roles = []string{}
		}
		gl := by.GuildLocale
		if gl == "" {
			gl = discordgo.EnglishUS
		}
		i.GuildID = by.GuildID
		i.GuildLocale = &gl
		i.Member = &discordgo.Member{User: user, Roles: roles, Permissions: by.Permissions, JoinedAt: time.Now().Add(-24 * time.Hour).UTC()}
		i.Context = discordgo.InteractionContextGuild
		i.AuthorizingIntegrationOwners = map[discordgo.ApplicationIntegrationType]string{discordgo.ApplicationIntegrationGuildInstall: by.GuildID}
	} else {
		i.User = user
		i.Context = discordgo.InteractionContextBotDM
		i.AuthorizingIntegrationOwners = map[discordgo.ApplicationIntegrationType]string{discordgo.ApplicationIntegrationGuildInstall: "0"}
	}
	return i
}

// SlashCommand builds the interaction Discord sends when by runs /name with
// the given options. Users named in user options are put in data.resolved,
// as Discord does. Send it with DispatchInteraction or PostInteraction.
func (s *Server) SlashCommand(by Invoker, name string, opts ...*discordgo.ApplicationCommandInteractionDataOption) discordgo.Interaction {
	i := s.newInteraction(by, discordgo.InteractionApplicationCommand)
	s.mu.Lock()
	data := discordgo.ApplicationCommandInteractionData{ID: s.commandIDLocked(i.GuildID, name), Name: name,
		CommandType: discordgo.ChatApplicationCommand, Options: opts}
	var users []string
	collectUsers(opts, &users)
	if len(users) > 0 {
		data.Resolved = &discordgo.ApplicationCommandInteractionDataResolved{Users: map[string]*discordgo.User{}}
		if i.GuildID != "" {
			data.Resolved.Members = map[string]*discordgo.Member{}
		}
		for _, id := range users {
			u, ok := s.users[id]
			if !ok {
				u = discordgo.User{ID: id, Username: defaultUsername(id), Discriminator: "0"}
			}
			data.Resolved.Users[id] = &u
			if i.GuildID != "" {
				// Resolved members are partial: no user, deaf or mute.
				data.Resolved.Members[id] = &discordgo.Member{Roles: []string{}, JoinedAt: time.Now().Add(-24 * time.Hour).UTC()}
			}
		}
	}
	s.mu.Unlock()
	i.Data = data
	return i
}

func collectUsers(opts []*discordgo.ApplicationCommandInteractionDataOption, into *[]string) {
	for _, o := range opts {
		if o.Type == discordgo.ApplicationCommandOptionUser {
			if id, ok := o.Value.(string); ok {
				*into = append(*into, id)
			}
		}
		collectUsers(o.Options, into)
	}
}

// ButtonClick builds the interaction Discord sends when by clicks the button
// with customID. It points at the latest bot message carrying that button
// (preferring by's channel), so an UPDATE_MESSAGE (type 7) response edits it;
// without one it invents a message.
func (s *Server) ButtonClick(by Invoker, customID string) discordgo.Interaction {
	i := s.newInteraction(by, discordgo.InteractionMessageComponent)
	i.Data = discordgo.MessageComponentInteractionData{CustomID: customID, ComponentType: discordgo.ButtonComponent}
	s.mu.Lock()
	var found *Message
	for _, m := range slices.Backward(s.messages) {
		if hasButton(m.Components, customID) && (found == nil || m.ChannelID == i.ChannelID) {
			found = m
			if m.ChannelID == i.ChannelID {
				break
			}
		}
	}
	bot := s.bot
	if found != nil {
		i.ChannelID = found.ChannelID
		i.Message = &discordgo.Message{ID: found.ID, ChannelID: found.ChannelID, Content: found.Content, Author: &bot,
			Components: found.Components, Embeds: found.Embeds, Flags: found.Flags, Timestamp: found.Created}
	} else {
		i.Message = &discordgo.Message{ID: s.newID(), ChannelID: i.ChannelID, Author: &bot, Timestamp: time.Now(),
			Components: []discordgo.MessageComponent{discordgo.ActionsRow{Components: []discordgo.MessageComponent{
				discordgo.Button{CustomID: customID, Label: customID, Style: discordgo.PrimaryButton}}}}}
	}
	s.mu.Unlock()
	return i
}

func hasButton(cs []discordgo.MessageComponent, customID string) bool {
	for _, c := range cs {
		switch c := c.(type) {
		case *discordgo.ActionsRow:
			if hasButton(c.Components, customID) {
				return true
			}
		case discordgo.ActionsRow:
			if hasButton(c.Components, customID) {
				return true
			}
		case *discordgo.Button:
			if c.CustomID == customID {
				return true
			}
		case discordgo.Button:
			if c.CustomID == customID {
				return true
			}
		}
	}
	return false
}

// checkModal applies Discord's rules for a modal (response type 9): a
// custom_id of 1 to 100 and a title of 1 to 45 characters, one to five action
// rows each holding one text input, whose label has 1 to 45 characters, style
// is short (1) or paragraph (2) and lengths lie within 0 to 4000. The inputs
// are returned through inputs.
func checkModal(customID, title string, rows []discordgo.MessageComponent, inputs *[]*discordgo.TextInput) *formErrors {
	fe := &formErrors{}
	checkLength(fe, []string{"data", "custom_id"}, customID, 1, 100)
	checkLength(fe, []string{"data", "title"}, title, 1, 45)
	if len(rows) < 1 || len(rows) > 5 {
		fe.add([]string{"data", "components"}, "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 5 in length.")
	}
	for i, c := range rows {
		p := []string{"data", "components", strconv.Itoa(i)}
		row, ok := c.(*discordgo.ActionsRow)
		if !ok {
			fe.add(p, "UNION_TYPE_CHOICES", "Value of field \"type\" must be one of (1,).")
			continue
		}
		if len(row.Components) != 1 {
			fe.add(sub(p, "components"), "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 1 in length.")
		}
		for j, cc := range row.Components {
			ip := sub(p, "components", strconv.Itoa(j))
			in, ok := cc.(*discordgo.TextInput)
			if !ok {
				fe.add(ip, "UNION_TYPE_CHOICES", "Value of field \"type\" must be one of (4,).")
				continue
			}
			checkLength(fe, sub(ip, "custom_id"), in.CustomID, 1, 100)
			checkLength(fe, sub(ip, "label"), in.Label, 1, 45)
			if in.Style != discordgo.TextInputShort && in.Style != discordgo.TextInputParagraph {
				fe.add(sub(ip, "style"), "BASE_TYPE_CHOICES", "Value must be one of {1, 2}.")
			}
			if in.MinLength < 0 || in.MinLength > 4000 {
				fe.add(sub(ip, "min_length"), "NUMBER_TYPE_MAX", "int value should be less than or equal to 4000.")
			}
			if in.MaxLength < 0 || in.MaxLength > 4000 {
				fe.add(sub(ip, "max_length"), "NUMBER_TYPE_MAX", "int value should be less than or equal to 4000.")
			}
			checkLength(fe, sub(ip, "placeholder"), in.Placeholder, 0, 100)
			*inputs = append(*inputs, in)
		}
	}
	return fe.orNil()
}

// ModalSubmit builds the interaction Discord sends when by submits the modal
// with customID that the bot showed them last (interaction response type 9),
// its text inputs filled from values by input custom_id (inputs left out
// stay empty). As in the Discord client, only the user a modal was shown to
// submits it, once, with every required input filled and no value longer
// than its input allows: anything else fails the test, returns a zero
// Interaction and leaves the modal open. A modal opened by a button carries
// that button's message, so an UPDATE_MESSAGE (type 7) response edits it.
func (s *Server) ModalSubmit(by Invoker, customID string, values map[string]string) discordgo.Interaction {
	s.t.Helper()
	s.mu.Lock()
	var m *shownModal
	for _, sm := range slices.Backward(s.modals) {
		if sm.customID == customID && (by.UserID == "" || sm.userID == by.UserID) {
			m = sm
			break
		}
	}
	s.mu.Unlock()
	if m == nil {
		s.t.Errorf("fakediscord: ModalSubmit: no modal %q was shown to user %q", customID, by.UserID)
		return discordgo.Interaction{}
	}
	var rows []discordgo.MessageComponent
	var misuse []string
	for _, in := range m.inputs {
		v := values[in.CustomID]
		switch n := utf8.RuneCountInString(v); {
		case in.Required && n == 0:
			misuse = append(misuse, fmt.Sprintf("input %q is required", in.CustomID))
		case in.MaxLength > 0 && n > in.MaxLength:
			misuse = append(misuse, fmt.Sprintf("input %q takes %d characters, got %d", in.CustomID, in.MaxLength, n))
		case n > 0 && n < in.MinLength:
			misuse = append(misuse, fmt.Sprintf("input %q needs %d characters, got %d", in.CustomID, in.MinLength, n))
		}
		rows = append(rows, &discordgo.ActionsRow{Components: []discordgo.MessageComponent{
			&discordgo.TextInput{CustomID: in.CustomID, Value: v}}})
	}
	for k := range values {
		if !slices.ContainsFunc(m.inputs, func(in *discordgo.TextInput) bool { return in.CustomID == k }) {
			misuse = append(misuse, fmt.Sprintf("there is no input %q", k))
		}
	}
	if len(misuse) > 0 {
		slices.Sort(misuse)
		s.t.Errorf("fakediscord: ModalSubmit: modal %q: %s", customID, strings.Join(misuse, "; "))
		return discordgo.Interaction{}
	}
	s.mu.Lock()
	if at := slices.Index(s.modals, m); at >= 0 {
		s.modals = slices.Delete(s.modals, at, at+1)
	}
	s.mu.Unlock()
	by.UserID = m.userID
	if by.ChannelID == "" {
		by.ChannelID = m.channelID
	}
	i := s.newInteraction(by, discordgo.InteractionModalSubmit)
	i.Data = discordgo.ModalSubmitInteractionData{CustomID: customID, Components: rows}
	if m.messageID != "" {
		s.mu.Lock()
		bot := s.bot
		msg := &discordgo.Message{ID: m.messageID, ChannelID: m.channelID, Author: &bot, Timestamp: time.Now()}
		if found := s.findMessageLocked(m.messageID); found != nil {
			msg = &discordgo.Message{ID: found.ID, ChannelID: found.ChannelID, Content: found.Content, Author: &bot,
				Components: found.Components, Embeds: found.Embeds, Flags: found.Flags, Timestamp: found.Created}
		}
		s.mu.Unlock()
		i.Message = msg
	}
	return i
}

// modalSubmitWire is a modal submit's data as Discord sends it: discordgo
// reads components but leaves them out when it writes the data (json:"-").
type modalSubmitWire struct {
	CustomID   string         `json:"custom_id"`
	Components []modalRowWire `json:"components"`
}

func (modalSubmitWire) Type() discordgo.InteractionType { return discordgo.InteractionModalSubmit }

type modalRowWire struct {
	Type       discordgo.ComponentType `json:"type"`
	Components []modalInputWire        `json:"components"`
}

type modalInputWire struct {
	Type     discordgo.ComponentType `json:"type"`
	CustomID string                  `json:"custom_id"`
	Value    string                  `json:"value"`
}

// encodeInteraction writes an interaction as Discord sends it.
func encodeInteraction(i discordgo.Interaction) ([]byte, error) {
	if d, ok := i.Data.(discordgo.ModalSubmitInteractionData); ok {
		w := modalSubmitWire{CustomID: d.CustomID, Components: []modalRowWire{}}
		for _, c := range d.Components {
			row := modalRowWire{Type: discordgo.ActionsRowComponent}
			var cs []discordgo.MessageComponent
			switch r := c.(type) {
			case *discordgo.ActionsRow:
				cs = r.Components
			case discordgo.ActionsRow:
				cs = r.Components
			}
			for _, cc := range cs {
				switch in := cc.(type) {
				case *discordgo.TextInput:
					row.Components = append(row.Components, modalInputWire{Type: discordgo.TextInputComponent, CustomID: in.CustomID, Value: in.Value})
				case discordgo.TextInput:
					row.Components = append(row.Components, modalInputWire{Type: discordgo.TextInputComponent, CustomID: in.CustomID, Value: in.Value})
				}
			}
			w.Components = append(w.Components, row)
		}
		i.Data = w
	}
	return json.Marshal(i)
}

// StringOption is a string option value of a slash command.
func StringOption(name, value string) *discordgo.ApplicationCommandInteractionDataOption {
	return &discordgo.ApplicationCommandInteractionDataOption{Name: name, Type: discordgo.ApplicationCommandOptionString, Value: value}
}

// IntegerOption is an integer option value. It is held as a float64, the way
// it arrives from JSON, so IntValue works on a built interaction too.
func IntegerOption(name string, value int64) *discordgo.ApplicationCommandInteractionDataOption {
	return &discordgo.ApplicationCommandInteractionDataOption{Name: name, Type: discordgo.ApplicationCommandOptionInteger, Value: float64(value)}
}

// BooleanOption is a boolean option value.
func BooleanOption(name string, value bool) *discordgo.ApplicationCommandInteractionDataOption {
	return &discordgo.ApplicationCommandInteractionDataOption{Name: name, Type: discordgo.ApplicationCommandOptionBoolean, Value: value}
}

// UserOption is a user option value: the user's ID, resolved by SlashCommand.
func UserOption(name, userID string) *discordgo.ApplicationCommandInteractionDataOption {
	return &discordgo.ApplicationCommandInteractionDataOption{Name: name, Type: discordgo.ApplicationCommandOptionUser, Value: userID}
}

// Subcommand wraps options in a subcommand, as /name sub … arrives.
func Subcommand(name string, opts ...*discordgo.ApplicationCommandInteractionDataOption) *discordgo.ApplicationCommandInteractionDataOption {
	return &discordgo.ApplicationCommandInteractionDataOption{Name: name, Type: discordgo.ApplicationCommandOptionSubCommand, Options: opts}
}

// ---------------------------------------------------------------------------
// HTTP interactions.

// SignFunc signs an interaction body as Discord does: Ed25519 over timestamp
// followed by body, hex-encoded, for the X-Signature-Ed25519 header.
type SignFunc func(body []byte, timestamp string) string

// NewSigner makes an application key pair: the public key in hex, as the bot
// reads it from its configuration, and the function that signs with it.
func NewSigner() (publicKey string, sign SignFunc) {
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		panic(err) // crypto/rand does not fail
	}
	return hex.EncodeToString(pub), func(body []byte, timestamp string) string {
		return hex.EncodeToString(ed25519.Sign(priv, append([]byte(timestamp), body...)))
	}
}

// ForgedSigner signs with a key of its own: well-formed signatures that a bot
// verifying against NewSigner's public key must reject.
func ForgedSigner() SignFunc {
	_, sign := NewSigner()
	return sign
}

// PostSigned POSTs body to a bot's interactions endpoint with Discord's
// headers. A nil sign sends no signature headers at all. The response body is
// read in full, so the caller need not close it.
func PostSigned(t testing.TB, url string, sign SignFunc, body []byte) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatalf("fakediscord: %v", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Discord-Interactions/1.0 (+https://discord.com)")
	if sign != nil {
		ts := strconv.FormatInt(time.Now().Unix(), 10)
		req.Header.Set("X-Signature-Ed25519", sign(body, ts))
		req.Header.Set("X-Signature-Timestamp", ts)
	}
	client := &http.Client{Timeout: 30 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("fakediscord: post interaction to %s: %v", url, err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("fakediscord: read interaction reply: %v", err)
	}
	resp.Body = io.NopCloser(bytes.NewReader(b))
	return resp
}

// PostInteraction sends the interaction to a bot's HTTP interactions endpoint,
// signed as Discord signs it, and records a 200 reply as the interaction's
// response, so followups and @original edits work as after a gateway
// interaction. It reports an error if the reply took longer than Discord waits.
func (s *Server) PostInteraction(t testing.TB, url string, sign SignFunc, i discordgo.Interaction) *http.Response {
	t.Helper()
	body, err := encodeInteraction(i)
	if err != nil {
		t.Fatalf("fakediscord: marshal interaction: %v", err)
	}
	st := s.register(body)
	start := time.Now()
	resp := PostSigned(t, url, sign, body)
	if took := time.Since(start); s.deadline > 0 && took > s.deadline {
		t.Errorf("fakediscord: bot answered interaction %s after %v; Discord gives up after %v", i.ID, took, s.deadline)
	}
	if resp.StatusCode == http.StatusOK && st != nil {
		reply, _ := io.ReadAll(resp.Body)
		resp.Body = io.NopCloser(bytes.NewReader(reply))
		s.mu.Lock()
		e := s.acknowledgeLocked(st, reply, true)
		s.mu.Unlock()
		if e != nil {
			t.Errorf("fakediscord: Discord would reject the reply to interaction %s: %d %s", i.ID, e.status, e.body.Message)
		}
	}
	return resp
}

// newSessionID returns 32 hex digits, the shape of Discord's session IDs.
func newSessionID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
