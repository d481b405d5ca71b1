// Package api serves Tally over HTTP: health and readiness probes, Prometheus
// metrics, and the admin API under /v1/ (bearer token, JSON, errors as
// {"error": {"code", "message"}} with the statuses DESIGN.md lists).
package api

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/tally-loyalty/tally"
	"github.com/tally-loyalty/tally/ledger"
	"github.com/tally-loyalty/tally/tasks"
)

// Ledger is what the admin API needs of the ledger.
type Ledger interface {
	Award(ctx context.Context, a ledger.Award) (ledger.Result, error)
	AwardBatch(ctx context.Context, awards []ledger.Award) ([]ledger.BatchResult, error)
	Deduct(ctx context.Context, d ledger.Deduction) (ledger.Result, error)
	Member(ctx context.Context, ref ledger.MemberRef) (ledger.Member, ledger.Balance, error)
	History(ctx context.Context, ref ledger.MemberRef, before int64, limit int) ([]ledger.Entry, bool, error)
	Describe(ctx context.Context, ids []int64) (map[int64]ledger.Member, error)
	Resolve(ctx context.Context, ref ledger.MemberRef) (int64, error)
	Liability(ctx context.Context, loc *time.Location, from, to string) (ledger.Liability, error)
}

// Check is a named readiness check (Postgres, Redis).
type Check struct {
	Name string
	Ping func(ctx context.Context) error
}

// Server holds what the handlers need.
type Server struct {
	ledger  Ledger
	token   [32]byte // sha256 of the admin token; compared in constant time
	admin   bool
	checks  []Check
	log     *slog.Logger
	metrics http.Handler
	wrap    func(http.Handler) http.Handler
	mounts  []mount
	audit   AuditLog
	seasons SeasonService
	loc     *time.Location // the programme's timezone, for reports; UTC when nil
}

type mount struct {
	pattern string
	h       http.Handler
	admin   bool
}

// Option configures a Server.
type Option func(*Server)

// WithAdminToken turns the admin API on, guarded by token. Without it every
// /v1/ call answers not_found.
func WithAdminToken(token string) Option {
	return func(s *Server) {
		if token != "" {
			s.token, s.admin = sha256.Sum256([]byte(token)), true
		}
	}
}

// WithReadiness adds checks /readyz runs.
func WithReadiness(checks ...Check) Option {
	return func(s *Server) { s.checks = append(s.checks, checks...) }
}

// WithMetrics serves h at /metrics and wraps every request in mw.
func WithMetrics(h http.Handler, mw func(http.Handler) http.Handler) Option {
	return func(s *Server) { s.metrics, s.wrap = h, mw }
}

// WithLogger sets the logger (slog.Default otherwise).
func WithLogger(l *slog.Logger) Option { return func(s *Server) { s.log = l } }

// WithHandler mounts h at pattern (a ServeMux pattern); admin handlers sit
// behind the admin token. Later parts of Tally (chat webhooks, the queue UI)
// mount themselves this way.
func WithHandler(pattern string, h http.Handler, admin bool) Option {
	return func(s *Server) { s.mounts = append(s.mounts, mount{pattern, h, admin}) }
}

// New returns a server over l.
func New(l Ledger, opts ...Option) *Server {
	s := &Server{ledger: l, log: slog.Default(), wrap: func(h http.Handler) http.Handler { return h }}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Handler returns the HTTP handler serving every route.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", s.ready)
	if s.metrics != nil {
		mux.Handle("GET /metrics", s.metrics)
	}
	mux.Handle("POST /v1/awards", s.guard(s.award))
	mux.Handle("POST /v1/awards/batch", s.guard(s.awardBatch))
	mux.Handle("POST /v1/deductions", s.guard(s.deduct))
	mux.Handle("GET /v1/members/{member}", s.guard(s.member))
	mux.Handle("GET /v1/members/{member}/history", s.guard(s.history))
	mux.Handle("GET /v1/audit", s.guard(s.auditLog))
	mux.Handle("GET /v1/leaderboard", s.guard(s.leaderboard))
	mux.Handle("GET /v1/seasons", s.guard(s.seasonList))
	mux.Handle("GET /v1/seasons/current", s.guard(s.currentSeason))
	mux.Handle("POST /v1/seasons/{id}/close", s.guard(s.closeSeason))
	mux.Handle("GET /v1/reports/liability", s.guard(s.liability))
	mux.Handle("/v1/", s.guard(func(w http.ResponseWriter, r *http.Request) error {
		return tally.Errorf(tally.ENOTFOUND, "no admin API call %s %s", r.Method, r.URL.Path)
	}))
	for _, m := range s.mounts {
		h := m.h
		if m.admin {
			h = s.guardWith(func(w http.ResponseWriter, r *http.Request) error { m.h.ServeHTTP(w, r); return nil }, true)
		}
		mux.Handle(m.pattern, h)
	}
	return s.wrap(mux)
}

