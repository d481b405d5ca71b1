// Package ledger holds every point: members and their platform identities,
// double-entry transactions and postings, lots of earned points consumed
// soonest-expiring first, and idempotency keys that make every mutation safe to
// retry. The invariants it keeps are listed in DESIGN.md; Check verifies them.
package ledger

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tally-loyalty/tally"
)

// Limits on what a request may carry.
const (
	// MaxPoints is the largest amount one mutation may move: 2^53−1, the largest
	// integer every JSON client represents exactly.
	MaxPoints = 1<<53 - 1
	// MaxBatch is the most awards one batch may hold.
	MaxBatch = 1000
	// MaxKeyLen and MaxReasonLen bound idempotency keys and reasons (in bytes).
	MaxKeyLen    = 255
	MaxReasonLen = 500
	// MaxHistory is the most history entries one page returns.
	MaxHistory = 200
)

// Platforms a member identity may belong to.
var Platforms = []string{"telegram", "discord", "console"}

// Transaction kinds the ledger writes.
const (
	KindAward     = "award"
	KindDeduction = "deduction"
	// KindTask pays an approved task claim.
	KindTask = "task"
)

// System accounts. Their balances are sums over postings, never stored rows.
var SystemAccounts = []string{"issued", "redeemed", "expired", "adjustments", "partners"}

// MemberRef names a member either by internal id or by a platform identity.
type MemberRef struct {
	ID       int64
	Platform string
	UserID   string
}

// userIDPattern admits ids without leading zeros, so one user has one spelling.
var userIDPattern = regexp.MustCompile(`^[1-9][0-9]{0,19}$`)

// ParseMemberRef parses "17" (an internal id) or "platform:user_id" such as
// "telegram:42" or "discord:80351110224678912".
func ParseMemberRef(s string) (MemberRef, error) {
	if platform, uid, ok := strings.Cut(s, ":"); ok {
		known := false
		for _, p := range Platforms {
			known = known || p == platform
		}
		if !known {
			return MemberRef{}, tally.Errorf(tally.EINVALID, "member %q: unknown platform %q (use %s)", clip(s), clip(platform), strings.Join(Platforms, ", "))
		}
		if !userIDPattern.MatchString(uid) {
			return MemberRef{}, tally.Errorf(tally.EINVALID, "member %q: the user id must be 1 to 20 digits without leading zeros", clip(s))
		}
		return MemberRef{Platform: platform, UserID: uid}, nil
	}
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id <= 0 || !userIDPattern.MatchString(s) {
		return MemberRef{}, tally.Errorf(tally.EINVALID, "member %q: give an internal id or platform:user_id (e.g. telegram:42)", clip(s))
	}
	return MemberRef{ID: id}, nil
}

// String formats the reference as ParseMemberRef reads it.
func (r MemberRef) String() string {
	if r.Platform != "" {
		return r.Platform + ":" + r.UserID
	}
	return strconv.FormatInt(r.ID, 10)
}