// ready answers 200 when every check passes, else 503 naming the failures.
func (s *Server) ready(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	status := map[string]string{}
	code := http.StatusOK
	for _, c := range s.checks {
		if err := c.Ping(ctx); err != nil {
			s.log.Warn("readiness check failed", "check", c.Name, "err", err)
			status[c.Name] = "unreachable"
			code = http.StatusServiceUnavailable
		} else {
			status[c.Name] = "ok"
		}
	}
	writeJSON(w, code, status)
}

// handlerFunc is an admin handler: it writes a success itself and returns
// errors for guard to render.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// guard checks the admin token and renders a returned error.
func (s *Server) guard(h handlerFunc) http.Handler { return s.guardWith(h, false) }

// guardWith checks the admin token. Pages for browsers (the queue UI) also
// take it as a Basic password, which a browser then sends by itself: there,
// only same-origin requests may change anything.
func (s *Server) guardWith(h handlerFunc, browser bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.admin {
			s.writeError(w, r, tally.Errorf(tally.ENOTFOUND, "the admin API is disabled: set TALLY_ADMIN_TOKEN to enable it"))
			return
		}
		if !s.authorized(r, browser) {
			w.Header().Add("WWW-Authenticate", `Bearer realm="tally"`)
			if browser {
				w.Header().Add("WWW-Authenticate", `Basic realm="tally"`)
			}
			s.writeError(w, r, tally.Errorf(tally.EUNAUTHORIZED, "send the admin token as Authorization: Bearer <TALLY_ADMIN_TOKEN>"))
			return
		}
		if browser && r.Method != http.MethodGet && r.Method != http.MethodHead && !sameOrigin(r) {
			s.writeError(w, r, tally.Errorf(tally.EFORBIDDEN, "cross-site request refused"))
			return
		}
		if err := h(w, r); err != nil {
			s.writeError(w, r, err)
		}
	})
}

// authorized accepts the admin token as a bearer token or, on browser pages,
// as the password of HTTP Basic authentication (any user name).
func (s *Server) authorized(r *http.Request, browser bool) bool {
	h := r.Header.Get("Authorization")
	scheme, token, ok := strings.Cut(h, " ")
	if !ok {
		return false
	}
	if _, password, basic := r.BasicAuth(); basic && browser {
		token = password
	} else if !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	// Hashing first makes the comparison constant-time in the token's length too.
	got := sha256.Sum256([]byte(strings.TrimSpace(token)))
	return subtle.ConstantTimeCompare(got[:], s.token[:]) == 1
}

// sameOrigin reports whether a browser request comes from a page of this
// server (Sec-Fetch-Site, else Origin; requests from tools send neither).
func sameOrigin(r *http.Request) bool {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" {
		return site == "same-origin" || site == "none"
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	return err == nil && u.Host == r.Host
}

// statusOf maps an error code to its HTTP status (DESIGN.md, Admin API).
func statusOf(code string) int {
	switch code {
	case tally.EINVALID:
		return http.StatusBadRequest
	case tally.EUNAUTHORIZED:
		return http.StatusUnauthorized
	case tally.EFORBIDDEN:
		return http.StatusForbidden
	case tally.ENOTFOUND:
		return http.StatusNotFound
	case tally.ECONFLICT:
		return http.StatusConflict
	case tally.EINSUFFICIENT:
		return http.StatusUnprocessableEntity
	}
	return http.StatusInternalServerError
}

type errorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func errorOf(err error) errorBody {
	return errorBody{Code: tally.ErrorCode(err), Message: tally.ErrorMessage(err)}
}

func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	code := tally.ErrorCode(err)
	if code == tally.EINTERNAL {
		s.log.Error("admin API call failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	writeJSON(w, statusOf(code), map[string]errorBody{"error": errorOf(err)})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.Encode(v)
}

// readBody reads at most maxBody bytes; a longer body is invalid. The body
// must be JSON whatever Content-Type says (curl -d sends a form type).
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return nil, tally.Errorf(tally.EINVALID, "request body exceeds %d bytes", maxBody)
	}
	if err != nil {
		return nil, tally.Errorf(tally.EINVALID, "could not read the request body")
	}
	return data, nil
}

// memberJSON names a member in responses: {id, identities, name}.
type memberJSON struct {
	ID         int64    `json:"id"`
	Identities []string `json:"identities"`
	Name       string   `json:"name"`
}

func toMemberJSON(id int64, m ledger.Member) memberJSON {
	ids := m.Identities
	if ids == nil {
		ids = []string{}
	}
	return memberJSON{ID: id, Identities: ids, Name: m.Name}
}

type resultJSON struct {
	TransactionID int64      `json:"transaction_id"`
	Member        memberJSON `json:"member"`
	Points        int64      `json:"points"`
	Balance       int64      `json:"balance"`
	CreatedAt     time.Time  `json:"created_at"`
}

func toResultJSON(r ledger.Result, members map[int64]ledger.Member) resultJSON {
	return resultJSON{TransactionID: r.TxnID, Member: toMemberJSON(r.MemberID, members[r.MemberID]),
		Points: r.Points, Balance: r.Balance, CreatedAt: r.CreatedAt.UTC()}
}

// writeResult answers a mutation: 201 when it applied now, 200 with the
// original body when it was a replay.
func (s *Server) writeResult(w http.ResponseWriter, r *http.Request, res ledger.Result) error {
	members, err := s.ledger.Describe(r.Context(), []int64{res.MemberID})
	if err != nil {
		return err
	}
	status := http.StatusCreated
	if res.Replayed {
		status = http.StatusOK
		w.Header().Set("Idempotent-Replayed", "true")
	}
	writeJSON(w, status, toResultJSON(res, members))
	return nil
}

func (s *Server) award(w http.ResponseWriter, r *http.Request) error {
	data, err := readBody(w, r)
	if err != nil {
		return err
	}
	a, err := decodeAward(data)
	if err != nil {
		return err
	}
	res, err := s.ledger.Award(r.Context(), a)
	s.record(context.WithoutCancel(r.Context()), adminEntry("award", a.Member, a.Points, a.Reason, a.Key, res, err))
	if err != nil {
		return err
	}
	return s.writeResult(w, r, res)
}

func (s *Server) deduct(w http.ResponseWriter, r *http.Request) error {
	data, err := readBody(w, r)
	if err != nil {
		return err
	}
	d, err := decodeDeduction(data)
	if err != nil {
		return err
	}
	res, err := s.ledger.Deduct(r.Context(), d)
	s.record(context.WithoutCancel(r.Context()), adminEntry("deduct", d.Member, d.Points, d.Reason, d.Key, res, err))
	if err != nil {
		return err
	}
	return s.writeResult(w, r, res)
}

type batchItemJSON struct {
	Status int `json:"status"`
	*resultJSON
	Error *errorBody `json:"error,omitempty"`
}