// clip shortens user input quoted back in an error message.
func clip(s string) string {
	if len(s) <= 64 {
		return s
	}
	cut := 64
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// Member is a person in the programme, reachable on one or more platforms.
type Member struct {
	ID         int64
	Name       string
	Locale     string // "" when the member never chose one
	Identities []string
	CreatedAt  time.Time
}

// Balance is what a member holds. Available may be spent; Pending is earned
// but not yet usable.
type Balance struct {
	Available int64
	Pending   int64
}

// Award credits points to a member. The member is created on its first award
// when given by platform identity.
type Award struct {
	Member    MemberRef
	Points    int64
	Reason    string
	Key       string     // idempotency key
	ExpiresAt *time.Time // nil: the points do not expire
}

// Deduction debits points from a member's unexpired lots, soonest expiry first.
type Deduction struct {
	Member MemberRef
	Points int64
	Reason string
	Key    string
}

// Result is the outcome of a mutation. A replay returns the original Result
// with Replayed set.
type Result struct {
	TxnID     int64
	MemberID  int64
	Points    int64 // as requested: positive for awards and deductions alike
	Balance   int64 // available balance right after the transaction
	CreatedAt time.Time
	Replayed  bool
}

// BatchResult is one item's outcome in a batch: a Result or an error
// (idempotency_conflict) for that item alone.
type BatchResult struct {
	Result Result
	Err    error
}

// Entry is one line of a member's history.
type Entry struct {
	TxnID     int64
	Kind      string
	Points    int64 // signed: what the transaction did to the member's balance
	Reason    string
	CreatedAt time.Time
	ExpiresAt *time.Time
}

// Observer is told of every ledger operation: its name, its outcome (an error
// code, or "ok" / "replayed") and how long it took. cmd wires it to metrics.
type Observer func(op, outcome string, d time.Duration)

// Service is the ledger on Postgres.
type Service struct {
	pool    *pgxpool.Pool
	clock   tally.Clock
	observe Observer
	expiry  func(earned time.Time) *time.Time
}

// Option configures a Service.
type Option func(*Service)

// WithObserver reports every operation to o.
func WithObserver(o Observer) Option { return func(s *Service) { s.observe = o } }

// WithExpiry sets when earned points expire when an award does not say:
// expires returns the expiry of points earned at earned (nil: never). The
// programme's [expiry] policy decides it.
func WithExpiry(expires func(earned time.Time) *time.Time) Option {
	return func(s *Service) { s.expiry = expires }
}

// defaultExpiry is the expiry of points earned at now that came without one.
func (s *Service) defaultExpiry(now time.Time) *time.Time {
	if s.expiry == nil {
		return nil
	}
	return truncExpiry(s.expiry(now))
}

// New returns a ledger on pool that reads time from clock.
func New(pool *pgxpool.Pool, clock tally.Clock, opts ...Option) *Service {
	s := &Service{pool: pool, clock: clock, observe: func(string, string, time.Duration) {}}
	for _, o := range opts {
		o(s)
	}
	return s
}

// now is the clock's time at the database's precision (microseconds), so what
// a replay reads back equals what the original returned.
func (s *Service) now() time.Time { return s.clock.Now().UTC().Truncate(time.Microsecond) }

func (s *Service) track(op string, start time.Time, res *Result, err error) {
	outcome := "ok"
	switch {
	case err != nil:
		outcome = tally.ErrorCode(err)
	case res != nil && res.Replayed:
		outcome = "replayed"
	}
	s.observe(op, outcome, time.Since(start))
}

func validatePoints(p int64) error {
	if p < 1 || p > MaxPoints {
		return tally.Errorf(tally.EINVALID, "points must be a whole number from 1 to %d", int64(MaxPoints))
	}
	return nil
}

func validateText(key, reason string, internal bool) error {
	if key == "" {
		return tally.Errorf(tally.EINVALID, "idempotency_key is required")
	}
	if len(key) > MaxKeyLen || !utf8.ValidString(key) {
		return tally.Errorf(tally.EINVALID, "idempotency_key must be valid UTF-8 of at most %d bytes", MaxKeyLen)
	}
	if len(reason) > MaxReasonLen || !utf8.ValidString(reason) || strings.ContainsRune(reason, 0) {
		return tally.Errorf(tally.EINVALID, "reason must be text of at most %d bytes", MaxReasonLen)
	}
	if strings.ContainsRune(key, 0) {
		return tally.Errorf(tally.EINVALID, "idempotency_key must not contain NUL")
	}
	if strings.HasPrefix(key, ReservedKeyPrefix) != internal {
		if internal {
			return tally.Errorf(tally.EINVALID, "Tally's own idempotency keys start with %q", ReservedKeyPrefix)
		}
		return tally.Errorf(tally.EINVALID, "idempotency_key must not start with %q (Tally's own keys do)", ReservedKeyPrefix)
	}
	return nil
}

func (a Award) validate(now time.Time, internal bool) error {
	if err := validatePoints(a.Points); err != nil {
		return err
	}
	if err := validateText(a.Key, a.Reason, internal); err != nil {
		return err
	}
	if a.ExpiresAt != nil && !a.ExpiresAt.After(now) {
		return tally.Errorf(tally.EINVALID, "expires_at must be in the future")
	}
	return nil
}

// ReservedKeyPrefix starts the idempotency keys Tally makes itself (links,
// later task payments and prizes); requests may not use it.
const ReservedKeyPrefix = "tally:"

// fingerprint hashes what a request asks for, so a key reused with other
// parameters is told apart from a retry. The member is the reference as the
// request gave it: after a /link moves an identity, a replay still matches.
func fingerprint(op string, member MemberRef, points int64, reason string, expires *time.Time) []byte {
	h := sha256.New()
	var b [8]byte
	h.Write([]byte(op))
	h.Write([]byte{0})
	h.Write([]byte(member.String()))
	h.Write([]byte{0})
	binary.BigEndian.PutUint64(b[:], uint64(points))
	h.Write(b[:])
	h.Write([]byte(reason))
	h.Write([]byte{0})
	if expires != nil {
		binary.BigEndian.PutUint64(b[:], uint64(expires.UTC().UnixMicro()))
		h.Write(b[:])
	}
	return h.Sum(nil)
}

// SQLSTATEs raised by the ledger's SQL functions (see the migration).
const (
	stateKeyExists       = "TL001"
	stateInsufficient    = "TL002"
	stateMemberNotFound  = "TL003"
	stateIdentityRace    = "TL004"
	stateMerged          = "TL005"
	stateCheckViolation  = "23514"
	stateOutOfRange      = "22003"
	stateDeadlock        = "40P01"
	stateSerialization   = "40001"
	maxAttempts          = 10
	errMemberNotFoundFmt = "member %s not found"
)

func sqlState(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}

// retryable reports whether a failed statement may simply be run again.
func retryable(err error) bool {
	switch sqlState(err) {
	case stateDeadlock, stateSerialization, stateIdentityRace:
		return true
	}
	return false
}

// resolve finds the member a reference names, creating it from a platform
// identity when create is set.
func (s *Service) resolve(ctx context.Context, ref MemberRef, create bool) (int64, error) {
	if ref.Platform == "" {
		if ref.ID <= 0 {
			return 0, tally.Errorf(tally.EINVALID, "member is required")
		}
		return ref.ID, nil // existence is checked by the statement that uses it
	}
	ids, err := s.resolveMany(ctx, []MemberRef{ref}, create)
	if err != nil {
		return 0, err
	}
	return ids[0], nil
}

// resolveMany returns the member id of every reference, in order. Internal ids
// are returned as given. Platform identities are looked up; the missing ones
// are created when create is set, else not_found.
func (s *Service) resolveMany(ctx context.Context, refs []MemberRef, create bool) ([]int64, error) {
	ids := make([]int64, len(refs))
	var platforms, users []string
	for i, r := range refs {
		ids[i] = r.ID
		if r.Platform != "" {
			platforms = append(platforms, r.Platform)
			users = append(users, r.UserID)
		}
	}
	if len(platforms) == 0 {
		return ids, nil
	}
	found := make(map[string]int64, len(platforms))
	scan := func(rows pgx.Rows) error {
		for rows.Next() {
			var p, u string
			var id int64
			if err := rows.Scan(&p, &u, &id); err != nil {
				return err
			}
			found[p+":"+u] = id
		}
		return rows.Err()
	}
	rows, err := s.pool.Query(ctx, `SELECT i.platform, i.user_id, i.member_id FROM identities i
		JOIN unnest($1::text[], $2::text[]) AS w(p, u) ON i.platform = w.p AND i.user_id = w.u`, platforms, users)
	if err != nil {
		return nil, fmt.Errorf("look up identities: %w", err)
	}
	if err := scan(rows); err != nil {
		return nil, fmt.Errorf("look up identities: %w", err)
	}
	if len(found) < len(platforms) && create {
		for attempt := 1; ; attempt++ {
			rows, err := s.pool.Query(ctx, "SELECT platform, user_id, member_id FROM ledger_ensure_members($1, $2, $3)",
				platforms, users, s.now())
			if err == nil {
				err = scan(rows)
			}
			if err == nil {
				break
			}
			if !retryable(err) || attempt == maxAttempts {
				return nil, fmt.Errorf("create members: %w", err)
			}
		}
	}
	for i, r := range refs {
		if r.Platform == "" {
			continue
		}
		id, ok := found[r.String()]
		if !ok {
			return nil, tally.Errorf(tally.ENOTFOUND, errMemberNotFoundFmt, r)
		}
		ids[i] = id
	}
	return ids, nil
}

// replay reads the transaction stored under key and returns it as the original
// result, or idempotency_conflict when the request differs from the original.
func (s *Service) replay(ctx context.Context, key string, fp []byte) (Result, error) {
	var res Result
	var stored []byte
	err := s.pool.QueryRow(ctx, `SELECT id, member_id, abs(points), balance_after, created_at, fingerprint
		FROM txns WHERE idempotency_key = $1`, key).
		Scan(&res.TxnID, &res.MemberID, &res.Points, &res.Balance, &res.CreatedAt, &stored)
	if err != nil {
		return Result{}, fmt.Errorf("read idempotency key: %w", err)
	}
	if string(stored) != string(fp) {
		return Result{}, tally.Errorf(tally.ECONFLICT, "idempotency_key %q was used for a different request", clip(key))
	}
	res.Replayed = true
	return res, nil
}

// mapErr turns the SQL functions' signals into domain errors.
func mapErr(err error, ref MemberRef) error {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return err
	}
	switch pgErr.Code {
	case stateMemberNotFound:
		return tally.Errorf(tally.ENOTFOUND, errMemberNotFoundFmt, ref)
	case stateInsufficient:
		return tally.Errorf(tally.EINSUFFICIENT, "member %s has %s points available", ref, pgErr.Detail)
	case stateOutOfRange, stateCheckViolation:
		return tally.Errorf(tally.EINVALID, "the balance would exceed %d, the most points a member may hold", int64(MaxPoints))
	case stateKeyExists:
		return tally.Errorf(tally.ECONFLICT, "another request with the same idempotency_key is in progress; retry it")
	}
	return err
}

// Award credits points to a member, creating the member on its first award.
// A retry with the same key returns the original result and changes nothing.
func (s *Service) Award(ctx context.Context, a Award) (res Result, err error) {
	return s.award(ctx, KindAward, a, false)
}

// AwardInternal is Award for Tally's own payments (task claims, moderator
// awards, later prizes): the key must start with ReservedKeyPrefix, and kind
// names the transaction in histories (KindTask, KindAward).
func (s *Service) AwardInternal(ctx context.Context, kind string, a Award) (Result, error) {
	return s.award(ctx, kind, a, true)
}

func (s *Service) award(ctx context.Context, kind string, a Award, internal bool) (res Result, err error) {
	start := time.Now()
	defer func() { s.track("award", start, &res, err) }()
	now := s.now()
	if err := a.validate(now, internal); err != nil {
		return Result{}, err
	}
	member, err := s.resolve(ctx, a.Member, false)
	if tally.ErrorCode(err) == tally.ENOTFOUND {
		// A new member cannot have used this key yet: if the key exists, the
		// request is a conflict, and nobody should be created for it.
		if exists, kerr := s.keyExists(ctx, a.Key); kerr != nil || exists {
			if kerr != nil {
				return Result{}, kerr
			}
			return Result{}, tally.Errorf(tally.ECONFLICT, "idempotency_key %q was used for a different request", clip(a.Key))
		}
		member, err = s.resolve(ctx, a.Member, true)
	}
	if err != nil {
		return Result{}, err
	}
	// The fingerprint is of the request: a replay after the programme's
	// expiry policy changed is still a replay.
	expires := truncExpiry(a.ExpiresAt)
	fp := fingerprint(kind, a.Member, a.Points, a.Reason, expires)
	if expires == nil {
		expires = s.defaultExpiry(now)
	}
	for attempt := 1; ; attempt++ {
		res = Result{MemberID: member, Points: a.Points, CreatedAt: now}
		err = s.pool.QueryRow(ctx, "SELECT txn_id, balance_after FROM ledger_credit($1, $2, $3, 'issued', $4, $5, $6, $7, $8)",
			member, a.Points, kind, a.Reason, a.Key, fp, expires, now).Scan(&res.TxnID, &res.Balance)
		switch {
		case err == nil:
			return res, nil
		case sqlState(err) == stateKeyExists:
			return s.replay(ctx, a.Key, fp)
		case sqlState(err) == stateMerged && attempt < maxAttempts:
			member = survivorOf(err) // /link joined this member into another
			continue
		case retryable(err) && attempt < maxAttempts:
			continue
		}
		return Result{}, fmt.Errorf("award: %w", mapErr(err, a.Member))
	}
}