// awardBatch answers 200 with one result per item, each with the status the
// same award alone would have had (201, 200 for a replay, 404, 409).
func (s *Server) awardBatch(w http.ResponseWriter, r *http.Request) error {
	data, err := readBody(w, r)
	if err != nil {
		return err
	}
	awards, err := decodeBatch(data)
	if err != nil {
		return err
	}
	results, err := s.ledger.AwardBatch(r.Context(), awards)
	if err != nil {
		return err
	}
	entries := make([]tasks.AuditEntry, len(results))
	for i, br := range results {
		a := awards[i]
		entries[i] = adminEntry("award", a.Member, a.Points, a.Reason, a.Key, br.Result, br.Err)
	}
	s.record(context.WithoutCancel(r.Context()), entries...)
	var ids []int64
	for _, br := range results {
		if br.Err == nil {
			ids = append(ids, br.Result.MemberID)
		}
	}
	members, err := s.ledger.Describe(r.Context(), ids)
	if err != nil {
		return err
	}
	items := make([]batchItemJSON, len(results))
	for i, br := range results {
		switch {
		case br.Err != nil:
			e := errorOf(br.Err)
			items[i] = batchItemJSON{Status: statusOf(e.Code), Error: &e}
		case br.Result.Replayed:
			rj := toResultJSON(br.Result, members)
			items[i] = batchItemJSON{Status: http.StatusOK, resultJSON: &rj}
		default:
			rj := toResultJSON(br.Result, members)
			items[i] = batchItemJSON{Status: http.StatusCreated, resultJSON: &rj}
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"results": items})
	return nil
}

func (s *Server) member(w http.ResponseWriter, r *http.Request) error {
	ref, err := ledger.ParseMemberRef(r.PathValue("member"))
	if err != nil {
		return err
	}
	m, b, err := s.ledger.Member(r.Context(), ref)
	if err != nil {
		return err
	}
	var locale *string
	if m.Locale != "" {
		locale = &m.Locale
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"id":         m.ID,
		"identities": toMemberJSON(m.ID, m).Identities,
		"name":       m.Name,
		"locale":     locale,
		"balance":    map[string]int64{"available": b.Available, "pending": b.Pending},
		"created_at": m.CreatedAt.UTC(),
	})
	return nil
}

type entryJSON struct {
	TransactionID int64      `json:"transaction_id"`
	Kind          string     `json:"kind"`
	Points        int64      `json:"points"`
	Reason        string     `json:"reason"`
	CreatedAt     time.Time  `json:"created_at"`
	ExpiresAt     *time.Time `json:"expires_at"`
}

// defaultHistory is the page size when limit is not given.
const defaultHistory = 20

func (s *Server) history(w http.ResponseWriter, r *http.Request) error {
	ref, err := ledger.ParseMemberRef(r.PathValue("member"))
	if err != nil {
		return err
	}
	q := r.URL.Query()
	limit, err := limitParam(q, defaultHistory, ledger.MaxHistory)
	if err != nil {
		return err
	}
	before, err := beforeParam(q, "a transaction_id from an earlier page")
	if err != nil {
		return err
	}
	entries, more, err := s.ledger.History(r.Context(), ref, before, limit)
	if err != nil {
		return err
	}
	out := make([]entryJSON, len(entries))
	for i, e := range entries {
		out[i] = entryJSON{TransactionID: e.TxnID, Kind: e.Kind, Points: e.Points, Reason: e.Reason, CreatedAt: e.CreatedAt.UTC(), ExpiresAt: e.ExpiresAt}
		if e.ExpiresAt != nil {
			t := e.ExpiresAt.UTC()
			out[i].ExpiresAt = &t
		}
	}
	body := map[string]any{"entries": out}
	if more {
		body["next_before"] = out[len(out)-1].TransactionID
	}
	writeJSON(w, http.StatusOK, body)
	return nil
}

// beforeParam reads where a keyset page starts: 0 (the newest) when not
// given, else a positive id, what says which.
func beforeParam(q url.Values, what string) (int64, error) {
	v := q.Get("before")
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 1 {
		return 0, tally.Errorf(tally.EINVALID, "before must be %s", what)
	}
	return n, nil
}

// limitParam reads the page size of a list call: def when not given, else a
// whole number from 1 to most.
func limitParam(q url.Values, def, most int) (int, error) {
	v := q.Get("limit")
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > most {
		return 0, tally.Errorf(tally.EINVALID, "limit must be a whole number from 1 to %d", most)
	}
	return n, nil
}