func truncExpiry(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC().Truncate(time.Microsecond)
	return &u
}

// Deduct debits points from the member, consuming lots soonest-expiring first.
// Short of points it returns insufficient_points and records nothing, so the
// same key may be retried later.
func (s *Service) Deduct(ctx context.Context, d Deduction) (res Result, err error) {
	return s.deduct(ctx, d, false)
}

// DeductInternal is Deduct for Tally's own keys (moderator deductions): the
// key must start with ReservedKeyPrefix.
func (s *Service) DeductInternal(ctx context.Context, d Deduction) (Result, error) {
	return s.deduct(ctx, d, true)
}

func (s *Service) deduct(ctx context.Context, d Deduction, internal bool) (res Result, err error) {
	start := time.Now()
	defer func() { s.track("deduct", start, &res, err) }()
	if err := validatePoints(d.Points); err != nil {
		return Result{}, err
	}
	if err := validateText(d.Key, d.Reason, internal); err != nil {
		return Result{}, err
	}
	member, err := s.resolveLive(ctx, d.Member)
	if err != nil {
		return Result{}, err
	}
	now := s.now()
	fp := fingerprint(KindDeduction, d.Member, d.Points, d.Reason, nil)
	for attempt := 1; ; attempt++ {
		res = Result{MemberID: member, Points: d.Points, CreatedAt: now}
		err = s.pool.QueryRow(ctx, "SELECT txn_id, balance_after FROM ledger_debit($1, $2, $3, 'redeemed', $4, $5, $6, $7)",
			member, d.Points, KindDeduction, d.Reason, d.Key, fp, now).Scan(&res.TxnID, &res.Balance)
		switch {
		case err == nil:
			return res, nil
		case sqlState(err) == stateKeyExists:
			return s.replay(ctx, d.Key, fp)
		case retryable(err) && attempt < maxAttempts:
			continue
		}
		return Result{}, fmt.Errorf("deduct: %w", mapErr(err, d.Member))
	}
}

// Lookup returns the transaction stored under an idempotency key; ok is
// false when there is none.
func (s *Service) Lookup(ctx context.Context, key string) (res Result, ok bool, err error) {
	err = s.pool.QueryRow(ctx, `SELECT id, member_id, abs(points), balance_after, created_at FROM txns WHERE idempotency_key = $1`, key).
		Scan(&res.TxnID, &res.MemberID, &res.Points, &res.Balance, &res.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return Result{}, false, nil
	}
	if err != nil {
		return Result{}, false, fmt.Errorf("read idempotency key: %w", err)
	}
	return res, true, nil
}

func (s *Service) keyExists(ctx context.Context, key string) (bool, error) {
	var exists bool
	err := s.pool.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM txns WHERE idempotency_key = $1)", key).Scan(&exists)
	if err != nil {
		return false, fmt.Errorf("read idempotency key: %w", err)
	}
	return exists, nil
}

// survivorOf reads the member a TL005 error names as the survivor of a merge.
func survivorOf(err error) int64 {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		if id, perr := strconv.ParseInt(pgErr.Detail, 10, 64); perr == nil {
			return id
		}
	}
	return 0
}

// Resolve returns the id of the existing member a reference names (a merged
// member's survivor); not_found when there is none.
func (s *Service) Resolve(ctx context.Context, ref MemberRef) (int64, error) {
	id, err := s.resolveLive(ctx, ref)
	if err != nil {
		return 0, err
	}
	if ref.Platform == "" {
		var exists bool
		if err := s.pool.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM members WHERE id = $1)", id).Scan(&exists); err != nil {
			return 0, fmt.Errorf("read member: %w", err)
		}
		if !exists {
			return 0, tally.Errorf(tally.ENOTFOUND, errMemberNotFoundFmt, ref)
		}
	}
	return id, nil
}

// resolveLive finds an existing member for reads and debits: an internal id
// that /link merged away resolves to the member it was merged into (identities
// always name a live member).
func (s *Service) resolveLive(ctx context.Context, ref MemberRef) (int64, error) {
	if ref.Platform != "" {
		return s.resolve(ctx, ref, false)
	}
	var to int64
	err := s.pool.QueryRow(ctx, "SELECT coalesce((SELECT merged_into FROM members WHERE id = $1), $1)", ref.ID).Scan(&to)
	if err != nil {
		return 0, fmt.Errorf("read member: %w", err)
	}
	return to, nil
}
